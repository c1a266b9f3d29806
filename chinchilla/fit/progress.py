"""Progress of long fitting work, and the chunks that keep it stoppable.

A jitted computation cannot be interrupted: Ctrl-C (SIGINT) is only seen by Python when the compiled call returns.
So every long computation of the fitters (bootstrap resamples, a fit from thousands of starts, the resample loops
of Approaches 1 and 2) works in chunks: each chunk is one call of the same compiled program (the last one padded to
the chunk's size, so there is one program), and between chunks a ``progress(done, total)`` callback is called.
Ctrl-C therefore stops the work within one chunk (a second or two), and the callback can show progress.

Chunks do not change results: every resample and every start is solved on its own (``lax.map``; ``vmap`` lanes
are independent), so the chunked answer equals the unchunked one (tested to the bit on CPU).

:class:`StderrProgress` is the command line's callback: one line on stderr at most every ``interval`` seconds
(``$CHINCHILLA_PROGRESS_INTERVAL``, default 5), and only for work that is not over within the first interval.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

import jax

Progress = Callable[[int, int], None]
DEFAULT_INTERVAL_S = 5.0
# Resamples / starts per compiled call: about 1-2 s each on a CPU core (a bootstrap resample of 240 runs with 3
# starts takes ~8 ms, a start ~2 ms); larger on an accelerator, where lanes run side by side.
CPU_CHUNK = {"resamples": 256, "starts": 512}
ACCELERATOR_CHUNK = {"resamples": 4096, "starts": 4096}


def default_chunk(kind: str) -> int:
    """Items per compiled call for ``kind`` ("resamples" or "starts") on the default backend."""
    return (CPU_CHUNK if jax.default_backend() == "cpu" else ACCELERATOR_CHUNK)[kind]


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``size`` items covering ``range(total)``."""
    if size < 1:
        raise ValueError(f"chunk size {size!r} must be at least 1")
    for start in range(0, total, size):
        yield start, min(total, start + size)


def report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def format_seconds(seconds: float) -> str:
    """A duration for people: ``"3.2 s"`` under 10 s, ``"42 s"``, ``"17 min"`` under 90 min, else ``"2.5 h"``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StderrProgress:
    """``progress(done, total)`` that prints ``<what>: done/total <unit> (p%), elapsed, about T left`` on
    ``stream`` at most every ``interval`` seconds, and a last line when work it has reported on ends."""

    def __init__(
        self,
        what: str,
        unit: str,
        *,
        interval: float | None = None,
        stream: TextIO | None = None,
        prefix: str = "chinchilla fit: ",
    ):
        if interval is None:
            interval = float(os.environ.get("CHINCHILLA_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S))
        self.what, self.unit, self.interval, self.prefix = what, unit, interval, prefix
        self.stream = stream
        self.started = time.monotonic()
        self.last = self.started
        self.printed = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if not (now - self.last >= self.interval or (finished and self.printed)):
            return
        self.last = now
        elapsed = now - self.started
        text = (
            f"{self.prefix}{self.what}: {done:,}/{total:,} {self.unit} ({done / max(total, 1):.1%}), "
            f"{format_seconds(elapsed)}"
        )
        if not finished and done > 0:
            text += f", about {format_seconds(elapsed * (total - done) / done)} left (Ctrl-C stops)"
        elif finished:
            text += ", done"
        print(text, file=self.stream or sys.stderr, flush=True)
        self.printed = True
