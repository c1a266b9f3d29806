"""What the verbs print besides their results: one strict JSON document on stdout for ``--json`` (an error is one
too: ``chinchilla.cli.main``), and progress lines on stderr for long work."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(payload: Any) -> None:
    """One JSON document on stdout (what ``--json`` promises)."""
    json.dump(payload, sys.stdout, indent=2, sort_keys=False, default=_json_default)
    sys.stdout.write("\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy / jax scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_safe(value):
    """``value`` with every non-finite float (nan, inf) as None, recursively: ``--json`` output is strict JSON
    (no bare NaN or Infinity, which most JSON parsers reject)."""
    import math

    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def progress(what: str, unit: str):
    """The command line's progress callback for long work: a line on stderr every few seconds (none for work that
    ends sooner); the work runs in chunks, so Ctrl-C stops it within seconds (:mod:`chinchilla.fit.progress`)."""
    from chinchilla.fit.progress import StderrProgress

    return StderrProgress(what, unit)
