"""Crash-safe file replacement: the one way this project writes a file that must never be seen half-written."""

from __future__ import annotations

import os
import re
import socket
import uuid

from etils import epath

# ".<name>.<host>-<pid>-<8 hex>.tmp": who wrote a temporary, so that a later process on the same host can tell a
# dead writer's leftover (SIGKILL between write and rename) from a live writer's file. The host is written without
# dots or dashes, so the last dot before it and the dash after it parse unambiguously.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}\.tmp")
_MAX_PID = 2**31 - 1  # pid_t; a larger number in a name is not a pid this host can have


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def write_text(path: epath.Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path`` (atomic on POSIX file
    systems). If the write or the rename fails (e.g. ENOSPC), the temporary is removed and the error re-raised:
    the previous ``path`` is left as it was. A process killed between the two leaves the temporary behind:
    ``remove_dead_temporaries`` clears such leftovers."""
    temporary = path.parent / f".{path.name}.{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        temporary.write_text(text)
        temporary.replace(path)
    except BaseException:
        try:
            temporary.unlink()
        except OSError:
            pass  # never created, or already gone: nothing left behind
        raise


def _alive(pid: int) -> bool:
    """Whether process ``pid`` (1 <= pid <= 2**31 - 1) exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_dead_temporaries(directory: epath.Path) -> list[str]:
    """Delete the temporaries of ``write_text`` in ``directory`` that were written on this host by a process that
    no longer runs (killed between write and rename); a live writer's, or another host's (a shared sweep directory),
    are left alone. Returns the names removed. A directory that does not exist has none."""
    removed = []
    if not directory.is_dir():
        return removed
    host = _host()
    for entry in directory.iterdir():
        match = _TEMPORARY.fullmatch(entry.name)
        if not match or match["host"] != host or not 1 <= int(match["pid"]) <= _MAX_PID:
            continue  # not a temporary of this host's writers
        if not _alive(int(match["pid"])) and not entry.is_dir():
            try:
                entry.unlink()
            except OSError:  # removed meanwhile by another process
                continue
            removed.append(entry.name)
    return removed
