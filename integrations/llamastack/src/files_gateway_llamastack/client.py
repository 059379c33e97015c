"""HTTP client of files-gateway: connections, headers, and the gateway's answers as data."""

import asyncio
import base64
import hashlib
import json
import re
import ssl
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .config import FilesGatewayConfig
from .version import __version__

# The gateway's tenant names. A principal that is one passes as it is; any other (too long, other
# characters) is sent as its digest. Principals that look like a digest are hashed too, so two
# different principals never share a tenant.
_TENANT = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")
_DIGEST_PREFIX = "sha256:"

# What the gateway tells apart and the provider passes on: the status, the OpenAI envelope, and
# Retry-After on 503.
_PASSED_HEADERS = ("retry-after",)


def tenant_for(principal: str) -> str:
    """The gateway tenant that stands for a LlamaStack principal."""
    if _TENANT.match(principal) and not principal.startswith(_DIGEST_PREFIX):
        return principal
    digest = base64.urlsafe_b64encode(hashlib.sha256(principal.encode("utf-8")).digest()).rstrip(b"=")
    return _DIGEST_PREFIX + digest.decode("ascii")


@dataclass
class GatewayFailure(Exception):
    """An answer other than success, or no answer at all, kept as the client should see it."""

    status: int
    message: str
    envelope: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def unreachable(base_url: str, err: Exception) -> GatewayFailure:
    reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    message = f"files-gateway at {base_url} is unreachable ({reason})"
    return GatewayFailure(
        status=503,
        message=message,
        envelope={"error": {"message": message, "type": "server_error", "param": None, "code": "gateway_unreachable"}},
        headers={"retry-after": "1"},
    )


def failure_from(response: httpx.Response, body: bytes) -> GatewayFailure:
    """The gateway answers errors in the OpenAI envelope; anything else (a proxy's page) is wrapped in one."""
    try:
        envelope = json.loads(body)
        message = envelope["error"]["message"]
        if not isinstance(message, str):
            raise TypeError(message)
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", "replace").strip()
        message = f"files-gateway answered {response.status_code} {response.reason_phrase}"
        if text:
            message += f": {text}"
        envelope = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    headers = {name: response.headers[name] for name in _PASSED_HEADERS if name in response.headers}
    return GatewayFailure(status=response.status_code, message=message, envelope=envelope, headers=headers)


class GatewayClient:
    """One connection pool per event loop.

    LlamaStack builds providers on a throwaway event loop and serves requests on another; an httpx
    client is bound to the loop it first ran on, so each running loop gets its own.
    """

    def __init__(self, config: FilesGatewayConfig) -> None:
        self.base_url = config.base_url
        self._config = config
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._headers = {"user-agent": f"files-gateway-llamastack/{__version__}"}
        if config.api_key is not None:
            self._headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"

    def _verify(self) -> ssl.SSLContext | bool:
        if not self._config.verify_tls:
            return False
        if self._config.ca_file is None:
            return True
        return ssl.create_default_context(cafile=self._config.ca_file)

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            c = self._config
            client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                verify=self._verify(),
                timeout=httpx.Timeout(c.read_timeout, connect=c.connect_timeout, pool=c.read_timeout),
                limits=httpx.Limits(max_connections=c.max_connections, max_keepalive_connections=c.max_connections),
                follow_redirects=False,
            )
            self._clients[loop] = client
        return client

    def _build(
        self,
        method: str,
        path: str,
        *,
        tenant: str | None,
        params: Mapping[str, Any] | None = None,
        content: AsyncIterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[httpx.AsyncClient, httpx.Request]:
        client = self._client()
        extra = dict(headers or {})
        if tenant is not None:
            extra["openai-project"] = tenant
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return client, client.build_request(method, path, params=query, content=content, headers=extra)

    async def json(self, method: str, path: str, *, tenant: str | None, **kwargs: Any) -> Any:
        """A request whose success is a JSON document; failures raise GatewayFailure."""
        client, request = self._build(method, path, tenant=tenant, **kwargs)
        try:
            response = await client.send(request)
            body = await response.aread()
        except httpx.TransportError as err:
            raise unreachable(self.base_url, err) from err
        if response.is_success:
            try:
                return json.loads(body)
            except ValueError as err:
                raise GatewayFailure(
                    502,
                    f"files-gateway answered {method} {path} with a body that is not JSON",
                    {"error": {"message": "bad gateway answer", "type": "server_error", "param": None, "code": None}},
                ) from err
        raise failure_from(response, body)

    async def stream(self, path: str, *, tenant: str | None) -> httpx.Response:
        """A GET whose body the caller reads (and closes); failures raise GatewayFailure.

        A gateway with presigned downloads answers 302 to the object in S3: followed here, so the
        bytes come straight from there. httpx drops Authorization on a redirect to another origin.
        """
        client, request = self._build("GET", path, tenant=tenant)
        try:
            response = await client.send(request, stream=True, follow_redirects=True)
        except httpx.TransportError as err:
            raise unreachable(self.base_url, err) from err
        if response.is_success:
            return response
        try:
            body = await response.aread()
        except httpx.TransportError as err:
            raise unreachable(self.base_url, err) from err
        finally:
            await response.aclose()
        raise failure_from(response, body)

    async def aclose(self) -> None:
        clients = list(self._clients.items())
        self._clients.clear()
        current = _running_loop()
        for loop, client in clients:
            if loop is current:
                await client.aclose()
            elif not loop.is_closed() and loop.is_running():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
