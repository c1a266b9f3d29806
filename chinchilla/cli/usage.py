"""The command line's parsers: a usage error is one line that names the verb and points to its own help.

argparse hands the arguments a sub-command does not know back to the top-level parser, which then blames
``chinchilla`` itself: no help to someone who mistyped one of the verb's flags. A parser made strict by
:func:`strict` rejects unknown arguments itself, so the error names the verb and its ``--help``.
"""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (``chinchilla <verb>: error: ...``), exit status 2, and takes
    flags only as spelled (no abbreviations: ``--bootstrap 4000`` is not taken as ``--bootstrap-scheme 4000``)."""

    last_error: tuple[str, str] | None = None  # (prog, message) of the latest usage error, for --json's error object

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        OneLineParser.last_error = (self.prog, message)
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class StrictParser(OneLineParser):
    """A parser whose unknown arguments are an error of this parser (the verb named, exit status 2)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def strict(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` (made by ``add_parser``) as a :class:`StrictParser`: a subclass that adds no state, so the
    instance keeps every argument already added."""
    parser.__class__ = StrictParser
    return parser
