"""Verb parsers that report their own usage for an unknown flag.

argparse hands the arguments a sub-command does not know back to the top-level parser, which then prints
``usage: chinchilla [-h] <command> ...``: no help to someone who mistyped one of the verb's flags. A parser made
strict by :func:`strict` rejects unknown arguments itself, so the error shows the verb's own usage.
"""

from __future__ import annotations

import argparse


class StrictParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose unknown arguments are an error of this parser (its usage, exit status 2)."""

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
