"""The ``chinchilla`` command line: ``chinchilla <verb> ...``.

Each verb family is a small module of this package (``allocate``, ``fit``, ``flops``, ``sweep``, ``train``) that
defines ``register(subparsers)``. Those
modules import only the standard library at import time (heavy imports happen inside the handlers), so
``chinchilla flops`` or ``chinchilla fit`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

# Modules that each add one or more verbs through ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "chinchilla.cli.allocate",
    "chinchilla.cli.fit",
    "chinchilla.cli.flops",
    "chinchilla.cli.sweep",
    "chinchilla.cli.train",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chinchilla",
        description="Compute-optimal scaling laws (Hoffmann et al. 2022) in JAX: accounting, training, sweeps, fits.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as error:  # bad input: one clear line, no traceback
        print(f"chinchilla {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`chinchilla ... | head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1

