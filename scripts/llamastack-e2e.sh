#!/usr/bin/env bash
# Sets up the real LlamaStack servers that `npm run test:llamastack` runs: OGX 0.8.0 and
# llama-stack 0.7.1 in a Debian trixie chroot (the recipe and offline bundle in
# ../shared/llamastack-e2e/, or LLAMASTACK_E2E_DIR), plus what the provider package's own checks
# need inside it: flake8, and python3-build/pip to build and install its wheel offline; and
# python3-boto3 for the remote::s3 files provider that `npm run bench:peer` runs beside the gateway.
# Needs root and Debian's mirror. Idempotent: seconds when the chroot exists.
set -euo pipefail
cd "$(dirname "$0")/.."

E2E_DIR=${LLAMASTACK_E2E_DIR:-../shared/llamastack-e2e}
ROOT=${OGX_E2E_ROOT:-/opt/trixie}

case "${1:-}" in
  setup)
    [ -f "$E2E_DIR/setup.sh" ] || { echo "no $E2E_DIR/setup.sh: set LLAMASTACK_E2E_DIR" >&2; exit 1; }
    bash "$E2E_DIR/setup.sh" "$E2E_DIR/bundle.tar.gz"
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      flake8 python3-build python3-setuptools python3-wheel python3-pip python3-boto3 >/tmp/llamastack-e2e-apt.log 2>&1 \
      || { tail -20 /tmp/llamastack-e2e-apt.log; exit 1; }
    echo "LlamaStack chroot ready at $ROOT"
    ;;
  *)
    echo "usage: $0 setup" >&2
    exit 2
    ;;
esac
