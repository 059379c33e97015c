"""The provider's configuration: the ``config:`` block of a ``remote::s3-files`` files provider."""

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class S3Credentials(BaseModel):
    """Where a deployment keeps the bucket's keys. The gateway holds its own credentials; these names
    are accepted so that existing configurations load, and are not read."""

    model_config = ConfigDict(extra="forbid")

    access_key_id_from_env: str | None = None
    secret_access_key_from_env: str | None = None


class FilesGatewayConfig(BaseModel):
    """Connection to files-gateway, plus the bucket the gateway is expected to serve.

    Unknown keys are refused, so a misspelt option fails at start-up instead of being ignored.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="files-gateway's URL, e.g. http://files-gateway:8080 (no /v1)")
    api_key: SecretStr | None = Field(
        default=None,
        description="Sent as 'Authorization: Bearer ...'. Use a service key ('KEY *' in the gateway's keys file) "
        "when LlamaStack authenticates its users, so each user's files stay apart",
    )
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to open a connection to the gateway")
    read_timeout: float = Field(
        default=60.0, gt=0, description="Seconds of silence from the gateway before a request fails"
    )
    startup_timeout: float = Field(
        default=30.0,
        ge=0,
        description="Seconds start-up waits for the gateway to answer before LlamaStack refuses to start",
    )
    verify_tls: bool = Field(default=True, description="Verify the gateway's TLS certificate (https base_url)")
    ca_file: str | None = Field(default=None, description="PEM bundle to trust for the gateway's certificate")
    max_connections: int = Field(default=64, ge=1, description="Connections kept open to the gateway per event loop")
    upload_chunk_bytes: int = Field(
        default=1024 * 1024, ge=4096, description="Bytes read from an incoming upload per chunk sent on"
    )

    # The keys of the remote::s3-files block that deployments already carry. They describe the bucket
    # the gateway must be serving; start-up checks each one that is set against the gateway.
    endpoint_url: str | None = Field(default=None, description="Expected S3 endpoint of the gateway's bucket")
    bucket: str | None = Field(default=None, description="Expected bucket")
    region: str | None = Field(default=None, description="Expected region")
    tls_verify: bool | None = Field(default=None, description="Expected TLS verification towards S3")
    s3_force_path_style: bool | None = Field(default=None, description="Expected path-style addressing")
    credentials: S3Credentials | None = Field(default=None, description="Accepted, not read: the gateway's own")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {value!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not carry a query or fragment, got {value!r}")
        return value.strip().rstrip("/")

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        # ${env.FILES_GATEWAY_API_KEY:=} substitutes an empty string when the variable is unset.
        return None if value is None or (isinstance(value, str) and value.strip() == "") else value

    @field_validator("endpoint_url", "bucket", "region", "ca_file", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip() == "" else value

    @classmethod
    def sample_run_config(cls, __distro_dir__: str = "", **_: Any) -> dict[str, Any]:
        return {
            "base_url": "${env.FILES_GATEWAY_URL:=http://files-gateway:8080}",
            "api_key": "${env.FILES_GATEWAY_API_KEY:=}",
        }
