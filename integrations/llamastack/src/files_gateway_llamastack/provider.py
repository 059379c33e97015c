"""The provider spec LlamaStack reads when a files provider names ``module: files_gateway_llamastack``."""

from typing import Any

from ._stack import api

PROVIDER_TYPE = "remote::s3-files"


def get_provider_spec() -> Any:
    return api.RemoteProviderSpec(
        api=api.Api.files,
        provider_type=PROVIDER_TYPE,
        adapter_type="s3-files",
        module="files_gateway_llamastack",
        config_class="files_gateway_llamastack.config.FilesGatewayConfig",
        pip_packages=["files-gateway-llamastack"],
        description="Files stored by files-gateway (S3/MinIO or a local folder); the gateway is the source of truth.",
    )
