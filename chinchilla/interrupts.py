"""Ctrl-C and SIGTERM at safe points.

Python raises ``KeyboardInterrupt`` at whatever bytecode runs when SIGINT arrives; raised inside a ``__del__``, a
weakref or garbage-collector callback it is printed as "Exception ignored" and lost, so a long computation can go on
after Ctrl-C. Long loops (training steps, the fitter's chunks of starts and resamples) instead run inside
:func:`deferred`: a signal is recorded, the loop calls :func:`check` after each unit of work (a dispatch of train
steps, a chunk), saves what it must and stops there. A second signal stops at once, for a loop that is stuck.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "check", "deferred", "pending", "terminate_on_sigterm"]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (what schedulers send): the same clean stop as Ctrl-C, so that whatever cleans up after Ctrl-C
    (a sweep's worker processes, its results table, a checkpoint) runs too."""


_pending: KeyboardInterrupt | None = None
_depth = 0


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def terminate_on_sigterm():
    """SIGTERM raises ``Terminated`` at once (where Python runs next), as Ctrl-C raises ``KeyboardInterrupt``: what a
    command does while it runs (main thread only, else a no-op returning None). Returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _handler(signum, frame) -> None:
    global _pending
    if _pending is not None:  # the second signal: stop now
        raise _exception(signum)
    _pending = _exception(signum)


def pending() -> KeyboardInterrupt | None:
    """The interrupt recorded inside :func:`deferred` and not raised yet (``Terminated`` for SIGTERM), else None."""
    return _pending


def check() -> None:
    """Raise the recorded interrupt, if any (and forget it)."""
    global _pending
    stop, _pending = _pending, None
    if stop is not None:
        raise stop


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside: SIGINT and SIGTERM are recorded for :func:`check` instead of raised; a second one raises at once.

    Nests (the outermost installs the handlers); in a thread other than the main one (where Python delivers signals)
    it changes nothing. On leaving normally, an interrupt recorded and not checked is raised, so none is lost; on
    leaving by an exception, that exception goes on. The handlers in place before are restored."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = None
    if _depth == 0:
        _pending = None
        previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if previous is not None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if _depth == 0:
        check()
