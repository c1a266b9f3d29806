"""Crash-safe file replacement: the one way this project writes a file that must never be seen half-written."""

from __future__ import annotations

import os
import uuid

from etils import epath


def write_text(path: epath.Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path`` (atomic on POSIX file
    systems). If the write or the rename fails (e.g. ENOSPC), the temporary is removed and the error re-raised:
    the previous ``path`` is left as it was."""
    temporary = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        temporary.write_text(text)
        temporary.replace(path)
    except BaseException:
        try:
            temporary.unlink()
        except OSError:
            pass  # never created, or already gone: nothing left behind
        raise
