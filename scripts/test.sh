#!/usr/bin/env bash
# Run the whole test suite on the CPU backend (installs what it needs first). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
export JAX_PLATFORMS=cpu
exec .venv/bin/python -m pytest "$@"
