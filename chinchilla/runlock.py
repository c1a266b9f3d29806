"""One writer per run directory: ``with hold(run_dir): ...`` around everything that writes a run.

A second process that tries to hold the same directory gets ``RunLockedError`` (a ``ValueError``: the command line
prints it as one line and exits 2), naming the holder: host, pid, and since when.

What is guaranteed where:

- **Local file systems** (ext4, xfs, APFS, tmpfs; also Colab's local disk): the lock is an ``fcntl.flock`` on
  ``<run>/run.lock``. The kernel releases it when the holder exits, however it exits (SIGKILL, OOM kill, a crash),
  so a killed owner never leaves it stuck; the file itself stays behind with the last holder's details, which is
  harmless.
- **NFS** (v4, or v3 with lockd): Linux maps ``flock`` onto NFS byte-range locks, which hold across clients; a
  client that dies loses its lock when the server's lease expires (typically 90 s).
- **FUSE mounts that do not support locks** (e.g. Google Drive in Colab) and **object stores** (``gs://``,
  ``s3://``): no kernel lock exists, so the lock is the ``run.lock`` file itself, written by its holder and removed
  when it finishes. A file left by a process that died is recognised as stale, and taken over, only when it names
  this host and its pid is gone. A file naming another host cannot be checked from here: the run is refused with
  the holder's details, and ``break_lock=True`` (``chinchilla train --break-lock``) takes it over once you know
  that holder is gone. An object store has no atomic create here, so a holder writes its file, waits
  ``SETTLE_S`` and reads it back: of two processes that start within the same moment only the last writer goes on
  (both could still get through if one's read-then-write took longer than ``SETTLE_S``).

Sweep workers claim runs through this lock (``chinchilla.sweep.runner``) with ``nested=True``: the trainer that the
worker then calls in the same process (``train_run`` holds its run directory too) passes through the claim instead
of refusing its own process. A plain ``hold`` registers nothing, so it never lets a nested holder through.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from etils import epath

LOCK_FILE = "run.lock"
SETTLE_S = 0.5  # lock files without kernel locks: wait this long after writing one before reading it back

_NESTED: dict[str, dict[str, Any]] = {}  # run directories this process holds with nested=True -> holder


class RunLockedError(ValueError):
    """The run directory is held by another process (``holder``: its host, pid and since, as far as known)."""

    def __init__(self, message: str, holder: dict[str, Any]):
        super().__init__(message)
        self.holder = holder


def holder_text(holder: dict[str, Any]) -> str:
    """``pid 123 on host h since 2026-01-01T00:00:00Z`` (what is known of a holder)."""
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {holder.get('since', '?')}"


def _me() -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": now}
    started = process_start(os.getpid())
    if started is not None:
        holder["started"] = started
    return holder


def _read_holder(path: epath.Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


MAX_PID = 2**31 - 1  # pid_t: no process on this host has a larger pid


def process_alive(pid: Any) -> bool | None:
    """Whether process ``pid`` exists on this host: True/False, or None when ``pid`` is not a pid at all (not an int
    in 1 ... 2**31 - 1; ``os.kill`` would signal a process group or raise OverflowError)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 1 <= pid <= MAX_PID:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc/<pid>/stat`` field 22), or None where
    that cannot be read: with the pid, it names one process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()  # the command name (field 2) may hold spaces
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive_here(holder: dict[str, Any]) -> bool | None:
    """Whether the holder's process still runs: True/False on this host, None when it cannot be told. A pid that
    now belongs to a process started at another time (the holder died and its pid was reused) is not the holder."""
    if holder.get("host") != socket.gethostname():
        return None
    alive = process_alive(holder.get("pid"))
    started = holder.get("started")
    if alive and isinstance(started, int) and process_start(holder["pid"]) not in (None, started):
        return False
    return alive


def _refuse(run_dir: Any, holder: dict[str, Any], extra: str = "") -> RunLockedError:
    return RunLockedError(
        f"{run_dir} is in use by {holder_text(holder)} ({LOCK_FILE}); wait for it to finish or stop it, then rerun "
        f"(the run resumes from its last checkpoint){extra}",
        holder,
    )


def _key(run_dir: epath.Path) -> str:
    text = str(run_dir)
    return text.rstrip("/") if "://" in text else os.path.realpath(text)


@contextlib.contextmanager
def hold(run_dir: Any, *, break_lock: bool = False, nested: bool = False) -> Iterator[dict[str, Any]]:
    """Hold ``run_dir`` (created if needed) for this process until the block ends; yields this holder's details.

    Raises RunLockedError when another process holds it (see the module docstring for what each kind of storage
    guarantees); ``break_lock`` takes over a lock file that cannot be checked (shared or object storage only).
    ``nested``: holds taken inside this block by this process on the same directory pass through (a sweep worker's
    claim around the trainer, which holds the directory itself); without it they are refused like any other.
    """
    run_dir = epath.Path(run_dir)
    key = _key(run_dir)
    if key in _NESTED:  # this process claimed it for nested holders: already ours
        yield _NESTED[key]
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    me = _me()
    with _lock(run_dir, path, me, break_lock):
        if nested:
            _NESTED[key] = me
        try:
            yield me
        finally:
            _NESTED.pop(key, None)


@contextlib.contextmanager
def _lock(run_dir: epath.Path, path: epath.Path, me: dict[str, Any], break_lock: bool) -> Iterator[None]:
    if "://" not in str(run_dir):
        handle = open(os.fspath(path), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                handle.seek(0)
                try:
                    holder = json.loads(handle.read() or "{}")
                except ValueError:
                    holder = {}
                handle.close()
                raise _refuse(run_dir, holder if isinstance(holder, dict) else {}) from None
            handle.close()  # no kernel locks here (ENOLCK, EOPNOTSUPP: some FUSE mounts): use the file alone
        else:
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(me) + "\n")
                handle.flush()
                yield
            finally:
                handle.close()  # releases the lock; the file stays with the last holder's details
            return
    with _file_lock(run_dir, path, me, break_lock):
        yield


@contextlib.contextmanager
def _file_lock(run_dir: epath.Path, path: epath.Path, me: dict[str, Any], break_lock: bool) -> Iterator[None]:
    """The lock as a file only (object stores, FUSE mounts without locks): its presence is the lock."""
    if path.exists():
        holder = _read_holder(path)
        alive = _alive_here(holder)
        if alive or (alive is None and not break_lock):
            raise _refuse(
                run_dir,
                holder,
                "" if alive else "; if that process is gone, pass --break-lock (break_lock=True) to take the run over",
            )
    path.write_text(json.dumps(me) + "\n")
    if SETTLE_S:  # no atomic create: of two processes that wrote at once, the last writer goes on
        time.sleep(SETTLE_S)
        holder = _read_holder(path)
        if holder != me:
            raise _refuse(run_dir, holder)
    try:
        yield
    finally:
        if _read_holder(path) == me:  # still ours (not broken by another process): release it
            path.unlink()
