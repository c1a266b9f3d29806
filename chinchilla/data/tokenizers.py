"""Tokenizers: exact bytes by default, SentencePiece trained on a corpus's train split, or a ``.model`` file.

Every tokenizer has ``encode(str) -> np.ndarray[int32]``, ``decode(ids) -> str``, ``vocab_size``,
``separator_id`` (the token that ends each packed document) and ``fingerprint`` (a short string naming exactly
what it computes, used as a cache key for token arrays).

* ``"byte"``: UTF-8 bytes, vocabulary 256, no training, exact round trip. Documents are separated by byte 0 (NUL),
  which public-domain text does not contain.
* ``"sentencepiece:<vocab>"``: a BPE model trained on the train split of the data set, cached. SentencePiece's
  default NFKC normalisation and whitespace folding are lossy; this uses the identity rule, keeps every space,
  makes "\\n" a user-defined symbol and falls back to bytes for unseen characters, so ``decode(encode(s)) == s``
  for every string. Documents are separated by ``</s>``.
* a path to a SentencePiece ``.model`` file: used as it is (its round trip is only as exact as its training); the
  way to share one tokenizer across machines through a shared path.

A trained tokenizer lives under ``<cache root>/tokenizers/<data set>/`` (the cache root is local even when the data
set is read from ``gs://``). Trained once: concurrent processes serialise on a file lock; with several JAX
processes (``process_count`` > 1) only process 0 trains (or reads its cached model) and sends the model's bytes
to the others (``jax.experimental.multihost_utils.broadcast_one_to_all``), which store them in their own cache, so
every host tokenises with the very same model whether or not the hosts share a file system. Tokenizers by name
(and that training) are built by ``chinchilla.data.sources.get_tokenizer``, which knows the data sets.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

BYTE_SEPARATOR = 0


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocabulary 256)."""

    vocab_size = 256
    separator_id = BYTE_SEPARATOR
    fingerprint = "byte"

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Bytes back to text; invalid UTF-8 (e.g. from a sampled model) becomes U+FFFD."""
        return bytes(np.asarray(ids, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return "ByteTokenizer()"


class SentencePieceTokenizer:
    """A SentencePiece model loaded from a ``.model`` file."""

    def __init__(self, model_file: str | os.PathLike):
        import sentencepiece as spm

        path = Path(model_file)
        if not path.is_file():
            raise ValueError(f"tokenizer model file {str(path)!r} does not exist")
        self.model_file = path
        serialized = path.read_bytes()
        self._processor = spm.SentencePieceProcessor(model_proto=serialized)
        self.vocab_size = int(self._processor.get_piece_size())
        self.separator_id = int(self._processor.eos_id())
        if self.separator_id < 0:
            raise ValueError(f"tokenizer model {str(path)!r} has no </s> piece to separate documents")
        self.fingerprint = "sp-" + hashlib.sha256(serialized).hexdigest()[:16]

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._processor.encode(text), dtype=np.int32)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of several texts in one call, on this thread only (the caller's processes parallelise)."""
        return self._processor.encode(texts, num_threads=1)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self._processor.decode(np.asarray(ids, dtype=np.int64).tolist())

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({str(self.model_file)!r}, vocab_size={self.vocab_size})"


Tokenizer = ByteTokenizer | SentencePieceTokenizer


def train_sentencepiece(lines: Iterable[str], vocab_size: int, model_file: Path) -> None:
    """Train an exact-round-trip BPE model on ``lines`` and write it to ``model_file``.

    Identity normalisation, no whitespace folding, no dummy prefix, "\\n" as a user-defined symbol and byte
    fallback: every string round-trips exactly.
    """
    import sentencepiece as spm

    with open(model_file, "wb") as handle:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=handle,
            vocab_size=vocab_size,
            model_type="bpe",
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            split_digits=True,
            user_defined_symbols=["\n"],
            byte_fallback=True,
            character_coverage=1.0,
            max_sentence_length=1 << 16,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
