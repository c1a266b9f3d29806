"""The ``chinchilla`` command line: ``chinchilla <verb> ...``.

Each verb family is a small module of this package (``allocate``, ``fit``, ``flops``, ``memory``, ``sweep``,
``train``) that defines ``register(subparsers)``. Those modules import only the standard library at import time
(heavy imports happen inside the handlers), so ``chinchilla flops`` or ``chinchilla fit`` start in a fraction of a
second.

Errors (``main`` is the one place they are turned into text):

- a bad flag or value (``argparse``), bad input (``ValueError`` from the library), or an operating-system error
  (``OSError``: a missing file, a file in the way, no permission, a name too long, a full disk) -> one line
  ``chinchilla <verb>: error: <what, which path>; <what to do>`` on stderr and exit status 2;
- any other exception is a bug of ours -> one line ``chinchilla <verb>: internal error: ...`` that asks for a rerun
  with ``--verbose``, and exit status 1;
- a fault from outside that is no bug (a sweep worker process killed, e.g. by the out-of-memory killer: an exception
  with ``outside_fault``) -> one ``error:`` line saying what happened and that a rerun resumes, exit status 1; no
  backend for ``JAX_PLATFORMS`` -> one line saying how to install one, exit status 2;
- Ctrl-C -> ``interrupted``, exit status 130; SIGTERM (what schedulers send) -> the same clean stop, ``terminated by
  SIGTERM``, exit status 143; the verbs that resume (``RESUMABLE``) say to rerun the command; with ``--json`` an
  interruption is also an error object (``error_kind`` "interrupted");
- ``--verbose`` (anywhere on the line) or ``CHINCHILLA_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence

from chinchilla import interrupts
from chinchilla.cli.usage import OneLineParser, StrictParser
from chinchilla.interrupts import Terminated

# Modules that each add one or more verbs through ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "chinchilla.cli.allocate",
    "chinchilla.cli.fit",
    "chinchilla.cli.flops",
    "chinchilla.cli.memory",
    "chinchilla.cli.sweep",
    "chinchilla.cli.train",
)


VERBOSE_FLAG = "--verbose"
RESUMABLE = ("train", "sweep", "reproduce")  # verbs whose rerun picks up where an interrupted one stopped
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chinchilla-scaling")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="chinchilla",
        description="Compute-optimal scaling laws (Hoffmann et al. 2022) in JAX: accounting, training, sweeps, fits.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        VERBOSE_FLAG,
        action="store_true",
        help="show the traceback of an error (also: CHINCHILLA_DEBUG=1); may follow the verb",
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="<command>", required=True, parser_class=StrictParser
    )  # every verb names itself in a usage error
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    _negative_values_are_values(parser)
    return parser


# What argparse takes for a negative number, and so for a flag's value rather than an option: "-1" and "-0.5" only;
# widened to any word of digits, commas, dots, colons and exponents ("--mesh -1,1,1", "--lr -1e-3").
NEGATIVE_VALUE = re.compile(r"^-\.?\d[\d.,:eE+-]*$")


def _negative_values_are_values(parser: argparse.ArgumentParser) -> None:
    """``--flag -1,1,1`` as ``--flag=-1,1,1``, for every flag of every verb (no option of ours looks like a number)."""
    parser._negative_number_matcher = NEGATIVE_VALUE
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                _negative_values_are_values(sub)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = VERBOSE_FLAG in argv[: argv.index("--")] if "--" in argv else VERBOSE_FLAG in argv
    if verbose:
        argv.remove(VERBOSE_FLAG)
    verbose = verbose or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    parser = build_parser()
    wants_json = "--json" in (argv[: argv.index("--")] if "--" in argv else argv)
    OneLineParser.last_error = None
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # a usage error (one line, status 2) or --help (status 0): a status, in-process too
        status = exit_.code if isinstance(exit_.code, int) else 2
        if wants_json and status == 2 and OneLineParser.last_error is not None:  # --json: an error object on stdout
            prog, message = OneLineParser.last_error
            _print_json_error(message, "usage", status, prog)
        return status
    args.verbose = verbose
    format_warning = warnings.formatwarning
    on_term = interrupts.terminate_on_sigterm()
    if not verbose:  # a warning is one line naming the verb, not two with a line of our source
        warnings.formatwarning = lambda message, category, *_, **__: (
            f"chinchilla {args.command}: warning: {message} ({category.__name__})\n"
        )
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`chinchilla ... | head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (what schedulers send): the same clean stop
        terminated = isinstance(stop, Terminated)
        message = "terminated by SIGTERM" if terminated else "interrupted"
        if args.command in RESUMABLE:
            message += " (rerun the same command to resume)"
        print(f"chinchilla {args.command}: {message}", file=sys.stderr)
        status = 128 + signal.SIGTERM if terminated else 130
        if getattr(args, "json", False):
            _print_json_error(message, "interrupted", status, _command(args))
        return status
    except Exception as error:  # the one error path of the command line
        message, status = describe_error(error)
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"chinchilla {args.command}: {message}", file=sys.stderr)
        if getattr(args, "json", False):
            _print_json_error(
                message.split(": ", 1)[1] if message.startswith("error: ") else message,
                "bad input" if status == 2 else "internal error",
                status,
                _command(args),
            )
        return status
    finally:
        warnings.formatwarning = format_warning
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _print_json_error(message: str, kind: str, status: int, command: str) -> None:
    """With ``--json``, an error is also one JSON object on stdout (what scripts parse), beside the stderr line."""
    from chinchilla.cli.output import print_json

    print_json({"error": message, "error_kind": kind, "exit_status": status, "command": command})


def _command(args: argparse.Namespace) -> str:
    return "chinchilla " + " ".join(x for x in (args.command, getattr(args, "approach", None)) if x)


def describe_error(error: BaseException) -> tuple[str, int]:
    """The one line for an exception (after ``chinchilla <verb>: ``) and the exit status: 2 for bad input and
    operating-system errors, 1 for anything else (a bug: asks for a rerun with --verbose)."""
    if isinstance(error, ValueError):
        code = re.search(r"os_error_code='(\d+)'", str(error))  # tensorstore's (orbax's) report of an OSError
        hint = OS_ERROR_HINTS.get(int(code.group(1))) if code else None
        return f"error: {error}" + (f"; {hint}" if hint else ""), 2
    if isinstance(error, OSError):
        return f"error: {os_error_text(error)}", 2
    if getattr(error, "outside_fault", False):  # e.g. a sweep worker killed from outside: what happened, not a bug
        return f"error: {error}", 1
    backend = no_backend_text(error)
    if backend:
        return f"error: {backend}", 2
    cause = error.__cause__ or error.__context__
    while cause is not None:  # a library's wrapper of an OSError (orbax, TFDS): the OSError is what to report
        if isinstance(cause, OSError):
            return f"error: {os_error_text(cause)}", 2
        cause = cause.__cause__ or cause.__context__
    return (
        f"internal error: {type(error).__name__}: {error} (a bug: rerun with {VERBOSE_FLAG} and report the traceback)",
        1,
    )


BACKEND_INSTALL = {
    "gpu": 'pip install -U "jax[cuda12]" (or "jax[cuda13]" for CUDA 13 drivers) on a machine with an NVIDIA GPU',
    "tpu": 'pip install -U "jax[tpu]" on a Cloud TPU VM',
}


def no_backend_text(error: BaseException) -> str | None:
    """JAX could not start the backend that ``JAX_PLATFORMS`` (or the code) asked for: which, why, and how to
    install one; None for any other error."""
    asked = os.environ.get("JAX_PLATFORMS", "").strip()
    found = re.search(r"Unable to initialize backend '(\w+)'", str(error)) if isinstance(error, RuntimeError) else None
    if found:
        backend = found.group(1)
    elif asked and isinstance(error, AssertionError) and _raised_in(error, "xla_bridge.py"):
        backend = asked.split(",")[0]  # JAX_PLATFORMS=cuda without a CUDA plugin fails an assertion of JAX's
    else:
        return None
    kind = "tpu" if backend == "tpu" else "gpu" if backend in ("gpu", "cuda", "rocm") else None
    wanted = {"gpu": "a GPU backend", "tpu": "the TPU backend"}.get(kind, f"the {backend!r} backend")
    source = f"JAX_PLATFORMS={asked!r} asks for {wanted}" if asked else f"this needs {wanted}"
    unset = "or unset JAX_PLATFORMS to run on what this machine has" if asked else "or run on the CPU"
    known = re.search(r"known backends: (\[[^\]]*\])", str(error))
    bridge = sys.modules.get("jax._src.xla_bridge")
    known = (
        known.group(1)
        if known
        else (str(sorted(bridge._backend_factories)) if hasattr(bridge, "_backend_factories") else None)
    )
    missing_tpu = kind == "tpu" and "libtpu" in str(error)
    if missing_tpu:
        known = "libtpu is not installed"
    if known and (not found or "known backends" in str(error)) or missing_tpu:  # no plugin for it is installed
        how = BACKEND_INSTALL.get(kind, "the JAX plugin for it (https://docs.jax.dev/en/latest/installation.html)")
        return (
            f"{source}, and this JAX installation has none"
            + (f" ({known})" if missing_tpu else f" (its backends: {known})" if known else "")
            + f"; install one: {how}; {unset}"
        )
    reason = str(error).split(": ", 1)[-1].split(" (set JAX_PLATFORMS")[0]
    return (
        f"{source}, which is installed but did not start ({reason}); check that the device is visible "
        f"(nvidia-smi, the TPU runtime) and that the drivers match, {unset}"
    )


def _raised_in(error: BaseException, file_name: str) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in a file named ``file_name``."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and os.path.basename(frames[-1].filename) == file_name


def os_error_text(error: OSError) -> str:
    """``<what>: <path>; <what to do>`` for an OSError (its cause's, when a library wrapped it)."""
    what = error.strerror or str(error) or type(error).__name__
    paths = [p for p in (error.filename, error.filename2) if p is not None]
    where = ": " + " -> ".join(repr(os.fsdecode(p)) for p in paths) if paths else ""
    hint = OS_ERROR_HINTS.get(error.errno or -1)
    return f"{what}{where}" + (f"; {hint}" if hint else "")
