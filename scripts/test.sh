#!/usr/bin/env bash
# Run the whole test suite on the CPU backend (installs what it needs first), in parallel: pytest-xdist, one worker
# per core (-n auto; the slow tests first, see tests/conftest.py). Extra arguments go to pytest (-n 0: one process,
# e.g. for --pdb). --fast leaves out the tests marked slow (each takes over ~5 s: real training, sweeps, subprocesses).
# CHINCHILLA_DEPS=oldest runs it on the oldest dependency versions pyproject.toml allows (see scripts/bootstrap.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/bootstrap.sh")"
cd "$root"
export JAX_PLATFORMS=cpu
args=(-n auto)
for arg in "$@"; do
  if [ "$arg" = "--fast" ]; then
    args+=(-m "not slow")
  else
    args+=("$arg")
  fi
done
exec "$venv/bin/python" -m pytest "${args[@]}"
