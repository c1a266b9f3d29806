"""The ``chinchilla`` command line: ``chinchilla <verb> ...``.

Each verb family is a small module of this package (``allocate``, ``fit``, ``flops``, ``sweep``, ``train``) that
defines ``register(subparsers)``. Those
modules import only the standard library at import time (heavy imports happen inside the handlers), so
``chinchilla flops`` or ``chinchilla fit`` start in a fraction of a second.

Errors (``main`` is the one place they are turned into text):

- a bad flag or value (``argparse``), bad input (``ValueError`` from the library), or an operating-system error
  (``OSError``: a missing file, a file in the way, no permission, a name too long, a full disk) -> one line
  ``chinchilla <verb>: error: <what, which path>; <what to do>`` on stderr and exit status 2;
- any other exception is a bug of ours -> one line ``chinchilla <verb>: internal error: ...`` that asks for a rerun
  with ``--verbose``, and exit status 1;
- ``--verbose`` (anywhere on the line) or ``CHINCHILLA_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
import traceback
import warnings
from typing import Sequence

from chinchilla.cli.usage import OneLineParser, StrictParser

# Modules that each add one or more verbs through ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "chinchilla.cli.allocate",
    "chinchilla.cli.fit",
    "chinchilla.cli.flops",
    "chinchilla.cli.sweep",
    "chinchilla.cli.train",
)


VERBOSE_FLAG = "--verbose"
DEBUG_ENV = "CHINCHILLA_DEBUG"
# What to do about an OSError, by errno.
OS_ERROR_HINTS: dict[int, str] = {
    errno.ENOENT: "check the path",
    errno.EEXIST: "a file is in the way: choose another path or move the file",
    errno.ENOTDIR: "a file is in the way where a directory is needed: choose another path",
    errno.EISDIR: "a directory is given where a file is needed",
    errno.EACCES: "check the permissions, or choose a directory you can write",
    errno.EPERM: "check the permissions, or choose a directory you can write",
    errno.EROFS: "the file system is read-only: choose another directory",
    errno.ENAMETOOLONG: "use a shorter name",
    errno.ENOSPC: "free some space (or choose another disk), then rerun the same command: runs resume from their "
                  "last checkpoint",
    errno.EDQUOT: "free some space (or raise the quota), then rerun the same command",
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="chinchilla",
        description="Compute-optimal scaling laws (Hoffmann et al. 2022) in JAX: accounting, training, sweeps, fits.",
    )
    parser.add_argument(VERBOSE_FLAG, action="store_true",
                        help="show the traceback of an error (also: CHINCHILLA_DEBUG=1); may follow the verb")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True,
                                       parser_class=StrictParser)  # every verb names itself in a usage error
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = VERBOSE_FLAG in argv[:argv.index("--")] if "--" in argv else VERBOSE_FLAG in argv
    if verbose:
        argv.remove(VERBOSE_FLAG)
    verbose = verbose or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # a usage error (one line, status 2) or --help (status 0): a status, in-process too
        return exit_.code if isinstance(exit_.code, int) else 2
    args.verbose = verbose
    format_warning = warnings.formatwarning
    if not verbose:  # a warning is one line naming the verb, not two with a line of our source
        warnings.formatwarning = lambda message, category, *_, **__: (
            f"chinchilla {args.command}: warning: {message} ({category.__name__})\n")
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`chinchilla ... | head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"chinchilla {args.command}: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130
    except Exception as error:  # the one error path of the command line
        message, status = describe_error(error)
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"chinchilla {args.command}: {message}", file=sys.stderr)
        return status
    finally:
        warnings.formatwarning = format_warning


def describe_error(error: BaseException) -> tuple[str, int]:
    """The one line for an exception (after ``chinchilla <verb>: ``) and the exit status: 2 for bad input and
    operating-system errors, 1 for anything else (a bug: asks for a rerun with --verbose)."""
    if isinstance(error, ValueError):
        code = re.search(r"os_error_code='(\d+)'", str(error))  # tensorstore's (orbax's) report of an OSError
        hint = OS_ERROR_HINTS.get(int(code.group(1))) if code else None
        return f"error: {error}" + (f"; {hint}" if hint else ""), 2
    if isinstance(error, OSError):
        return f"error: {os_error_text(error)}", 2
    cause = error.__cause__ or error.__context__
    while cause is not None:  # a library's wrapper of an OSError (orbax, TFDS): the OSError is what to report
        if isinstance(cause, OSError):
            return f"error: {os_error_text(cause)}", 2
        cause = cause.__cause__ or cause.__context__
    return (f"internal error: {type(error).__name__}: {error} (a bug: rerun with {VERBOSE_FLAG} and report the "
            "traceback)", 1)


def os_error_text(error: OSError) -> str:
    """``<what>: <path>; <what to do>`` for an OSError (its cause's, when a library wrapped it)."""
    what = error.strerror or str(error) or type(error).__name__
    paths = [p for p in (error.filename, error.filename2) if p is not None]
    where = ": " + " -> ".join(repr(os.fsdecode(p)) for p in paths) if paths else ""
    hint = OS_ERROR_HINTS.get(error.errno or -1)
    return f"{what}{where}" + (f"; {hint}" if hint else "")
