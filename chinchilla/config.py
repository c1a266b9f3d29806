"""Model shapes: the one description of a decoder that the accounting, the model and the sweeps share.

A shape is the seven numbers of the paper's Appendix F / Table A9 (n_layers, d_model, ffw_size, n_heads, kv_size,
vocab_size, seq_len) plus two explicit architecture choices that change the parameter count but not the Appendix F
FLOPs:

- ``architecture="chinchilla"``: the paper's Gopher-style block. Per layer Q, K, V and output projections with
  biases, a relative-position projection (d_model x kv_size*n_heads, plus 2*kv_size*n_heads content/position biases),
  two dense matrices with biases, and 4*d_model norm parameters; 2*d_model final-norm parameters; one
  vocab x d_model matrix shared by the input embedding and the output logits. This is the convention under which
  Table A9's sizes and Table A4's ratios come out.
- ``architecture="rotary"``: the decoder this project trains (``chinchilla.model``): pre-norm RMSNorm (one scale
  vector per norm, two norms per layer and one final), rotary positions (no parameters), bias-free Q, K, V, output
  and GELU dense matrices, and an input embedding that is either tied to the output logits or not
  (``tie_embeddings``; the paper's architecture always shares one matrix and ignores the flag).

``n_kv_heads`` describes grouped-query (1 < n_kv_heads < n_heads) and multi-query (n_kv_heads = 1) attention: the K
and V projections have n_kv_heads heads of kv_size, shared by groups of query heads. ``None`` (the default) means
n_kv_heads = n_heads, ordinary multi-head attention, and is left out of ``to_dict`` so that existing configs and
JSON are unchanged. The accounting counts it; the trainable model does not implement it (``TrainConfig`` rejects it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

Architecture = Literal["chinchilla", "rotary"]
ARCHITECTURES: tuple[str, ...] = ("chinchilla", "rotary")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A decoder-only transformer shape. Validated on construction; errors name the field and the value.

    ``kv_size * n_heads`` (the attention width, ``attention_width``) need not equal ``d_model``: Table A9 has rows
    where it does not.
    """

    n_layers: int
    d_model: int
    ffw_size: int
    n_heads: int
    kv_size: int
    vocab_size: int = 32_000
    seq_len: int = 2048
    architecture: Architecture = "rotary"
    tie_embeddings: bool = False
    name: str = ""
    n_kv_heads: int | None = None

    def __post_init__(self) -> None:
        for field in ("n_layers", "d_model", "ffw_size", "n_heads", "kv_size", "vocab_size", "seq_len"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{field}={value!r} must be an int")
            if value <= 0:
                raise ValueError(f"{field}={value} must be positive")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={self.architecture!r} is not one of {ARCHITECTURES}")
        if self.n_kv_heads is not None:
            if isinstance(self.n_kv_heads, bool) or not isinstance(self.n_kv_heads, int) or self.n_kv_heads <= 0:
                raise ValueError(f"n_kv_heads={self.n_kv_heads!r} must be a positive int (or None for n_heads)")
            if self.n_heads % self.n_kv_heads:
                raise ValueError(
                    f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}: each key/value "
                    "head serves a whole group of query heads"
                )
        if self.architecture == "rotary" and self.kv_size % 2:
            raise ValueError(f"kv_size={self.kv_size} must be even: rotary embeddings rotate pairs of dimensions")

    @property
    def attention_width(self) -> int:
        """kv_size * n_heads: the width of the Q, K and V projections."""
        return self.kv_size * self.n_heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads: ``n_kv_heads``, or ``n_heads`` when it is None (multi-head attention)."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def kv_width(self) -> int:
        """kv_size * kv_heads: the width of the K and V projections (= attention_width without GQA/MQA)."""
        return self.kv_size * self.kv_heads

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["n_kv_heads"] is None:
            del out["n_kv_heads"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        check_known_fields(cls, data)
        return cls(**data)


def check_known_fields(cls: type, data: dict[str, Any]) -> None:
    """Raise a ValueError naming the keys of ``data`` that are not fields of the dataclass ``cls`` (a config file
    written by another version, or a typo), before ``cls(**data)`` fails less helpfully."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known fields are {sorted(known)}")
