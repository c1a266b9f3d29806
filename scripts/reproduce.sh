#!/usr/bin/env bash
# The main job: install what is needed, then run the tiny_cpu reproduction end to end (sweep -> Approaches 1-3 ->
# report with figures) into runs/tiny_cpu and print the Table-2-style summary. Resumable: run it again after an
# interruption. Extra arguments go to `chinchilla reproduce` (e.g. --out DIR, --preset synthetic).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/bootstrap.sh")"
cd "$root"
exec "$venv/bin/chinchilla" reproduce --preset tiny_cpu --out runs/tiny_cpu "$@"
