#!/usr/bin/env bash
# The main job: install what is needed, then print the FLOP/parameter accounting of the CPU ladder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/chinchilla flops --zoo tiny "$@"
