"""Packed, shuffled, per-host-sharded, checkpointable batches of tokens.

A split is one token array ``x`` (documents joined by the separator, see ``sources``) of length L. Epoch e cuts it
into non-overlapping windows of ``seq_len`` targets starting at a random offset o_e in [0, seq_len):

    row k = x[o_e + k*T : o_e + (k+1)*T + 1],   k = 0 .. n_e - 1,   n_e = (L - 1 - o_e) // T,

so inputs are ``row[:-1]`` and targets ``row[1:]`` and every token of the window is a target exactly once. The
windows are permuted (permutation and offset drawn from ``SeedSequence([seed, e])``); global batch b of the
epoch is windows ``perm[b*G : (b+1)*G]`` with G = batch_size * process_count, and process i takes the rows of it
that its devices hold (``rows``, from the mesh: ``chinchilla.sharding.process_rows``; by default the block
``[i*batch_size, (i+1)*batch_size)``), so the processes read disjoint rows of the same global batch in any device
order (``last_starts`` holds the token offsets of the rows the latest batch read). An epoch
has ``n_e // G`` batches (the remainder is dropped); then the next epoch reshuffles, and the iterator warns once
that data now repeats.

``tokens`` may be a ``token_cache.ShardedTokens`` (the cache's unit files seen as one array): a window that
crosses two units is read from both. ``batches(min_tokens=N)`` packs the smallest prefix of the data's units with
at least N tokens instead of the whole split (``tokens_needed`` gives N for a run), so a run tokenises only what it
trains on.

The whole position is ``(epoch, step)``: ``get_state()`` is a small JSON dict and ``set_state()`` jumps there, so a
resumed run sees exactly the batches an uninterrupted one would. The state does not depend on the process index
or count, only on the global batch, so every host stores the same state.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from chinchilla.data import sources
from chinchilla.data.sources import get_tokenizer

STATE_FORMAT = "chinchilla.data.PackedBatches/1"


class DataRepeatWarning(UserWarning):
    """Training has gone past one pass over its data: later tokens are repeats, not fresh data."""


def _tokenizer(
    tokenizer, dataset: str, data_dir, text_key: str = "text", process_index: int = 0, process_count: int = 1
):
    if not isinstance(tokenizer, str):
        return tokenizer
    return get_tokenizer(
        tokenizer,
        dataset=dataset,
        data_dir=data_dir,
        text_key=text_key,
        process_index=process_index,
        process_count=process_count,
    )


def tokens_needed(steps: int, global_batch_size: int, seq_len: int) -> int:
    """Tokens a split must hold so that ``steps`` global batches of ``seq_len``-token windows come from one epoch
    whatever its random offset: an epoch with offset o has (L - 1 - o) // T windows, o < T."""
    for name, value in (("steps", steps), ("global_batch_size", global_batch_size), ("seq_len", seq_len)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer >= 1")
    return int(steps) * int(global_batch_size) * int(seq_len) + int(seq_len)


class PackedBatches:
    """An infinite iterator of int32 arrays ``[batch_size, seq_len + 1]`` (see the module docstring)."""

    def __init__(
        self,
        tokens: np.ndarray,
        *,
        tokenizer,
        seq_len: int,
        batch_size: int,
        seed: int,
        process_index: int,
        process_count: int,
        description: dict[str, Any],
        warn_repeats: bool = True,
        rows: Any = None,
    ):
        for field, value, low in (
            ("seq_len", seq_len, 1),
            ("batch_size", batch_size, 1),
            ("process_count", process_count, 1),
            ("seed", seed, 0),
        ):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{field}={value!r} must be an integer >= {low}")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index={process_index} must be in [0, process_count={process_count})")
        self.tokenizer = tokenizer
        self.vocab_size = int(tokenizer.vocab_size)
        self.tokens_per_epoch = int(len(tokens))
        self.seq_len, self.batch_size, self.seed = int(seq_len), int(batch_size), int(seed)
        self.process_index, self.process_count = int(process_index), int(process_count)
        self.global_batch_size = self.batch_size * self.process_count
        if rows is None:
            rows = np.arange(self.process_index * self.batch_size, (self.process_index + 1) * self.batch_size)
        self.rows = np.asarray(rows, dtype=np.int64)
        if (
            self.rows.shape != (self.batch_size,)
            or len(set(self.rows.tolist())) != self.batch_size
            or self.rows.min() < 0
            or self.rows.max() >= self.global_batch_size
        ):
            raise ValueError(
                f"rows={self.rows.tolist()} must be {self.batch_size} distinct indices of the global "
                f"batch of {self.global_batch_size}"
            )
        self.description = dict(description)
        self.warn_repeats = warn_repeats
        self._tokens = tokens
        self._row = np.arange(self.seq_len + 1, dtype=np.int64)
        self._epoch, self._step = 0, 0
        self._plan_epoch, self._offset, self._order = -1, 0, np.zeros(0, np.int64)
        self._warned = False
        self.last_starts = np.zeros(0, np.int64)  # token offsets of the latest batch's rows (which rows were read)
        self.split_used = self.description.get("split")  # what the split read ("test" for a missing validation)
        self.split_note = None  # why, when it differs from the split asked for
        if self._windows(self.seq_len - 1) < self.global_batch_size:
            raise ValueError(
                f"{self._name()} has {self.tokens_per_epoch:,} tokens: too few for one global batch of "
                f"{self.global_batch_size} x {self.seq_len} tokens; use a smaller batch_size or seq_len"
            )

    # -- the plan of an epoch ------------------------------------------------------------------------------------
    def _windows(self, offset: int) -> int:
        return (self.tokens_per_epoch - 1 - offset) // self.seq_len

    def _plan(self, epoch: int) -> None:
        if epoch != self._plan_epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
            self._offset = int(rng.integers(self.seq_len))
            self._order = rng.permutation(self._windows(self._offset))
            self._plan_epoch = epoch

    @property
    def steps_in_epoch(self) -> int:
        """Batches in the current epoch (``n_e // G``; differs by at most one between epochs)."""
        self._plan(self._epoch)
        return len(self._order) // self.global_batch_size

    @property
    def epoch(self) -> int:
        """Completed passes over the split before the next batch (0 during the first pass)."""
        self._advance_epoch_if_done()
        return self._epoch

    def _advance_epoch_if_done(self) -> None:
        while self._step >= self.steps_in_epoch:
            self._epoch, self._step = self._epoch + 1, 0

    # -- iteration -----------------------------------------------------------------------------------------------
    def __iter__(self) -> PackedBatches:
        return self

    def __next__(self) -> np.ndarray:
        self._advance_epoch_if_done()
        if self._epoch > 0 and self.warn_repeats and not self._warned:
            self._warned = True
            warnings.warn(self._repeat_message(), DataRepeatWarning, stacklevel=2)
        windows = self._order[self._step * self.global_batch_size + self.rows]
        self.last_starts = self._offset + windows * self.seq_len
        rows = self._tokens[self.last_starts[:, None] + self._row]
        self._step += 1
        return rows.astype(np.int32)

    def _name(self) -> str:
        return (
            f"dataset={self.description['dataset']!r} split={self.description['split']!r} "
            f"tokenizer={self.description['tokenizer']!r}"
        )

    def _repeat_message(self) -> str:
        return (
            f"data is repeating: {self._name()} holds {self.tokens_per_epoch:,} tokens and this run has now "
            f"started epoch {self._epoch + 1} (pass {self._epoch + 1} over the same data; "
            f"{self._epoch} full epoch(s) done). Scaling-law fits assume every token is fresh (Chinchilla "
            f"trains on less than one epoch); repeated data changes the science. Use a larger data set, "
            f"fewer training tokens, or check data.epochs_needed() when planning."
        )

    # -- checkpointing -------------------------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            **self.description,
            "tokenizer_fingerprint": self.tokenizer.fingerprint,
            "tokens_per_epoch": self.tokens_per_epoch,
            "seq_len": self.seq_len,
            "global_batch_size": self.global_batch_size,
            "seed": self.seed,
        }

    def get_state(self) -> dict[str, Any]:
        """The position as a JSON-serialisable dict (the same on every host)."""
        self._advance_epoch_if_done()
        return {**self._identity(), "epoch": self._epoch, "step": self._step}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a ``get_state()`` of an iterator over the same data, seed, seq_len and global batch."""
        mismatched = {
            key: (state.get(key), value) for key, value in self._identity().items() if state.get(key) != value
        }
        if mismatched:
            detail = ", ".join(
                f"{key}: state has {old!r}, this iterator {new!r}" for key, (old, new) in mismatched.items()
            )
            raise ValueError(f"cannot resume this data iterator from that state ({detail})")
        epoch, step = state.get("epoch"), state.get("step")
        if not (isinstance(epoch, int) and isinstance(step, int) and epoch >= 0 and step >= 0):
            raise ValueError(f"data iterator state has epoch={epoch!r}, step={step!r}: need integers >= 0")
        self._epoch, self._step = epoch, step
        self._advance_epoch_if_done()

    def __repr__(self) -> str:
        return (
            f"PackedBatches({self._name()}, seq_len={self.seq_len}, batch_size={self.batch_size}, "
            f"process {self.process_index}/{self.process_count}, seed={self.seed}, "
            f"tokens_per_epoch={self.tokens_per_epoch:,})"
        )


def batches(
    dataset: str = "embedded",
    *,
    split: str = "train",
    tokenizer="byte",
    seq_len: int = 128,
    batch_size: int = 8,
    seed: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    data_dir: str | os.PathLike | None = None,
    text_key: str = "text",
    max_documents: int | None = None,
    min_tokens: int | None = None,
    workers: int | None = None,
    warn_repeats: bool = True,
    rows: Any = None,
) -> PackedBatches:
    """Infinite packed batches ``int32[batch_size, seq_len + 1]`` of a data set split for one process.

    ``batch_size`` is per process (global batch / process_count). ``dataset``: see ``sources`` ("embedded...",
    ``files:GLOB``, a prepared TFDS name). ``tokenizer``: "byte", "sentencepiece:<vocab>", a .model path, or a
    tokenizer object. ``data_dir``: the cache root for the embedded corpus and token arrays, or the TFDS data dir
    holding an external data set (prepared as array_record; ``gs://...`` is copied to the local cache first).
    ``split="validation"`` of a data set without one reads its "test" split or a held-out slice of "train" (the
    iterator's ``split_used`` names which, ``split_note`` says why). ``min_tokens``: pack only the smallest prefix
    of the data holding that many tokens (None: the whole split), tokenised on ``workers`` processes (default:
    every usable core). ``max_documents`` caps the documents read from a TFDS data set (its first ones).
    ``rows``: the ``batch_size`` indices of the global batch this process reads (default: block ``process_index``).
    """
    tok = _tokenizer(tokenizer, dataset, data_dir, text_key, process_index, process_count)
    choice = sources.resolve_split(dataset, split, data_dir=data_dir)
    tokens = sources.token_array(
        dataset,
        split,
        tok,
        data_dir=data_dir,
        text_key=text_key,
        max_documents=max_documents,
        need=min_tokens,
        workers=workers,
        process_index=process_index,
        process_count=process_count,
    )
    description = {
        "dataset": dataset,
        "split": split,
        "tokenizer": tokenizer if isinstance(tokenizer, str) else tok.fingerprint,
        "text_key": text_key,
        "max_documents": max_documents,
    }
    iterator = PackedBatches(
        tokens,
        tokenizer=tok,
        seq_len=seq_len,
        batch_size=batch_size,
        seed=seed,
        process_index=process_index,
        process_count=process_count,
        description=description,
        warn_repeats=warn_repeats,
        rows=rows,
    )
    iterator.split_used, iterator.split_note = choice.name, choice.note
    return iterator


def split_tokens(
    dataset: str = "embedded",
    *,
    tokenizer="byte",
    split: str = "train",
    data_dir=None,
    text_key: str = "text",
    max_documents: int | None = None,
    min_tokens: int | None = None,
):
    """The split's token array (memory-mapped shards seen as one array, see ``token_cache.ShardedTokens``),
    documents followed by the separator: the whole split, or its smallest prefix of units with ``min_tokens``."""
    tok = _tokenizer(tokenizer, dataset, data_dir, text_key)
    return sources.token_array(
        dataset, split, tok, data_dir=data_dir, text_key=text_key, max_documents=max_documents, need=min_tokens
    )


def epochs_needed(
    tokens: float,
    dataset: str = "embedded",
    *,
    tokenizer="byte",
    split: str = "train",
    data_dir=None,
    text_key: str = "text",
    max_documents: int | None = None,
) -> float:
    """Passes over the split that ``tokens`` training tokens take: tokens / tokens in the split (> 1 means
    repeats). Exact for a split of a few units (the embedded corpora) or one already tokenised; for a larger one
    estimated from its first units by source size (``sources.split_tokens_estimate``): planning a sweep never
    tokenises a whole large split."""
    if not tokens >= 0:
        raise ValueError(f"tokens={tokens!r} must be >= 0")
    tok = _tokenizer(tokenizer, dataset, data_dir, text_key)
    count, _ = sources.split_tokens_estimate(
        dataset, split, tok, data_dir=data_dir, text_key=text_key, max_documents=max_documents
    )
    return float(tokens) / count


def unigram_entropy(
    dataset: str = "embedded",
    tokenizer="byte",
    split: str = "train",
    *,
    data_dir=None,
    text_key: str = "text",
    max_documents: int | None = None,
) -> float:
    """H = -sum_v p_v ln p_v (nats/token) of the split's token frequencies: the loss of the best model that
    ignores context, so a trained model's loss should fall well below it."""
    tok = _tokenizer(tokenizer, dataset, data_dir, text_key)
    array = sources.token_array(dataset, split, tok, data_dir=data_dir, text_key=text_key, max_documents=max_documents)
    counts = np.zeros(tok.vocab_size, np.float64)
    for shard in array.shards():  # one unit at a time: the split is never in memory at once
        counts += np.bincount(np.asarray(shard), minlength=tok.vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


__all__ = [
    "DataRepeatWarning",
    "PackedBatches",
    "batches",
    "epochs_needed",
    "split_tokens",
    "tokens_needed",
    "unigram_entropy",
]
