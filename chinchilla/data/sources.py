"""Data sets by name -> documents -> a cached, sharded array of tokens per (data set, split, tokenizer).

Names: "embedded" (Shakespeare + KJV, built offline, see ``corpus``), "embedded/shakespeare", "embedded/kjv",
"embedded/code", ``files:GLOB`` (a user's .txt / .jsonl / .parquet shards, see ``files``), or any TFDS text data
set ("lm1b", "c4/en", ...) already prepared in array_record format under ``data_dir`` (or TFDS's default data
dir; ``gs://...`` is copied to local disk first, see ``remote``): it is read with ``tfds.data_source(...,
download=False)``, never downloaded here, and its documents are the ``text_key`` feature.

The token array of a split is every document's tokens followed by the tokenizer's separator, in the data set's
order (uint8 for bytes, uint16 for vocabularies up to 65,536), built by worker processes into a sharded cache
under the (always local) cache root, only as far as the caller needs (``token_cache``).

Splits (``resolve_split``): a data set without ``validation`` is evaluated on ``test`` when it has one (lm1b),
else on a held-out ``HELDOUT_FRACTION`` of its train documents chosen by a hash of their text (then its ``train``
leaves those documents out); the choice is returned, named, so a run can record it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from chinchilla.data import cache, files, token_cache, tokenizers
from chinchilla.data.records import EMBEDDED, EMBEDDED_SPLITS, documents, unavailable

SENTENCEPIECE_MAX_CHARS = 50_000_000  # train a tokenizer of a large external data set on its first 50M characters
HELDOUT_FRACTION = token_cache.HELDOUT_FRACTION
ESTIMATE_UNITS = 4  # epochs_needed tokenises at most this many units of a larger split and extrapolates


def cache_name(dataset: str) -> str:
    """A directory name for a data set ("embedded" -> "embedded-1.0.0", "c4/en" -> "c4__en")."""
    if dataset in EMBEDDED:
        return f"{dataset.replace('/', '__')}-{cache.EMBEDDED_VERSION}"
    if files.is_files(dataset):
        return files.cache_name(files.parse(dataset))
    if dataset == "embedded/code":  # Python's standard library: the name carries the Python version
        from chinchilla.data import code_corpus

        return code_corpus.cache_name()
    return dataset.replace("/", "__").replace(":", "_")


def cache_root(data_dir: str | os.PathLike | None) -> Path:
    """Where token arrays and tokenizers go: a local ``data_dir``, else the default cache root (also for a remote
    data_dir: the source may be in a bucket, the cache is always local)."""
    if data_dir is not None and "://" in str(data_dir):
        return cache.resolve_root(None)
    return cache.resolve_root(data_dir)


# -- splits --------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SplitChoice:
    """Which documents a requested split reads: ``source`` (the split read), ``output`` (the split of the token
    cache it takes: differs for a held-out slice of train), ``held_out`` (documents are assigned by text hash) and
    ``name`` (what was used, for a run's summary: "validation", "test", "train[held-out 1%]", ...)."""

    requested: str
    source: str
    output: str
    held_out: bool
    fraction: float
    name: str
    note: str | None = None


def available_splits(dataset: str, *, data_dir=None) -> tuple[str, ...]:
    """The splits a data set has (a ``files:`` data set: train and validation by text hash)."""
    if dataset in EMBEDDED:
        return EMBEDDED_SPLITS
    if dataset == "embedded/code":
        from chinchilla.data import code_corpus

        return code_corpus.SPLITS
    if files.is_files(dataset):
        return files.SPLITS
    if dataset.startswith("embedded"):
        raise ValueError(f"dataset={dataset!r}: the embedded corpus comes as {tuple(EMBEDDED)}")
    import tensorflow_datasets as tfds

    from chinchilla.data import remote

    local = remote.local_data_dir(dataset, data_dir)
    try:
        builder = tfds.builder(dataset, data_dir=local)
        splits = tuple(builder.info.splits.keys())
        if not splits:
            raise ValueError("no prepared splits")
    except Exception as error:  # TFDS raises many kinds (DatasetNotFoundError, AssertionError, ValueError...)
        raise unavailable(dataset, local, error) from error
    return splits


def resolve_split(dataset: str, split: str, *, data_dir=None) -> SplitChoice:
    """What ``split`` of ``dataset`` reads. "validation" of a data set without one: its "test" split, else a
    held-out ``HELDOUT_FRACTION`` of "train" by text hash (and "train" then leaves those documents out)."""
    if files.is_files(dataset):
        spec = files.parse(dataset)
        if split not in files.SPLITS:
            raise ValueError(f"split={split!r} of dataset={dataset!r}: choose one of {files.SPLITS}")
        return SplitChoice(split, "train", split, True, spec.validation_fraction, split)
    available = available_splits(dataset, data_dir=data_dir)
    no_eval = "validation" not in available and "test" not in available
    if split in available:
        if split == "train" and no_eval and dataset not in EMBEDDED and dataset != "embedded/code":
            return SplitChoice(
                split,
                "train",
                "train",
                True,
                HELDOUT_FRACTION,
                "train",
                f"dataset={dataset!r} has only {available}: train leaves out the "
                f"{HELDOUT_FRACTION:.0%} of documents held out for validation",
            )
        return SplitChoice(split, split, split, False, 0.0, split)
    if split == "validation" and "test" in available:
        return SplitChoice(
            split,
            "test",
            "test",
            False,
            0.0,
            "test",
            f"dataset={dataset!r} has no 'validation' split: evaluating on 'test'",
        )
    if split == "validation" and "train" in available:
        name = f"train[held-out {HELDOUT_FRACTION:.0%}]"
        return SplitChoice(
            split,
            "train",
            "validation",
            True,
            HELDOUT_FRACTION,
            name,
            f"dataset={dataset!r} has neither 'validation' nor 'test': evaluating on {name}, "
            f"documents chosen by a hash of their text",
        )
    raise ValueError(f"split={split!r} of dataset={dataset!r}: choose one of {available}")


def source(
    dataset: str, split: str, *, data_dir=None, text_key: str = "text", max_documents: int | None = None
) -> tuple[token_cache.Source, SplitChoice]:
    """The token-cache source of a split (its units of work) and the split choice."""
    choice = resolve_split(dataset, split, data_dir=data_dir)
    if files.is_files(dataset):
        spec = files.parse(dataset, text_key)
        if max_documents is not None:
            raise ValueError(
                f"dataset={dataset!r}: max_documents applies to TFDS data sets; choose files with the glob instead"
            )
        units = files.units(spec)
        reader = ("files", dataclasses.asdict(spec))
        key = (
            f"{files.cache_name(spec)}/all-"
            f"{token_cache.layout_key(units, spec.validation_fraction, spec.document, spec.text_key)}"
        )
        return token_cache.Source(
            dataset, reader, units, files.SPLITS, spec.validation_fraction, key, tuple(u[-1] for u in units)
        ), choice
    from chinchilla.data import remote

    local = remote.local_data_dir(dataset, data_dir) if dataset not in EMBEDDED else data_dir
    docs = documents(dataset, choice.source, data_dir=local, text_key=text_key)
    count = len(docs) if max_documents is None else min(max_documents, len(docs))
    if count == 0:
        raise ValueError(f"dataset={dataset!r} split={choice.source!r} has no documents")
    sample = list(docs.read(0, min(count, 256)))
    mean_bytes = max(1.0, sum(map(len, sample)) / max(1, len(sample)))
    per_unit = int(min(1 << 20, max(64, token_cache.UNIT_BYTES // mean_bytes)))
    units = tuple((start, min(start + per_unit, count)) for start in range(0, count, per_unit))
    outputs = ("train", "validation") if choice.held_out else (choice.source,)
    reader = ("records", dataset, choice.source, None if local is None else str(local), text_key)
    key = (
        f"{cache_name(dataset)}/{choice.source.replace('/', '_')}"
        f"{'' if text_key == 'text' else '-' + text_key}{'' if max_documents is None else f'-first{max_documents}'}"
        f"-{token_cache.layout_key(units, outputs, choice.fraction)}"
    )
    return token_cache.Source(
        dataset, reader, units, outputs, choice.fraction, key, tuple(b - a for a, b in units)
    ), choice


def training_lines(dataset: str, *, data_dir=None, text_key: str = "text") -> Iterator[str]:
    """Non-empty lines of the train split's documents (at most ``SENTENCEPIECE_MAX_CHARS`` characters), to train a
    tokenizer (never on held-out documents)."""
    src, choice = source(dataset, "train", data_dir=data_dir, text_key=text_key)
    seen = 0
    for unit in src.units:
        for document in token_cache.unit_documents(src.reader, unit):
            if choice.held_out and files.is_validation(document, choice.fraction):
                continue
            for line in document.decode("utf-8").split("\n"):
                if line:
                    yield line
                    seen += len(line)
            if seen >= SENTENCEPIECE_MAX_CHARS:
                return


def _token_dtype(vocab_size: int) -> np.dtype:
    return token_cache.token_dtype(vocab_size)


def token_array(
    dataset: str,
    split: str,
    tokenizer,
    *,
    data_dir=None,
    text_key: str = "text",
    max_documents: int | None = None,
    need: int | None = None,
    workers: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    stats: token_cache.BuildStats | None = None,
) -> token_cache.ShardedTokens:
    """The split's token array (memory-mapped shards of the cache): the smallest prefix of the data's units with
    at least ``need`` tokens, or the whole split when ``need`` is None; missing units are tokenised on ``workers``
    processes (default: every usable core; see ``token_cache``)."""
    if max_documents is not None and max_documents < 1:
        raise ValueError(f"max_documents={max_documents} must be >= 1 (or None for the whole split)")
    src, choice = source(dataset, split, data_dir=data_dir, text_key=text_key, max_documents=max_documents)
    array = token_cache.tokens(
        src,
        choice.output,
        tokenizer,
        root=cache_root(data_dir),
        need=need,
        workers=workers,
        process_index=process_index,
        process_count=process_count,
        stats=stats,
    )
    if not len(array):
        hint = ""
        if files.is_files(dataset) and choice.output == "validation":
            hint = (
                "; a files: data set holds out validation_fraction of its documents by text hash (default "
                f"{files.FilesSpec.validation_fraction}), too few for a data set this small: raise it, e.g. "
                "'files:GLOB?validation_fraction=0.2', or add documents"
            )
        raise ValueError(f"dataset={dataset!r} split={choice.name!r} has no documents{hint}")
    return array


def tokenize_split(
    dataset: str, split: str, tokenizer, *, data_dir=None, text_key: str = "text", max_documents: int | None = None
) -> np.ndarray:
    """Every document's tokens followed by the separator, concatenated, in memory (small splits and tests)."""
    return np.asarray(
        token_array(dataset, split, tokenizer, data_dir=data_dir, text_key=text_key, max_documents=max_documents)
    )


def split_tokens_estimate(
    dataset: str,
    split: str,
    tokenizer,
    *,
    data_dir=None,
    text_key: str = "text",
    max_documents: int | None = None,
    workers: int | None = None,
) -> tuple[float, bool]:
    """(tokens in the whole split, exact?): exact when the split has at most ``ESTIMATE_UNITS`` units or all are
    cached; otherwise extrapolated by source size from its first ``ESTIMATE_UNITS`` units (tokenised if needed),
    so planning never tokenises a large split."""
    src, choice = source(dataset, split, data_dir=data_dir, text_key=text_key, max_documents=max_documents)
    root = cache_root(data_dir)
    built, tokens, size = token_cache.cached_prefix(src, choice.output, tokenizer, root)
    if built == len(src.units):
        return float(tokens), True
    if len(src.units) <= ESTIMATE_UNITS:
        return float(len(token_cache.tokens(src, choice.output, tokenizer, root=root, workers=workers))), True
    if built < ESTIMATE_UNITS:
        first = src.units[:ESTIMATE_UNITS]
        sample = dataclasses.replace(src, units=first, sizes=src.sizes[:ESTIMATE_UNITS])  # same key: same files
        token_cache.tokens(sample, choice.output, tokenizer, root=root, workers=workers)
        built, tokens, size = token_cache.cached_prefix(src, choice.output, tokenizer, root)
    return tokens * sum(src.sizes) / max(1, size), False


__all__ = [
    "SplitChoice",
    "available_splits",
    "cache_root",
    "documents",
    "resolve_split",
    "source",
    "token_array",
    "tokenize_split",
    "training_lines",
]


# -- tokenizers by name ----------------------------------------------------------------------------------------------
def _replace_bytes(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def _broadcast_bytes(payload: bytes, process_index: int) -> bytes:
    """Process 0's ``payload`` on every JAX process (a collective: every process calls it)."""
    from jax.experimental import multihost_utils

    length = int(multihost_utils.broadcast_one_to_all(np.array([len(payload)], dtype=np.int32))[0])
    buffer = np.zeros(length, dtype=np.uint8)
    if process_index == 0:
        buffer[:] = np.frombuffer(payload, dtype=np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buffer), dtype=np.uint8).tobytes()


def get_tokenizer(
    name_or_path: str = "byte",
    *,
    dataset: str = "embedded",
    data_dir: str | os.PathLike | None = None,
    text_key: str = "text",
    process_index: int = 0,
    process_count: int = 1,
) -> tokenizers.Tokenizer:
    """A tokenizer by name: "byte", "sentencepiece:<vocab>" (trained on ``dataset``'s train split, cached under
    ``<local cache root>/tokenizers``; with ``process_count`` > 1 trained by process 0 only and broadcast, see the
    module docstring) or a path to a SentencePiece ``.model`` file."""
    if name_or_path == "byte":
        return tokenizers.ByteTokenizer()
    if name_or_path.startswith("sentencepiece:"):
        vocab_text = name_or_path.removeprefix("sentencepiece:")
        if not vocab_text.isdigit() or int(vocab_text) < 320:
            raise ValueError(
                f"tokenizer={name_or_path!r}: write sentencepiece:<vocab> with vocab >= 320 "
                "(256 byte-fallback pieces, specials and the corpus's characters need room)"
            )
        vocab_size = int(vocab_text)
        name = cache_name(dataset) + ("" if text_key == "text" else f"-{text_key}")
        path = cache_root(data_dir) / "tokenizers" / name / f"sentencepiece-bpe-{vocab_size}.model"
        path.parent.mkdir(parents=True, exist_ok=True)
        if process_index == 0:
            cache.build_once(
                path,
                lambda tmp: tokenizers.train_sentencepiece(
                    training_lines(dataset, data_dir=data_dir, text_key=text_key), vocab_size, tmp
                ),
            )
        if process_count > 1:
            model = _broadcast_bytes(path.read_bytes() if process_index == 0 else b"", process_index)
            if process_index != 0 and not (path.is_file() and path.read_bytes() == model):
                _replace_bytes(path, model)  # this host's copy of process 0's model
        return tokenizers.SentencePieceTokenizer(path)
    if name_or_path.endswith(".model") or os.path.sep in name_or_path:
        return tokenizers.SentencePieceTokenizer(name_or_path)
    raise ValueError(
        f"tokenizer={name_or_path!r}: use 'byte', 'sentencepiece:<vocab>' or a path to a SentencePiece .model file"
    )
