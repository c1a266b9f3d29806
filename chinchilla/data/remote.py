"""A TFDS data set kept in a bucket (``gs://BUCKET/tfds``), read from a local copy.

Why copy: TFDS reads ``array_record`` files through the ``array_record`` module, which opens ``gs://`` paths only
from version 0.8.3 on (its wheels before that have no GCS reader: "open() failed: No such file or directory;
opening gs://...", google/array_record#120); and each random read from GCS fetches from its offset to the end of
the file. (No release up to 0.8.6 has a GCS *writer*, so ``tfds build --data_dir gs://... --file_format array_record``
fails,
tensorflow/datasets#10981: build on local disk and copy the directory to the bucket, e.g. ``gsutil -m cp -r``.)
The token arrays are built once by one sequential pass over a split, so a local copy costs no extra network
traffic, works with every array_record version this project allows, and is read at disk speed.

``local_data_dir(dataset, "gs://BUCKET/tfds")`` copies ``gs://BUCKET/tfds/<dataset path>`` (every version and
config there, e.g. ``lm1b/1.1.0/...``) once to ``<cache root>/tfds-remote/gs/BUCKET/tfds/<dataset path>`` and
returns that local data_dir; a local data_dir is returned unchanged. Files are copied through ``etils.epath``,
which reads ``gs://`` with TensorFlow's GCS filesystem when TensorFlow is installed (Colab) and otherwise with
``gcsfs`` (``pip install gcsfs``). A finished copy is marked by a ``.complete`` file listing every file and its
size; an interrupted copy is redone on the next call, under a file lock.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from etils import epath

from chinchilla.data import cache

COMPLETE = ".complete"


def is_remote(data_dir: str | os.PathLike | None) -> bool:
    """True for a URL-like data_dir (``gs://``, ``s3://``, ...)."""
    return data_dir is not None and "://" in str(data_dir)


def dataset_path(dataset: str) -> str:
    """The relative directory of a TFDS name: "lm1b" -> "lm1b", "c4/en:3.0.1" -> "c4/en/3.0.1"."""
    name, _, version = dataset.partition(":")
    return f"{name}/{version}" if version else name


def _remote(url: str) -> epath.Path:
    return epath.Path(url)


def _local_mirror(url: str, cache_root: Path) -> Path:
    scheme, _, rest = url.partition("://")
    return cache_root / "tfds-remote" / scheme / rest.strip("/")


def _listing(root: epath.Path) -> dict[str, int]:
    """{relative path: size in bytes} of every file under ``root``."""
    files, pending = {}, [root]
    while pending:
        for path in pending.pop().iterdir():
            if path.is_dir():
                pending.append(path)
            else:
                files[str(path.relative_to(root))] = path.stat().length
    return files


def local_data_dir(
    dataset: str, data_dir: str | os.PathLike | None, *, cache_root: str | os.PathLike | None = None
) -> str | os.PathLike | None:
    """``data_dir`` itself when it is local (or None), else a local copy of the data set's directory under it.

    Raises ``ValueError`` naming the remote directory when it does not exist or cannot be listed (no credentials,
    no GCS filesystem installed), or when it holds no files.
    """
    if not is_remote(data_dir):
        return data_dir
    url = str(data_dir).rstrip("/")
    source_url = f"{url}/{dataset_path(dataset)}"
    local_root = _local_mirror(url, cache.resolve_root(cache_root))
    target = local_root / dataset_path(dataset)
    if (target / COMPLETE).is_file():
        return str(local_root)
    with cache.file_lock(target):
        if (target / COMPLETE).is_file():
            return str(local_root)
        source = _remote(source_url)
        try:
            if not source.is_dir():
                raise FileNotFoundError("no such directory")
            files = _listing(source)
        except Exception as error:  # epath raises ImportError (no gcsfs), auth and not-found errors of many kinds
            name = dataset.partition(":")[0]
            raise ValueError(
                f"dataset={dataset!r}: cannot list {source_url} ({type(error).__name__}: {error}); "
                f"build it on local disk with `tfds build {name} --data_dir /tmp/tfds --file_format "
                f"array_record` (needs TensorFlow, as on Colab; array_record cannot write to gs://), "
                f"then copy /tmp/tfds/{name.split('/')[0]} to {url}/, or pass the local directory as "
                f"data_dir"
            ) from error
        if not files:
            raise ValueError(f"dataset={dataset!r}: {source_url} holds no files")
        if target.exists():
            shutil.rmtree(target)  # an interrupted copy
        for relative in sorted(files):
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            (source / relative).copy(epath.Path(destination), overwrite=True)
            if destination.stat().st_size != files[relative]:
                raise ValueError(
                    f"copy of {source_url}/{relative} to {destination}: {destination.stat().st_size} "
                    f"bytes, expected {files[relative]}"
                )
        (target / COMPLETE).write_text(json.dumps(files, indent=0, sort_keys=True))
    return str(local_root)
