import asyncio
import email.parser
import io
import re
import threading

import httpx
import pytest
from fastapi import FastAPI, UploadFile
from pydantic import ValidationError
from starlette.datastructures import Headers

from conftest import envelope
from files_gateway_llamastack import _stack, get_adapter_impl
from files_gateway_llamastack.client import tenant_for
from files_gateway_llamastack.config import FilesGatewayConfig
from files_gateway_llamastack.files import FilesGatewayAdapter, GatewayError
from files_gateway_llamastack.provider import get_provider_spec
from files_gateway_llamastack.storage import normalize_endpoint, storage_mismatches

api = _stack.api
routes = __import__(f"{api.__name__}.files.fastapi_routes", fromlist=["create_router"])
request_headers = __import__(f"{_stack.SERVER}.core.request_headers", fromlist=["request_provider_data_context"])
User = __import__(f"{_stack.SERVER}.core.datatypes", fromlist=["User"]).User

FILE = {
    "object": "file",
    "id": "file-0123456789abcdef0123456789abcdef",
    "bytes": 5,
    "created_at": 1_700_000_000,
    "expires_at": None,
    "filename": "a.txt",
    "purpose": "assistants",
    "status": "processed",
    "status_details": None,
}
LEGACY_BLOCK = {
    "endpoint_url": "http://minio.model-storage.svc:9000",
    "bucket": "llama-files",
    "region": "us-east-1",
    "tls_verify": False,
    "s3_force_path_style": True,
    "credentials": {
        "access_key_id_from_env": "FILES_S3_ACCESS_KEY_ID",
        "secret_access_key_from_env": "FILES_S3_SECRET_ACCESS_KEY",
    },
}


def config(gateway, **extra) -> FilesGatewayConfig:
    return FilesGatewayConfig(**{"base_url": gateway.url, "api_key": "sk-service-key", "startup_timeout": 0, **extra})


async def adapter(gateway, **extra) -> FilesGatewayAdapter:
    return await get_adapter_impl(config(gateway, **extra), {})


def http_client(impl: FilesGatewayAdapter) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(routes.create_router(impl))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://stack")


def as_user(principal: str):
    return request_headers.request_provider_data_context({}, User(principal, None))


def form_fields(seen) -> dict[str, tuple[str | None, bytes]]:
    head = f"Content-Type: {seen.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser().parsebytes(head + seen.body)
    return {part.get_param("name", header="content-disposition"): (part.get_filename(), part.get_payload(decode=True))
            for part in message.get_payload()}


# --- configuration -------------------------------------------------------------------------------


def test_the_deployment_guides_block_loads_with_base_url_added():
    c = FilesGatewayConfig(base_url="http://files-gateway:8080/", **LEGACY_BLOCK)
    assert c.base_url == "http://files-gateway:8080"
    assert c.bucket == "llama-files" and c.tls_verify is False and c.s3_force_path_style is True
    assert c.api_key is None


def test_config_refuses_unknown_keys_and_bad_urls():
    with pytest.raises(ValidationError, match="bucket_nme"):
        FilesGatewayConfig(base_url="http://gw:8080", bucket_nme="x")
    with pytest.raises(ValidationError, match="http:// or https://"):
        FilesGatewayConfig(base_url="files-gateway:8080")
    with pytest.raises(ValidationError, match="query or fragment"):
        FilesGatewayConfig(base_url="http://gw:8080/?x=1")


def test_an_empty_api_key_from_env_substitution_means_none_and_keys_stay_secret():
    assert FilesGatewayConfig(base_url="http://gw", api_key="").api_key is None
    c = FilesGatewayConfig(base_url="http://gw", api_key="sk-secret-value")
    assert "sk-secret-value" not in repr(c) and "sk-secret-value" not in str(c.model_dump())


def test_the_spec_names_the_provider_teams_already_write():
    spec = get_provider_spec()
    assert spec.provider_type == "remote::s3-files"
    assert spec.api == api.Api.files
    assert spec.config_class == "files_gateway_llamastack.config.FilesGatewayConfig"


# --- tenants and storage checks ------------------------------------------------------------------


def test_principals_map_to_gateway_tenants_one_to_one():
    assert tenant_for("alice@example.com") == "alice@example.com"
    long = tenant_for("x" * 65)
    spaced = tenant_for("Alice Smith")
    assert re.fullmatch(r"sha256:[A-Za-z0-9_-]{43}", long) and re.fullmatch(r"sha256:[A-Za-z0-9_-]{43}", spaced)
    assert long != spaced
    # A principal that looks like a digest is hashed too: it cannot take another principal's tenant.
    assert tenant_for(spaced) != spaced


def test_endpoints_compare_as_urls():
    assert normalize_endpoint("HTTP://MinIO:80/") == normalize_endpoint("http://minio")
    assert normalize_endpoint("https://s3.example.com") == "https://s3.example.com:443"


def test_storage_check_names_both_sides(gateway):
    c = FilesGatewayConfig(base_url=gateway.url, **LEGACY_BLOCK)
    assert storage_mismatches(c, gateway.info) == []
    gateway.info["s3"]["bucket"] = "other-bucket"
    gateway.info["s3"]["force_path_style"] = False
    problems = storage_mismatches(c, gateway.info)
    assert problems == [
        f"config.bucket is 'llama-files' but files-gateway at {gateway.url} serves bucket 'other-bucket'",
        f"config.s3_force_path_style is True but files-gateway at {gateway.url} serves s3_force_path_style False",
    ]
    assert storage_mismatches(c, {"store": "fs", "s3": None})[0].endswith("stores files in 'fs', not in an S3 bucket")
    assert storage_mismatches(FilesGatewayConfig(base_url=gateway.url), {"store": "fs", "s3": None}) == []


# --- start-up ------------------------------------------------------------------------------------


async def test_start_up_checks_the_bucket_and_fails_naming_both_sides(gateway):
    impl = await adapter(gateway, **LEGACY_BLOCK)
    assert gateway.last("GET", "/v1/files-gateway/info").headers["authorization"] == "Bearer sk-service-key"
    await impl.shutdown()
    gateway.info["s3"]["endpoint"] = "http://other:9000"
    with pytest.raises(ValueError, match="config.endpoint_url is 'http://minio.model-storage.svc:9000' but .* "
                                         "serves endpoint 'http://other:9000'"):
        await adapter(gateway, **LEGACY_BLOCK)


async def test_start_up_explains_a_refused_key_and_a_wrong_url(gateway):
    gateway.answer("GET", "/v1/files-gateway/info", 401, envelope("Incorrect API key provided.", "invalid_api_key"))
    with pytest.raises(RuntimeError, match="refused the provider's api_key: Incorrect API key provided"):
        await adapter(gateway)
    gateway.routes.clear()
    with pytest.raises(RuntimeError, match="does not answer GET /v1/files-gateway/info"):
        await get_adapter_impl(FilesGatewayConfig(base_url=gateway.url + "/v1", startup_timeout=0), {})


async def test_start_up_waits_for_the_gateway_then_gives_up_clearly(gateway):
    calls = 0

    async def late(_seen):
        nonlocal calls
        calls += 1
        return (503, envelope("not ready", type_="server_error"), {"Retry-After": "1"}) if calls < 3 else (
            200, gateway.info, {})

    gateway.routes[("GET", "/v1/files-gateway/info")] = late
    await (await adapter(gateway, startup_timeout=10)).shutdown()
    assert calls == 3
    with pytest.raises(RuntimeError, match=r"files-gateway at http://127.0.0.1:1 is unreachable .*startup_timeout=1s"):
        await get_adapter_impl(FilesGatewayConfig(base_url="http://127.0.0.1:1", startup_timeout=1), {})


# --- the five operations through LlamaStack's own Files routes ----------------------------------


class CountingUpload(UploadFile):
    reads = 0

    async def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return await super().read(size)


async def test_upload_streams_the_file_in_chunks_with_purpose_and_expiry_first(gateway):
    gateway.answer("POST", "/v1/files", 200, FILE)
    impl = await adapter(gateway, upload_chunk_bytes=4096)
    data = bytes(range(256)) * 256
    upload = CountingUpload(io.BytesIO(data), filename='we"ird\r\nname.bin', size=len(data),
                            headers=Headers({"content-type": "application/pdf"}))
    request = api.UploadFileRequest(purpose="assistants", expires_after={"anchor": "created_at", "seconds": 3600})
    with as_user("alice"):
        result = await impl.openai_upload_file(request, upload)
    assert result.id == FILE["id"] and result.model_dump().get("status_details", "") == ""
    seen = gateway.last("POST", "/v1/files")
    assert upload.reads >= len(data) // 4096
    assert int(seen.headers["content-length"]) == len(seen.body)
    assert seen.headers["openai-project"] == "alice"
    fields = form_fields(seen)
    assert list(fields) == ["purpose", "expires_after[anchor]", "expires_after[seconds]", "file"]
    assert fields["purpose"][1] == b"assistants" and fields["expires_after[seconds]"][1] == b"3600"
    assert fields["file"] == ("we%22ird%0D%0Aname.bin", data)
    await impl.shutdown()


class BatchOutput:
    """What OGX's batches API hands the Files API: a filename and an async read, nothing else."""

    def __init__(self, data: bytes) -> None:
        self.filename = "batch_123_output.jsonl"
        self._data = io.BytesIO(data)

    async def read(self, n: int = -1) -> bytes:
        return self._data.read(n)


async def test_in_process_callers_may_upload_any_async_file_like(gateway):
    gateway.answer("POST", "/v1/files", 200, {**FILE, "purpose": "batch"})
    impl = await adapter(gateway)
    result = await impl.openai_upload_file(api.UploadFileRequest(purpose="batch"), BatchOutput(b'{"a": 1}\n'))
    assert result.purpose == "batch"
    seen = gateway.last("POST", "/v1/files")
    assert "content-length" not in seen.headers and seen.headers["transfer-encoding"] == "chunked"
    assert form_fields(seen)["file"] == ("batch_123_output.jsonl", b'{"a": 1}\n')
    await impl.shutdown()


async def test_list_passes_its_parameters_and_keeps_the_gateways_cursors(gateway):
    other = {**FILE, "id": "file-" + "f" * 32, "purpose": "fine-tune"}
    gateway.answer("GET", "/v1/files", 200, {"object": "list", "data": [FILE, other], "has_more": True,
                                             "first_id": FILE["id"], "last_id": other["id"]})
    impl = await adapter(gateway)
    async with http_client(impl) as client:
        res = await client.get("/v1/files", params={"after": "file-x", "limit": 2, "order": "asc",
                                                    "purpose": "assistants"})
    assert res.status_code == 200
    page = res.json()
    assert [f["id"] for f in page["data"]] == [FILE["id"]]
    assert page["has_more"] is True and page["last_id"] == other["id"]
    assert gateway.last("GET", "/v1/files").query == {"after": "file-x", "limit": "2", "order": "asc",
                                                      "purpose": "assistants"}
    assert "openai-project" not in gateway.last("GET", "/v1/files").headers
    await impl.shutdown()


async def test_errors_keep_status_envelope_and_retry_after_over_http(gateway):
    path = f"/v1/files/{FILE['id']}"
    impl = await adapter(gateway)
    async with http_client(impl) as client:
        missing = await client.get(path)
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == f"File {path} not found."
        gateway.answer("DELETE", path, 503, envelope("S3 is unavailable", type_="server_error"), {"Retry-After": "7"})
        busy = await client.delete(path)
        assert (busy.status_code, busy.headers["retry-after"]) == (503, "7")
        assert busy.json()["error"]["message"] == "S3 is unavailable"
        gateway.answer("POST", "/v1/files", 413, envelope("File exceeds 10 bytes", "file_too_large"))
        big = await client.post("/v1/files", data={"purpose": "assistants"}, files={"file": ("a", b"x" * 20)})
        assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
    await impl.shutdown()


async def test_callers_inside_llamastack_get_exceptions_with_the_status(gateway):
    impl = await adapter(gateway)
    with pytest.raises(api.OpenAIFileObjectNotFoundError):
        await impl.openai_retrieve_file(api.RetrieveFileRequest(file_id="file-missing"))
    gateway.answer("GET", "/v1/files/file-x/content", 503, envelope("later", type_="server_error"),
                   {"Retry-After": "2"})
    with pytest.raises(GatewayError) as raised:
        await impl.openai_retrieve_file_content(api.RetrieveFileContentRequest(file_id="file-x"))
    assert raised.value.status_code == 503 and raised.value.headers == {"retry-after": "2"}
    await impl.shutdown()


async def test_content_streams_to_http_clients_and_is_buffered_for_callers_inside(gateway):
    data = b"0123456789" * 100_000
    gateway.answer("GET", f"/v1/files/{FILE['id']}/content", 200, data,
                   {"Content-Type": "application/octet-stream", "Content-Disposition": 'attachment; filename="a.txt"'})
    impl = await adapter(gateway)
    async with http_client(impl) as client:
        res = await client.get(f"/v1/files/{FILE['id']}/content")
    assert res.content == data and res.headers["content-length"] == str(len(data))
    assert res.headers["content-disposition"] == 'attachment; filename="a.txt"'
    inside = await impl.openai_retrieve_file_content(api.RetrieveFileContentRequest(file_id=FILE["id"]))
    assert bytes(inside.body) == data
    await impl.shutdown()


@pytest.fixture
async def fake_s3():
    """An object store on another origin (port) than the gateway, serving one object in two steps:
    the first 64 KiB at once, the rest only once `release` is set."""
    from aiohttp import web

    state = {"data": b"", "release": asyncio.Event(), "seen": []}

    async def get(request):
        state["seen"].append({k.lower(): v for k, v in request.headers.items()})
        data = state["data"]
        res = web.StreamResponse(headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": 'attachment; filename="a.txt"',
            "Content-Length": str(len(data)),
            "ETag": '"0123"',
        })
        await res.prepare(request)
        await res.write(data[:65536])
        await state["release"].wait()
        await res.write(data[65536:])
        await res.write_eof()
        return res

    app = web.Application()
    app.router.add_get("/{tail:.*}", get)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state["url"] = f"http://127.0.0.1:{port}"
    yield state
    state["release"].set()
    await runner.cleanup()


async def test_content_follows_a_presigned_redirect_streaming_and_without_the_key(gateway, fake_s3):
    data = b"0123456789" * 200_000
    fake_s3["data"] = data
    path = f"/v1/files/{FILE['id']}/content"
    location = f"{fake_s3['url']}/llama-files/{FILE['id']}?X-Amz-Expires=300&X-Amz-Signature=0123"
    gateway.answer("GET", path, 302, b"", {"Location": location, "Cache-Control": "no-store"})
    impl = await adapter(gateway)
    try:
        # What the Files route relays: the bytes as S3 sends them, not once they are all there.
        upstream = await impl.client.stream(path, tenant="alice")
        chunks = upstream.aiter_raw()
        first = await asyncio.wait_for(anext(chunks), 5)
        assert 0 < len(first) <= 65536
        fake_s3["release"].set()
        assert first + b"".join([chunk async for chunk in chunks]) == data
        await upstream.aclose()
        # The gateway's key went to the gateway only: S3 is another origin.
        assert gateway.last("GET", path).headers["authorization"] == "Bearer sk-service-key"
        assert "authorization" not in fake_s3["seen"][0]

        async with http_client(impl) as client:
            res = await client.get(path)
        assert res.status_code == 200 and res.content == data
        assert res.headers["content-disposition"] == 'attachment; filename="a.txt"'
        inside = await impl.openai_retrieve_file_content(api.RetrieveFileContentRequest(file_id=FILE["id"]))
        assert bytes(inside.body) == data
        assert all("authorization" not in seen for seen in fake_s3["seen"]) and len(fake_s3["seen"]) == 3
    finally:
        await impl.shutdown()


async def test_a_gateway_that_went_away_is_a_503_with_retry_after():
    impl = FilesGatewayAdapter(FilesGatewayConfig(base_url="http://127.0.0.1:1"))
    async with http_client(impl) as client:
        res = await client.get("/v1/files")
    assert res.status_code == 503 and res.headers["retry-after"] == "1"
    assert res.json()["error"]["code"] == "gateway_unreachable"
    await impl.shutdown()


async def test_files_with_purposes_llamastack_cannot_name_are_refused_by_retrieve(gateway):
    gateway.answer("GET", "/v1/files/file-v", 200, {**FILE, "id": "file-v", "purpose": "vision"})
    impl = await adapter(gateway)
    async with http_client(impl) as client:
        res = await client.get("/v1/files/file-v")
    assert res.status_code == 400 and "purpose 'vision'" in res.json()["error"]["message"]
    await impl.shutdown()


async def test_requests_on_one_loop_reuse_one_connection(gateway):
    gateway.answer("GET", "/v1/files", 200, {"object": "list", "data": [], "has_more": False,
                                             "first_id": None, "last_id": None})
    impl = await adapter(gateway)
    for _ in range(5):
        await impl.openai_list_files(api.ListFilesRequest())
    peers = {s.peer for s in gateway.seen if s.path == "/v1/files"}
    assert len(peers) == 1
    await impl.shutdown()


async def test_each_event_loop_gets_its_own_connections(gateway):
    gateway.answer("GET", "/v1/files", 200, {"object": "list", "data": [], "has_more": False,
                                             "first_id": None, "last_id": None})
    impl = await adapter(gateway)  # built on this loop, as LlamaStack builds providers on a throwaway one
    results = []

    def other_loop():
        results.append(asyncio.run(impl.openai_list_files(api.ListFilesRequest())))

    thread = threading.Thread(target=other_loop)
    thread.start()
    while thread.is_alive():
        await asyncio.sleep(0.01)
    assert results and results[0].data == [] and results[0].first_id == ""
    await impl.shutdown()


# --- TLS towards the gateway ---------------------------------------------------------------------


@pytest.fixture
async def tls_gateway(tmp_path):
    """A gateway answering /v1/files-gateway/info over https with a certificate of its own."""
    import datetime
    import ipaddress
    import ssl

    from aiohttp import web
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "files-gateway-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    async def info(_request):
        return web.json_response({"object": "files_gateway.info", "store": "fs", "s3": None, "version": "0.1.0"})

    app = web.Application()
    app.router.add_get("/v1/files-gateway/info", info)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"https://127.0.0.1:{port}", str(cert_file)
    await runner.cleanup()


async def test_tls_is_verified_against_the_system_store_a_ca_file_or_not_at_all(tls_gateway):
    url, ca_file = tls_gateway
    with pytest.raises(RuntimeError, match="is unreachable .*CERTIFICATE_VERIFY_FAILED"):
        await get_adapter_impl(FilesGatewayConfig(base_url=url, startup_timeout=0), {})
    for options in ({"ca_file": ca_file}, {"verify_tls": False}):
        impl = await get_adapter_impl(FilesGatewayConfig(base_url=url, startup_timeout=0, **options), {})
        await impl.shutdown()
