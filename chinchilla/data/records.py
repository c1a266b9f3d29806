"""Random-access documents of a data set split by name: the embedded corpora and prepared TFDS data sets (read
through ``as_data_source``, no TensorFlow). ``files:`` data sets are streamed by ``chinchilla.data.files``.

Kept apart from ``sources`` (which builds token arrays through ``token_cache``) so that the token cache's worker
processes can read a unit's documents without importing ``sources`` (no import circle).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from chinchilla.data import files

EMBEDDED = {"embedded": "all", "embedded/shakespeare": "shakespeare", "embedded/kjv": "kjv"}
EMBEDDED_SPLITS = ("train", "validation")
READ_CHUNK = 1024


def unavailable(dataset: str, data_dir, error: Exception) -> ValueError:
    where = f"data_dir={str(data_dir)!r}" if data_dir is not None else "TFDS's default data dir"
    first_line = (str(error).strip().splitlines() or [""])[0]  # TFDS appends its whole catalogue: keep the gist
    if len(first_line) > 160:
        first_line = first_line[:157] + "..."
    return ValueError(
        f"dataset={dataset!r} is not available in {where} ({type(error).__name__}: {first_line}). Use 'embedded', "
        f"'embedded/shakespeare' or 'embedded/kjv' offline, files:GLOB for your own .txt/.jsonl/.parquet shards "
        f"(docs/data.md), or prepare the TFDS data set first, where there is network access: `tfds build "
        f"{dataset} --data_dir DIR --file_format array_record`, then pass data_dir=DIR"
    )


def documents(dataset: str, split: str, *, data_dir=None, text_key: str = "text") -> Sequence[bytes]:
    """Random-access documents (UTF-8 bytes) of a split, read through ``as_data_source`` (no TensorFlow)."""
    if dataset in EMBEDDED:
        if split not in EMBEDDED_SPLITS:
            raise ValueError(f"split={split!r} of dataset={dataset!r}: choose one of {EMBEDDED_SPLITS}")
        from chinchilla.data import corpus

        source = corpus.builder(EMBEDDED[dataset], data_dir).as_data_source(split=split)
        return _TextColumn(source, "text")
    if dataset == "embedded/code":
        from chinchilla.data import code_corpus

        return code_corpus.documents(split)
    if files.is_files(dataset):
        raise ValueError(f"dataset={dataset!r}: a files: data set is streamed by files.documents, not indexed")
    if dataset.startswith("embedded"):
        raise ValueError(f"dataset={dataset!r}: the embedded corpus comes as {tuple(EMBEDDED)}")
    import tensorflow_datasets as tfds

    from chinchilla.data import remote

    data_dir = remote.local_data_dir(dataset, data_dir)  # gs://... -> a local copy, made once (see remote.py)
    try:
        source = tfds.data_source(dataset, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # TFDS raises many kinds (DatasetNotFoundError, AssertionError, ValueError...)
        raise unavailable(dataset, data_dir, error) from error
    if len(source) and text_key not in source[0]:
        raise ValueError(
            f"dataset={dataset!r} has no text feature text_key={text_key!r}; its features: {sorted(source[0])}"
        )
    return _TextColumn(source, text_key)


class _TextColumn(Sequence):
    """One text feature of a TFDS data source, as a sequence of bytes."""

    def __init__(self, source, key: str):
        self._source, self._key = source, key

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index):
        value = self._source[index][self._key]
        return value if isinstance(value, bytes) else str(value).encode("utf-8")

    def read(self, start: int, stop: int) -> Iterator[bytes]:
        """Documents ``[start, stop)`` in record order, read ``READ_CHUNK`` at a time."""
        for first in range(start, min(stop, len(self)), READ_CHUNK):
            records = self._source.__getitems__(list(range(first, min(first + READ_CHUNK, stop, len(self)))))
            for record in records:
                value = record[self._key]
                yield value if isinstance(value, bytes) else str(value).encode("utf-8")

    def chunks(self, limit: int | None = None) -> Iterator[list[bytes]]:
        """Documents in record order, ``READ_CHUNK`` at a time (one batched read each)."""
        count = len(self) if limit is None else min(limit, len(self))
        for start in range(0, count, READ_CHUNK):
            indices = list(range(start, min(start + READ_CHUNK, count)))
            records = self._source.__getitems__(indices)
            yield [
                record[self._key] if isinstance(record[self._key], bytes) else str(record[self._key]).encode("utf-8")
                for record in records
            ]
