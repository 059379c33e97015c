"""LlamaStack's Files API, answered by files-gateway.

The gateway is the only source of truth: there is no metadata table on LlamaStack's side, so a file
uploaded with curl is listed and served here, and a file uploaded here is visible at the gateway
with the same id.
"""

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import Response, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from . import _stack
from ._stack import StackError, api
from .client import GatewayClient, GatewayFailure, tenant_for, unreachable
from .config import FilesGatewayConfig
from .multipart import MultipartForm
from .storage import storage_mismatches

log = logging.getLogger(__name__)

INFO_PATH = "/v1/files-gateway/info"
_KNOWN_PURPOSES = frozenset(p.value for p in api.OpenAIFilePurpose)
_CONTENT_HEADERS = ("content-type", "content-length", "content-disposition", "etag", "last-modified")


class GatewayError(StackError):
    """A gateway failure raised to a caller inside LlamaStack; its status reaches HTTP clients."""

    def __init__(self, failure: GatewayFailure) -> None:
        super().__init__(failure.message)
        self.status_code = failure.status
        self.headers = failure.headers


def _called_by_files_route() -> bool:
    """True when the Files API's own HTTP route called the current method.

    LlamaStack's other APIs (vector stores, batches, responses) call the provider in-process and read
    `Response.body`, so they get a buffered answer and exceptions; the route gets a streamed body, and
    errors as responses that keep the gateway's status, envelope and Retry-After (LlamaStack's
    exception handler would drop the header).
    """
    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return False
        if frame.f_globals.get("__name__", "").endswith(".files.fastapi_routes"):
            return True
        frame = frame.f_back
    return False


def _file_path(file_id: str, suffix: str = "") -> str:
    return f"/v1/files/{quote(file_id, safe='')}{suffix}"


def _content_type(value: str | None) -> str:
    if not value or "\r" in value or "\n" in value:
        return "application/octet-stream"
    return value


class FilesGatewayAdapter(api.Files):
    def __init__(self, config: FilesGatewayConfig) -> None:
        self.config = config
        self.client = GatewayClient(config)

    async def initialize(self) -> None:
        """Wait for the gateway (up to startup_timeout), then hold its storage against the config."""
        deadline = time.monotonic() + self.config.startup_timeout
        while True:
            try:
                info = await self.client.json("GET", INFO_PATH, tenant=None)
                break
            except GatewayFailure as failure:
                if failure.status in (401, 403):
                    raise RuntimeError(
                        f"files-gateway at {self.config.base_url} refused the provider's api_key: {failure.message}"
                    ) from None
                if failure.status == 404:
                    raise RuntimeError(
                        f"{self.config.base_url} does not answer GET {INFO_PATH}: is base_url files-gateway's "
                        "root URL (without /v1), and the gateway 0.1.0 or later?"
                    ) from None
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"{failure.message}; gave up after startup_timeout={self.config.startup_timeout:g}s"
                    ) from None
                log.warning("waiting for files-gateway: %s", failure.message)
                await asyncio.sleep(1)
        problems = storage_mismatches(self.config, info)
        if problems:
            raise ValueError("remote::s3-files configuration does not match files-gateway: " + "; ".join(problems))
        # LlamaStack runs initialize on a loop of its own that ends with it: let its connections go.
        await self.client.aclose()
        if self.config.credentials is not None:
            log.info("config.credentials is not read: files-gateway uses its own FILES_S3_* credentials")
        s3 = info.get("s3") or {}
        log.info(
            "files provider: files-gateway %s at %s, store %s%s",
            info.get("version"),
            self.config.base_url,
            info.get("store"),
            f" (bucket {s3.get('bucket')})" if s3 else "",
        )

    async def shutdown(self) -> None:
        await self.client.aclose()

    async def health(self) -> dict[str, Any]:
        try:
            await self.client.json("GET", INFO_PATH, tenant=None)
        except GatewayFailure as failure:
            return {"status": api.HealthStatus.ERROR, "message": failure.message}
        return {"status": api.HealthStatus.OK}

    @staticmethod
    def _tenant() -> str | None:
        principal = _stack.authenticated_principal()
        return None if principal is None else tenant_for(principal)

    @staticmethod
    def _failed(failure: GatewayFailure, by_route: bool, file_id: str | None = None) -> Response:
        if by_route:
            return JSONResponse(failure.envelope, status_code=failure.status, headers=failure.headers)
        if failure.status == 404 and file_id is not None:
            raise api.OpenAIFileObjectNotFoundError(file_id) from None
        raise GatewayError(failure) from None

    @staticmethod
    def _file_object(data: dict[str, Any]) -> Any:
        # status_details is not nullable in OGX's model; llama-stack's has neither status field and
        # ignores them.
        return api.OpenAIFileObject.model_validate({**data, "status_details": data.get("status_details") or ""})

    async def openai_upload_file(self, request: Any, file: UploadFile) -> Any:
        by_route = _called_by_files_route()
        fields = [("purpose", request.purpose.value)]
        if request.expires_after is not None:
            fields += [
                ("expires_after[anchor]", request.expires_after.anchor),
                ("expires_after[seconds]", str(request.expires_after.seconds)),
            ]
        # In-process callers pass file-like objects of their own (batches: an AsyncBytesIO with a
        # filename and an async read), not always an UploadFile with a size and a content type.
        form = MultipartForm(
            fields,
            filename=getattr(file, "filename", None) or "upload",
            content_type=_content_type(getattr(file, "content_type", None)),
        )
        headers = {"content-type": form.content_type}
        size = getattr(file, "size", None)
        if isinstance(size, int):
            headers["content-length"] = str(form.length(size))
        try:
            data = await self.client.json(
                "POST",
                "/v1/files",
                tenant=self._tenant(),
                content=form.body(file.read, self.config.upload_chunk_bytes),
                headers=headers,
            )
        except GatewayFailure as failure:
            return self._failed(failure, by_route)
        return self._file_object(data)

    async def openai_list_files(self, request: Any) -> Any:
        by_route = _called_by_files_route()
        params = {
            "after": request.after,
            "limit": request.limit,
            "order": request.order.value if request.order is not None else None,
            "purpose": request.purpose.value if request.purpose is not None else None,
        }
        try:
            page = await self.client.json("GET", "/v1/files", tenant=self._tenant(), params=params)
        except GatewayFailure as failure:
            return self._failed(failure, by_route)
        # Purposes LlamaStack has no name for (fine-tune, vision, ...) cannot be shown through it. The
        # page's cursors stay the gateway's, so paging with after=last_id neither skips nor repeats.
        files = [self._file_object(f) for f in page["data"] if f.get("purpose") in _KNOWN_PURPOSES]
        return api.ListOpenAIFileResponse(
            data=files,
            has_more=page["has_more"],
            first_id=page.get("first_id") or "",
            last_id=page.get("last_id") or "",
        )

    async def openai_retrieve_file(self, request: Any) -> Any:
        by_route = _called_by_files_route()
        try:
            data = await self.client.json("GET", _file_path(request.file_id), tenant=self._tenant())
        except GatewayFailure as failure:
            return self._failed(failure, by_route, request.file_id)
        if data.get("purpose") not in _KNOWN_PURPOSES:
            message = (
                f"File {request.file_id} has purpose {data.get('purpose')!r}, which LlamaStack's Files API "
                f"cannot represent ({', '.join(sorted(_KNOWN_PURPOSES))}); read it from files-gateway directly"
            )
            envelope = {"error": {"message": message, "type": "invalid_request_error", "param": "file_id",
                                  "code": "unsupported_purpose"}}
            return self._failed(GatewayFailure(400, message, envelope), by_route)
        return self._file_object(data)

    async def openai_delete_file(self, request: Any) -> Any:
        by_route = _called_by_files_route()
        try:
            data = await self.client.json("DELETE", _file_path(request.file_id), tenant=self._tenant())
        except GatewayFailure as failure:
            return self._failed(failure, by_route, request.file_id)
        return api.OpenAIFileDeleteResponse(id=data["id"], deleted=data["deleted"])

    async def openai_retrieve_file_content(self, request: Any) -> Response:
        by_route = _called_by_files_route()
        try:
            upstream = await self.client.stream(_file_path(request.file_id, "/content"), tenant=self._tenant())
        except GatewayFailure as failure:
            return self._failed(failure, by_route, request.file_id)
        headers = {name: upstream.headers[name] for name in _CONTENT_HEADERS if name in upstream.headers}
        if by_route:
            return StreamingResponse(_relay(upstream), headers=headers)
        try:
            body = await upstream.aread()
        except httpx.TransportError as err:
            raise GatewayError(unreachable(self.client.base_url, err)) from err
        finally:
            await upstream.aclose()
        headers.pop("content-length", None)
        return Response(content=body, headers=headers)


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """The gateway's body as it arrives. A failure mid-body ends the client's connection short, which
    its Content-Length makes visible; a client that hangs up closes the gateway's connection."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()
