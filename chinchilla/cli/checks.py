"""Checks of command-line values where they enter: ``argparse`` type functions for numbers and paths.

Each returns the parsed value or raises ``argparse.ArgumentTypeError`` with the reason, which the parser prints as
one line (``chinchilla <verb>: error: argument --flops: ...``) and exit status 2. Standard library only, so that
every verb's parser stays cheap to build.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

# URL schemes a run or sweep directory may use (through etils.epath): Google Cloud Storage and S3.
REMOTE_SCHEMES: tuple[str, ...] = ("gs", "s3")
NAME_MAX = 255  # the longest file name most local file systems accept (ext4, APFS, NTFS)


def number(low: float, high: float, reason: str) -> Callable[[str], float]:
    """A type function for a finite float in [low, high]; ``reason`` (why the bounds) goes into the message."""

    def parse(text: str) -> float:
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} lies outside [{low:g}, {high:g}] ({reason})")
        return value

    parse.__name__ = "number"
    return parse


def count(low: int = 1, high: float = 1e18, reason: str = "a count") -> Callable[[str], int]:
    """A type function for a whole number written as 2000000, 2e6 or 2_000_000, in [low, high]."""
    as_float = number(low, high, reason)

    def parse(text: str) -> int:
        value = as_float(text)
        if value != int(value):
            raise argparse.ArgumentTypeError(f"{text} is not a whole number")
        return int(value)

    parse.__name__ = "count"
    return parse


# A bootstrap seed: numpy.random.default_rng takes any non-negative whole number; 2^32 - 1 keeps it exact.
SEED = count(0, 2**32 - 1, "a random seed: a non-negative whole number")
# A FLOP budget or threshold (the paper's largest budget is 5.76e23).
FLOPS = number(1.0, 1e40, "a FLOP count: positive, the paper's largest budget is 5.76e23")
PERCENTILE = number(0.0, 100.0, "a percentile")


class IncreasingPair(argparse.Action):
    """The action of an ``nargs=2`` flag whose values must increase (``--percentiles LOW HIGH``): LOW >= HIGH is a
    usage error naming the flag, not a reversed interval."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        low, high = values
        if not low < high:
            raise argparse.ArgumentError(self, f"LOW {low:g} must be below HIGH {high:g} (e.g. 10 90)")
        setattr(namespace, self.dest, (low, high))


def directory() -> Callable[[str], str]:
    """A type function for a directory to create or reuse: a local path whose existing part is a directory (not a
    file), whose names are not too long, or a ``gs://`` / ``s3://`` URL."""

    def parse(text: str) -> str:
        problem = directory_problem(text)
        if problem:
            raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
        return text

    parse.__name__ = "directory"
    return parse


def directory_problem(text: str) -> str | None:
    """Why ``text`` cannot be a run or sweep directory (None if it can, as far as can be told without writing)."""
    if not text:
        return "empty path"
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme not in REMOTE_SCHEMES:
            return (
                f"unknown URL scheme {scheme + '://'!r}; use a local path or one of "
                f"{', '.join(s + '://' for s in REMOTE_SCHEMES)}"
            )
        return None
    path = os.path.abspath(os.path.expanduser(text))
    long_names = [part for part in path.split(os.sep) if len(part.encode()) > NAME_MAX]
    if long_names:
        return f"a name of {len(long_names[0].encode())} bytes is longer than {NAME_MAX}; use a shorter one"
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if os.path.exists(probe) and not os.path.isdir(probe):
        where = "is" if probe == path else f"lies under {probe!r}, which is"
        return f"{where} a file, not a directory; choose another path"
    return None
