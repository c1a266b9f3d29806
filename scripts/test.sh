#!/usr/bin/env bash
# Run the whole test suite on the CPU backend (installs what it needs first). Extra arguments go to pytest.
# CHINCHILLA_DEPS=oldest runs it on the oldest dependency versions pyproject.toml allows (see scripts/bootstrap.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/bootstrap.sh")"
cd "$root"
export JAX_PLATFORMS=cpu
exec "$venv/bin/python" -m pytest "$@"
