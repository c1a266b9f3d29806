"""Data: the embedded corpus (TFDS), tokenizers, and packed, shuffled, checkpointable batches.

``batches(...)`` is the entry point of training (``tokens_needed`` sizes its ``min_tokens``; ``resolve_split`` says
which split an evaluation reads); ``epochs_needed`` and ``unigram_entropy`` serve planners and tests;
``get_tokenizer`` builds a tokenizer by name. Importing this package does not import TFDS: the corpus is built (and
TFDS imported) only when a token array is not cached yet.
"""

from chinchilla.data.pipeline import (
    DataRepeatWarning,
    PackedBatches,
    batches,
    epochs_needed,
    split_tokens,
    tokens_needed,
    unigram_entropy,
)
from chinchilla.data.sources import available_splits, get_tokenizer, resolve_split
from chinchilla.data.tokenizers import ByteTokenizer, SentencePieceTokenizer

__all__ = [
    "ByteTokenizer",
    "DataRepeatWarning",
    "PackedBatches",
    "SentencePieceTokenizer",
    "available_splits",
    "batches",
    "epochs_needed",
    "get_tokenizer",
    "resolve_split",
    "split_tokens",
    "tokens_needed",
    "unigram_entropy",
]
