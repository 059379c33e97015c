"""The LlamaStack server this package runs in: OGX (0.8 on, import root ``ogx``) or llama-stack
(0.5-0.7, import root ``llama_stack``).

The two releases carry the same Files API under different package names. The choice is made once,
at import: the server that is already imported wins (it is the one loading this provider), and on
a bare import (tests, tooling) OGX is tried before llama-stack.
"""

import importlib
import sys
from types import ModuleType

# (server package, API package, the API package's base error, the server's request context module)
_ROOTS = (
    ("ogx", "ogx_api", "OGXError", "ogx.core.request_headers"),
    ("llama_stack", "llama_stack_api", "LlamaStackError", "llama_stack.core.request_headers"),
)


def _pick_root() -> tuple[str, str, str, str]:
    for root in _ROOTS:
        if root[0] in sys.modules:
            return root
    for root in _ROOTS:
        try:
            importlib.import_module(root[1])
        except ImportError:
            continue
        return root
    raise ImportError(
        "files_gateway_llamastack runs inside a LlamaStack server: neither ogx (0.8+) nor llama_stack (0.5-0.7) "
        "is importable"
    )


SERVER, _API, _ERROR, _HEADERS = _pick_root()

api: ModuleType = importlib.import_module(_API)
"""The Files API's models, protocol and errors: ``ogx_api`` or ``llama_stack_api``."""

StackError: type[Exception] = getattr(importlib.import_module(f"{_API}.common.errors"), _ERROR)
"""Errors of this class reach the client with their ``status_code`` and message in the OpenAI envelope."""

_request_headers = importlib.import_module(_HEADERS)


def authenticated_principal() -> str | None:
    """The principal LlamaStack's auth middleware authenticated for the current request, if any."""
    user = _request_headers.get_authenticated_user()
    principal = getattr(user, "principal", None) if user is not None else None
    return principal or None
