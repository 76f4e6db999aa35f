#!/usr/bin/env bash
# Validates terraform/ on a machine where neither terraform nor its providers can be downloaded:
# every .tf file parses (python-hcl2), the names the modules bind match wrangler.toml, spin.toml and the
# pool agent's settings (tests/test_terraform.py), and checkov finds nothing (checks that do not apply
# are skipped in the code, each with its reason). The Python tools are installed from PyPI, at the
# versions requirements.txt pins, into a virtualenv under $HOME/.cache/edgeshell, with helm (the pool
# chart is linted here and rendered by crates/pool-agent/tests/manifests.rs). `--install` only installs.
set -euo pipefail
cd "$(dirname "$0")"

venv="${EDGESHELL_TF_VENV:-$HOME/.cache/edgeshell/tfcheck-venv}"
if ! cmp -s requirements.txt "$venv/requirements.txt" || ! "$venv/bin/python" -c "import hcl2, checkov" 2>/dev/null \
  || ! "$venv/bin/helm" version >/dev/null 2>&1; then
  echo "==> installing $(grep -v '^#' requirements.txt | tr '\n' ' ')into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$venv/requirements.txt"
fi

if [[ "${1:-}" == "--install" ]]; then
  exit 0
fi

echo "==> the pool chart: helm lint"
"$venv/bin/helm" lint --strict ../deploy/helm/edgeshell-pool

echo "==> terraform: parse and cross-check"
"$venv/bin/python" tests/test_terraform.py

echo "==> terraform: checkov"
# --skip-download: no policy updates from the network; the checks are those of the pinned version.
"$venv/bin/checkov" --directory . --quiet --compact --skip-download
