"""``embedded/code``: Python's own standard-library source as a second kind of training data (the paper's Table A2
compares MassiveText with GitHub code), on every machine that has Python, offline.

Documents: every ``.py`` file under ``sysconfig.get_paths()["stdlib"]`` (PSF licence), one document per file, its
raw bytes (byte tokens). Left out: anything under ``site-packages`` / ``dist-packages`` (third-party code, and what
is installed differs between machines), and the test suites: files under a directory named ``test``, ``tests`` or
``idle_test`` (``Lib/test`` alone is larger than the rest of the library, full of deliberately malformed and
generated files, and absent from some distributions' Python, e.g. Debian's without ``libpython3-testsuite``). Files
containing a NUL byte are skipped too (NUL separates documents in the token array). On CPython 3.11 that leaves
about 730 files, 12 MB.

Split: a file goes to validation when ``sha256(relative path) mod VALIDATION_MODULUS == 0`` (about 5%), so the
splits are disjoint by construction and the same on every machine with the same library.

The corpus depends on the Python that reads it, so its cache name carries the Python version and a fingerprint of
the file list (relative paths and sizes): ``embedded__code-py3.11.7-<8 hex>``; another Python builds another cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

NAME = "embedded/code"
SPLITS = ("train", "validation")
VALIDATION_MODULUS = 20
EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})
READ_CHUNK = 256


def stdlib_root() -> Path:
    """The standard library's directory of the running Python."""
    return Path(sysconfig.get_paths()["stdlib"])


def split_of(relative_path: str) -> str:
    """ "validation" for about 1 in ``VALIDATION_MODULUS`` files (by a hash of the POSIX relative path), else
    "train"."""
    digest = int.from_bytes(hashlib.sha256(relative_path.encode()).digest()[:8], "big")
    return "validation" if digest % VALIDATION_MODULUS == 0 else "train"


@functools.lru_cache(maxsize=8)
def source_files(root: str | None = None) -> tuple[tuple[str, int], ...]:
    """Every kept ``.py`` file under ``root`` (default: the stdlib) as (POSIX relative path, size in bytes), sorted
    by path. Raises ValueError if ``root`` holds no such file."""
    base = Path(root) if root is not None else stdlib_root()
    found = []
    for directory, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS)
        for name in files:
            if name.endswith(".py"):
                path = Path(directory) / name
                if path.is_file():
                    found.append((path.relative_to(base).as_posix(), path.stat().st_size))
    if not found:
        raise ValueError(f"dataset={NAME!r}: no .py files under {str(base)!r} (the Python standard library)")
    return tuple(sorted(found))


def fingerprint(root: str | None = None) -> str:
    """The cache key of the corpus: Python version plus 8 hex digits of the file list (paths and sizes)."""
    digest = hashlib.sha256(repr(source_files(root)).encode()).hexdigest()[:8]
    return f"py{platform.python_version()}-{digest}"


def cache_name(root: str | None = None) -> str:
    """The corpus's directory name in the token cache, e.g. ``embedded__code-py3.11.7-1a2b3c4d``."""
    return f"{NAME.replace('/', '__')}-{fingerprint(root)}"


class CodeDocuments(Sequence):
    """The files of one split as documents (raw bytes), in path order; ``chunks`` as a TFDS-backed column's."""

    def __init__(self, split: str, root: str | None = None):
        if split not in SPLITS:
            raise ValueError(f"split={split!r} of dataset={NAME!r}: choose one of {SPLITS}")
        self.root = Path(root) if root is not None else stdlib_root()
        files = source_files(None if root is None else str(root))
        self.paths = tuple(p for p, _ in files if split_of(p) == split)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        data = (self.root / self.paths[index]).read_bytes()
        return b"" if b"\0" in data else data

    def read(self, start: int, stop: int) -> Iterator[bytes]:
        """Documents ``[start, stop)`` in path order; files with a NUL byte are left out."""
        for index in range(start, min(stop, len(self))):
            document = self[index]
            if document:
                yield document

    def chunks(self, limit: int | None = None) -> Iterator[list[bytes]]:
        """Documents in path order, ``READ_CHUNK`` at a time; files with a NUL byte are left out."""
        count = len(self) if limit is None else min(limit, len(self))
        for start in range(0, count, READ_CHUNK):
            chunk = [self[i] for i in range(start, min(start + READ_CHUNK, count))]
            yield [doc for doc in chunk if doc]


def documents(split: str, root: str | None = None) -> CodeDocuments:
    """The split's documents (see the module docstring)."""
    return CodeDocuments(split, root)
