"""files-gateway as LlamaStack's files provider (``provider_type: remote::s3-files``).

LlamaStack imports ``files_gateway_llamastack.provider`` for the provider's spec, then calls
``get_adapter_impl`` here with the parsed ``config:`` block.
"""

from typing import Any

from .config import FilesGatewayConfig
from .version import __version__

__all__ = ["FilesGatewayConfig", "__version__", "get_adapter_impl"]


async def get_adapter_impl(config: FilesGatewayConfig, _deps: dict[Any, Any]) -> Any:
    from .files import FilesGatewayAdapter

    impl = FilesGatewayAdapter(config)
    await impl.initialize()
    return impl
