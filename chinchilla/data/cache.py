"""Where the data pipeline keeps what it builds, and how it writes it safely under concurrent processes.

Everything built once (the embedded TFDS data set, token arrays, SentencePiece models) lives under one cache root:
``$CHINCHILLA_DATA_DIR`` if set, else ``~/.cache/chinchilla``. A build runs under an exclusive ``fcntl`` lock on a
sibling ``.lock`` file and lands by an atomic rename, so two processes starting together build once and never read
a half-written file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ENV_DATA_DIR = "CHINCHILLA_DATA_DIR"
EMBEDDED_VERSION = "1.0.0"  # the embedded corpus's TFDS version: its cache directory names carry it


def default_root() -> Path:
    """The cache root: ``$CHINCHILLA_DATA_DIR`` or ``~/.cache/chinchilla``; a URL there is a ``ValueError``."""
    value = os.environ.get(ENV_DATA_DIR)
    if value and "://" in value:
        raise ValueError(
            f"{ENV_DATA_DIR}={value!r}: the cache root must be a local directory (a TFDS data set in a "
            f"bucket is passed as data_dir, e.g. the colab_tpu preset's CHINCHILLA_TFDS_DIR)"
        )
    return Path(value or Path.home() / ".cache" / "chinchilla").expanduser()


def resolve_root(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir`` as a local directory (created if absent), or the default cache root when it is None."""
    if "://" in str(data_dir or ""):
        raise ValueError(f"data_dir={data_dir!r}: the data cache needs a local directory")
    root = default_root() if data_dir is None else Path(data_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` + ".lock" (blocks until other holders release it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(path: Path, write: Callable[[Path], None]) -> Path:
    """Return ``path``, first creating it with ``write(tmp_path)`` + atomic rename if it does not exist yet.

    ``write`` receives a temporary path in the same directory; the rename makes the result appear whole or not at
    all. Concurrent callers serialise on a lock and all but the first find the file already there.
    """
    if path.exists():
        return path
    with file_lock(path):
        if not path.exists():
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                write(Path(tmp))
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    return path


def save_npy(make: Callable[[], np.ndarray], name: Path | None = None) -> Callable[[Path], None]:
    """A ``write`` for :func:`build_once` that computes ``make()`` and stores it as .npy (readable with mmap);
    ``name``: the file an error names (default: the temporary written)."""

    def write(tmp: Path) -> None:
        write_npy(tmp, make(), name)

    return write


def write_npy(path: Path, array: np.ndarray, name: Path | None = None) -> None:
    """``np.save`` of ``array`` to ``path``. numpy reports a short write (a full disk) as "N requested and M
    written", with no errno and no file: that becomes an ``OSError`` (ENOSPC when the disk has less room than the
    array) naming the file (``name``, else ``path``), the bytes it needed and the bytes free."""
    try:
        with open(path, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
    except OSError as error:
        if error.errno is not None and error.filename is not None:
            raise
        try:
            free = shutil.disk_usage(Path(path).parent).free
        except OSError:
            free = None
        full = error.errno == errno.ENOSPC or (free is not None and free < array.nbytes)
        room = f", {free:,} bytes free there" if free is not None else ""
        what = "No space left on device" if full else (error.strerror or "Short write")
        raise OSError(
            errno.ENOSPC if full else (error.errno or errno.EIO),
            f"{what} (the data cache needed {array.nbytes:,} bytes for this file{room}; numpy: {error}; "
            f"or set {ENV_DATA_DIR} / --data-dir to a disk with room)",
            str(name or path),
        ) from error
