#!/usr/bin/env bash
# Create or update a virtual environment idempotently and print its directory on stdout (everything else goes to
# stderr). It reinstalls only when pyproject.toml, the constraints file or this script changed since the last
# successful install. Used by scripts/test.sh and scripts/reproduce.sh.
#
# CHINCHILLA_DEPS selects the dependency set (both install the project editable with its test and lint extras):
#   lock   (default) -> .venv,        constrained by requirements/lock.txt   (the exact tested set)
#   oldest           -> .venv-oldest, constrained by requirements/oldest.txt (the oldest versions pyproject allows)
# The embedded corpus ships inside the package (chinchilla/data/embedded): nothing else is fetched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
deps="${CHINCHILLA_DEPS:-lock}"
case "$deps" in
  lock) venv=.venv ;;
  oldest) venv=.venv-oldest ;;
  *) echo "bootstrap: CHINCHILLA_DEPS=$deps: choose lock or oldest" >&2; exit 1 ;;
esac
constraints="requirements/$deps.txt"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "bootstrap: needs Python >= 3.11 (found: $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.chinchilla-install-stamp"
want="$(cat pyproject.toml "$constraints" scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log="$venv/install.log"
  echo "bootstrap: installing the project into $venv with $constraints (about a minute; log: $log)" >&2
  pip_install() {
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1; then
      echo "bootstrap: 'pip install $*' failed; the end of $log:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
  }
  : > "$log"
  pip_install --upgrade pip
  pip_install -c "$constraints" -e ".[test,lint]"
  echo "$want" > "$stamp"
fi
echo "$root/$venv"
