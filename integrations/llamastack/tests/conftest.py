"""A scripted files-gateway on a real socket: it records what the provider sends and answers as told."""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    chunks: int
    peer: tuple[str, int]


@dataclass
class FakeGateway:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    # (method, path) -> (status, json body or bytes, headers); a callable gets the request's Seen.
    routes: dict[tuple[str, str], Any] = field(default_factory=dict)
    info: dict[str, Any] = field(
        default_factory=lambda: {
            "object": "files_gateway.info",
            "version": "0.1.0",
            "store": "s3",
            "s3": {
                "endpoint": "http://minio.model-storage.svc:9000",
                "bucket": "llama-files",
                "region": "us-east-1",
                "force_path_style": True,
                "tls_verify": False,
                "prefix": "",
            },
            "max_file_bytes": 1 << 30,
            "caller": {"tenant": "", "service": True},
        }
    )

    def answer(self, method: str, path: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.routes[(method, path)] = (status, body, headers or {})

    def last(self, method: str, path: str) -> Seen:
        return [s for s in self.seen if s.method == method and s.path == path][-1]


def envelope(message: str, code: str | None = None, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@pytest.fixture
async def gateway() -> Any:
    fake = FakeGateway()

    async def handle(request: web.Request) -> web.StreamResponse:
        chunks = 0
        body = bytearray()
        async for chunk in request.content.iter_any():
            chunks += 1
            body += chunk
        headers = {k.lower(): v for k, v in request.headers.items()}
        peer = request.transport.get_extra_info("peername")
        seen = Seen(request.method, request.path, dict(request.query), headers, bytes(body), chunks, peer)
        fake.seen.append(seen)
        route = fake.routes.get((request.method, request.path))
        if route is None and (request.method, request.path) == ("GET", "/v1/files-gateway/info"):
            route = (200, fake.info, {})
        if callable(route):
            route = await route(seen)
        if route is None:
            return web.json_response(envelope(f"File {request.path} not found.", "file_not_found"), status=404)
        status, payload, headers = route
        if isinstance(payload, bytes | bytearray):
            return web.Response(status=status, body=payload, headers=headers)
        return web.Response(status=status, text=json.dumps(payload), content_type="application/json", headers=headers)

    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()
    await asyncio.sleep(0)
