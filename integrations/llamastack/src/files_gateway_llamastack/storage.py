"""The bucket a configuration expects, held against the one the gateway says it serves."""

from typing import Any
from urllib.parse import urlsplit

from .config import FilesGatewayConfig

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_endpoint(url: str) -> str:
    """scheme://host:port with the default port spelt out, lower case, no trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    path = parts.path.rstrip("/")
    return f"{scheme}://{host}:{port}{path}"


def storage_mismatches(config: FilesGatewayConfig, info: dict[str, Any]) -> list[str]:
    """One sentence per expected key that the gateway's storage does not match; empty when all do."""
    expected = {
        "endpoint_url": config.endpoint_url,
        "bucket": config.bucket,
        "region": config.region,
        "tls_verify": config.tls_verify,
        "s3_force_path_style": config.s3_force_path_style,
    }
    expected = {key: value for key, value in expected.items() if value is not None}
    if not expected:
        return []
    where = f"files-gateway at {config.base_url}"
    s3 = info.get("s3")
    if info.get("store") != "s3" or not isinstance(s3, dict):
        return [
            f"config.{key} is {value!r} but {where} stores files in {info.get('store')!r}, not in an S3 bucket"
            for key, value in expected.items()
        ]
    actual = {
        "endpoint_url": s3.get("endpoint"),
        "bucket": s3.get("bucket"),
        "region": s3.get("region"),
        "tls_verify": s3.get("tls_verify"),
        "s3_force_path_style": s3.get("force_path_style"),
    }
    problems = []
    for key, want in expected.items():
        have = actual[key]
        if key == "endpoint_url":
            if have is None:
                problems.append(f"config.endpoint_url is {want!r} but {where} uses the AWS SDK's default endpoint")
            elif normalize_endpoint(want) != normalize_endpoint(have):
                problems.append(f"config.endpoint_url is {want!r} but {where} serves endpoint {have!r}")
        elif want != have:
            problems.append(f"config.{key} is {want!r} but {where} serves {key} {have!r}")
    return problems
