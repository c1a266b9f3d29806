"""What the ``fit`` verbs (and ``allocate``) print besides their results: strict JSON for ``--json``, an error as a
JSON object too, and progress lines on stderr for long work."""

from __future__ import annotations

import argparse


def json_errors(run):
    """With ``--json``, an error still prints one JSON object on stdout, ``{"error": ..., "exit_status": ...}``,
    before the usual one line on stderr, so that a script reading stdout sees what went wrong."""
    import functools

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except Exception as error:
            if getattr(args, "json", False):
                from chinchilla.cli import describe_error
                from chinchilla.cli.output import print_json

                message, status = describe_error(error)
                verb = " ".join(x for x in (args.command, getattr(args, "approach", None)) if x)
                print_json(
                    {
                        "error": message.split(": ", 1)[1] if message.startswith("error: ") else message,
                        "error_kind": "bad input" if status == 2 else "internal error",
                        "exit_status": status,
                        "command": f"chinchilla {verb}",
                    }
                )
                error.json_reported = True  # chinchilla.cli.main prints no second object
            raise

    return wrapper


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
