#!/usr/bin/env bash
# The style and type checks CI runs first: ruff's linter and formatter (settings in pyproject.toml) over the whole
# tree, then mypy over the modules pyproject.toml's [tool.mypy] lists. Installs what it needs first (scripts/bootstrap.sh).
# To fix what ruff can fix: .venv/bin/ruff check --fix . && .venv/bin/ruff format .
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/bootstrap.sh")"
cd "$root"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
