"""Data sets by name -> documents -> one cached array of tokens per (data set, split, tokenizer).

Names: "embedded" (Shakespeare + KJV, built offline, see ``corpus``), "embedded/shakespeare", "embedded/kjv", or
any TFDS text data set ("lm1b", "c4/en", "wikipedia/20230601.en", ...) already prepared in array_record format
under ``data_dir`` (or TFDS's default data dir): it is read with ``tfds.data_source(..., download=False)``, never
downloaded here, and its documents are the ``text_key`` feature.

The token array of a split is every document's tokens followed by the tokenizer's separator, in the data set's
record order, stored once as ``<cache root>/tokens/<data set>/<split>/<tokenizer fingerprint>.npy`` (uint8 for
bytes, uint16 for vocabularies up to 65,536) and memory-mapped afterwards. Once it exists, nothing imports TFDS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from chinchilla.data import cache

EMBEDDED = {"embedded": "all", "embedded/shakespeare": "shakespeare", "embedded/kjv": "kjv"}
EMBEDDED_SPLITS = ("train", "validation")
SENTENCEPIECE_MAX_CHARS = 50_000_000  # train a tokenizer of a large external data set on its first 50M characters
READ_CHUNK = 1024


def cache_name(dataset: str) -> str:
    """A directory name for a data set ("embedded" -> "embedded-1.0.0", "c4/en" -> "c4__en")."""
    if dataset in EMBEDDED:
        return f"{dataset.replace('/', '__')}-{cache.EMBEDDED_VERSION}"
    if dataset == "embedded/code":  # Python's standard library: the name carries the Python version
        from chinchilla.data import code_corpus

        return code_corpus.cache_name()
    return dataset.replace("/", "__").replace(":", "_")


def cache_root(data_dir: str | os.PathLike | None) -> Path:
    """Where token arrays and tokenizers go: a local ``data_dir``, else the default cache root."""
    if data_dir is not None and "://" in str(data_dir):
        return cache.resolve_root(None)
    return cache.resolve_root(data_dir)


def _unavailable(dataset: str, data_dir, error: Exception) -> ValueError:
    where = f"data_dir={str(data_dir)!r}" if data_dir is not None else "TFDS's default data dir"
    first_line = (str(error).strip().splitlines() or [""])[0]  # TFDS appends its whole catalogue: keep the gist
    if len(first_line) > 160:
        first_line = first_line[:157] + "..."
    return ValueError(
        f"dataset={dataset!r} is not available in {where} ({type(error).__name__}: {first_line}). Use 'embedded', "
        f"'embedded/shakespeare' or 'embedded/kjv' offline, or prepare the TFDS data set first, where there is "
        f"network access: `tfds build {dataset} --data_dir DIR --file_format array_record`, then pass "
        f"data_dir=DIR")


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
    if dataset.startswith("embedded"):
        raise ValueError(f"dataset={dataset!r}: the embedded corpus comes as {tuple(EMBEDDED)}")
    import tensorflow_datasets as tfds

    from chinchilla.data import remote

    data_dir = remote.local_data_dir(dataset, data_dir)  # gs://... -> a local copy, made once (see remote.py)
    try:
        source = tfds.data_source(dataset, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # TFDS raises many kinds (DatasetNotFoundError, AssertionError, ValueError...)
        raise _unavailable(dataset, data_dir, error) from error
    if len(source) and text_key not in source[0]:
        raise ValueError(f"dataset={dataset!r} has no text feature text_key={text_key!r}; its features: "
                         f"{sorted(source[0])}")
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

    def chunks(self, limit: int | None = None) -> Iterator[list[bytes]]:
        """Documents in record order, ``READ_CHUNK`` at a time (one batched read each)."""
        count = len(self) if limit is None else min(limit, len(self))
        for start in range(0, count, READ_CHUNK):
            indices = list(range(start, min(start + READ_CHUNK, count)))
            records = self._source.__getitems__(indices)
            yield [record[self._key] if isinstance(record[self._key], bytes)
                   else str(record[self._key]).encode("utf-8") for record in records]


def training_lines(dataset: str, *, data_dir=None, text_key: str = "text") -> Iterator[str]:
    """Non-empty lines of the train split (at most ``SENTENCEPIECE_MAX_CHARS`` characters), to train a tokenizer."""
    seen = 0
    for chunk in documents(dataset, "train", data_dir=data_dir, text_key=text_key).chunks():
        for document in chunk:
            for line in document.decode("utf-8").split("\n"):
                if line:
                    yield line
                    seen += len(line)
            if seen >= SENTENCEPIECE_MAX_CHARS:
                return


def _token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.int32)


def tokenize_split(dataset: str, split: str, tokenizer, *, data_dir=None, text_key: str = "text",
                   max_documents: int | None = None) -> np.ndarray:
    """Every document's tokens followed by the separator, concatenated (computed, not cached)."""
    dtype = _token_dtype(tokenizer.vocab_size)
    separator = np.array([tokenizer.separator_id], dtype=dtype)
    pieces: list[np.ndarray] = []
    source = documents(dataset, split, data_dir=data_dir, text_key=text_key)
    for chunk in source.chunks(max_documents):
        if tokenizer.fingerprint == "byte":  # bytes are their own tokens: join the chunk in one step
            pieces.append(np.frombuffer(b"\0".join(chunk) + b"\0", dtype=np.uint8))
            continue
        for document in chunk:
            pieces.append(tokenizer.encode(document.decode("utf-8")).astype(dtype))
            pieces.append(separator)
    if not pieces:
        raise ValueError(f"dataset={dataset!r} split={split!r} has no documents")
    return np.concatenate(pieces)


def token_array(dataset: str, split: str, tokenizer, *, data_dir=None, text_key: str = "text",
                max_documents: int | None = None) -> np.ndarray:
    """The split's token array, memory-mapped read-only from the cache (built once, atomically, if absent)."""
    if max_documents is not None and max_documents < 1:
        raise ValueError(f"max_documents={max_documents} must be >= 1 (or None for the whole split)")
    name = tokenizer.fingerprint
    if text_key != "text":
        name += f"-{text_key}"
    if max_documents is not None:
        name += f"-first{max_documents}"
    path = cache_root(data_dir) / "tokens" / cache_name(dataset) / split.replace("/", "_") / f"{name}.npy"
    if not path.exists() and dataset not in EMBEDDED:  # an unknown data set fails here, leaving nothing in the cache
        documents(dataset, split, data_dir=data_dir, text_key=text_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    cache.build_once(path, cache.save_npy(lambda: tokenize_split(
        dataset, split, tokenizer, data_dir=data_dir, text_key=text_key, max_documents=max_documents)))
    return np.load(path, mmap_mode="r")
