#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and run edgeshell, or says what to install when not
# root. Used by `cargo xtask dev` and, with --ci, by .ci/run (which also needs the test-only tools).
#
#   scripts/prerequisites.sh [--ci] [--no-postgres]
set -euo pipefail

ci=false
postgres=true
for arg in "$@"; do
  case "$arg" in
    --ci) ci=true ;;
    --no-postgres) postgres=false ;;
    *) echo "usage: $0 [--ci] [--no-postgres]" >&2; exit 2 ;;
  esac
done

missing=()
need() { missing+=("$1"); }

rustup target add wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2 >/dev/null
if $ci; then
  rustup component add clippy rustfmt >/dev/null
fi

# C toolchain for ring, and libFuzzer in CI.
{ command -v cc >/dev/null && command -v c++ >/dev/null; } || need build-essential
# clang builds ring for wasm32-wasip2: the components sign with it.
command -v clang >/dev/null || need clang
# PostgreSQL server binaries: the dev stack and the tests run a private cluster.
if $postgres && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then need postgresql; fi
# Node.js and npm fetch wrangler, Node 22, esbuild, binaryen, xterm.js and playwright-core.
command -v npm >/dev/null || need nodejs npm
# Python 3.11+ with venv for terraform/validate.sh (python-hcl2 and checkov from PyPI).
if $ci && ! python3 -c "import tomllib, venv, ensurepip" >/dev/null 2>&1; then need python3 python3-venv; fi
# Headless Chromium for the browser tests (driven by playwright-core, never downloaded by it).
if $ci && ! command -v chromium >/dev/null; then need chromium fonts-dejavu-core; fi

if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "edgeshell needs these Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

if $ci && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
