"""Crash-safe file replacement: the one way this project writes a file that must never be seen half-written."""

from __future__ import annotations

import os
import re
import socket
import uuid

from etils import epath

from chinchilla.runlock import process_alive

# ".<name>.<host>-<pid>-<8 hex>.tmp": who wrote a temporary, so that a later process on the same host can tell a
# dead writer's leftover (SIGKILL between write and rename) from a live writer's file. The host is written without
# dots or dashes, so the last dot before it and the dash after it parse unambiguously.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}\.tmp")


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
        if not match or match["host"] != host:
            continue  # not a temporary of this host's writers
        if process_alive(int(match["pid"])) is False and not entry.is_dir():  # None: not a pid at all, left alone
            try:
                entry.unlink()
            except OSError:  # removed meanwhile by another process
                continue
            removed.append(entry.name)
    return removed
