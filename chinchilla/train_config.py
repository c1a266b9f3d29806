"""What defines a training run: ``TrainConfig`` (saved as a run's ``config.json``).

Kept apart from ``chinchilla.train`` (the run loop) and ``chinchilla.step`` (the compiled step) so that both can
import it without importing each other.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from chinchilla import flops as flops_lib
from chinchilla.config import ModelConfig, check_known_fields

COMPUTE_DTYPES = ("auto", "float32", "bfloat16")
ATTENTION_IMPLS = ("auto", "xla", "cudnn", "splash", "blocked")  # chinchilla.attention's, and "auto"
REMAT_POLICIES = ("none", "full", "dots", "offload")  # chinchilla.model.remat_policy's
# Fields that only change what is reported, not what is trained: a run resumes when only these differ.
REPORTING_FIELDS = ("peak_flops",)
# Fields that change how a step is executed (memory, speed, float round-off), not what it computes: a run may resume
# with other values (e.g. on another chip, with the plan `chinchilla memory` gives there).
EXECUTION_FIELDS = ("micro_batch_size", "remat", "scan_layers", "attention_impl", "steps_per_dispatch")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (saved as ``config.json``; a resumed run must match it exactly).

    ``tokens``: the token budget; ``batch_size``: global sequences per step (split over processes and the
    data x fsdp mesh axes); ``cycle_tokens``: the cosine cycle length in tokens (None = the run's length);
    ``warmup_fraction``: warm-up steps as a fraction of the cycle; ``final_lr_fraction``: lr at the end of the cycle
    / peak (0.1 = the paper's 10x decay); ``log_every``/``eval_every``/``checkpoint_every`` in steps (eval and
    checkpoints happen at the first dispatch boundary at or after each multiple, and always at the end;
    ``eval_every=None`` evaluates only at the end) on ``eval_batches`` fixed batches of ``eval_split``; ``mesh``:
    (data, fsdp, tensor) sizes, one may be -1; ``compute_dtype``: "auto" (from the chip, see
    ``chinchilla.step.choose_compute_dtype``), "float32" or "bfloat16" (matmuls; master weights stay float32);
    ``peak_flops``: dense peak FLOP/s of one jax device for MFU (None = from ``chinchilla.accelerators``' data-sheet
    table; needed for MFU on chips the table does not know).

    Memory (``chinchilla memory`` plans these for a chip): ``micro_batch_size``: global sequences per forward/backward
    pass (None = the whole batch); the batch is folded by a ``lax.scan`` of batch_size / micro_batch_size micro-steps
    inside the compiled step with float32 gradient accumulators and one optimizer update, so a run's maths does not
    depend on it (round-off aside). ``remat``: per-layer rematerialisation (``chinchilla.model.remat_policy``: "none",
    "full", "dots", "offload"). ``scan_layers``: the layers as one ``lax.scan`` (True) or unrolled (False).
    ``attention_impl``: "auto" (splash on TPU, cuDNN on bf16 GPUs, XLA elsewhere; the choice is written to
    ``summary.json``), "xla", "cudnn", "splash" or "blocked" (``chinchilla.attention``).
    """

    model: ModelConfig
    tokens: int
    batch_size: int = 8
    lr: float = 3e-3
    warmup_fraction: float = 0.1
    cycle_tokens: int | None = None
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    adam_b1: float = 0.9
    adam_b2: float = 0.95
    adam_eps: float = 1e-8
    seed: int = 0
    dataset: str = "embedded"
    tokenizer: str = "byte"
    data_dir: str | None = None
    log_every: int = 10
    eval_every: int | None = None
    eval_batches: int = 8
    eval_split: str = "validation"
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    steps_per_dispatch: int = 16
    mesh: tuple[int, int, int] = (-1, 1, 1)
    compute_dtype: str = "auto"
    attention_impl: str = "auto"
    peak_flops: float | None = None
    micro_batch_size: int | None = None
    remat: str = "none"
    scan_layers: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ValueError(f"model={self.model!r} must be a chinchilla.config.ModelConfig")
        if self.model.architecture != "rotary":
            raise ValueError(f"model.architecture={self.model.architecture!r}: only 'rotary' models can be trained")
        if self.model.kv_heads != self.model.n_heads:
            raise ValueError(f"model.n_kv_heads={self.model.n_kv_heads}: grouped/multi-query attention is counted by "
                             "chinchilla.flops but not trained by chinchilla.model (one K/V head per query head); "
                             "leave n_kv_heads unset to train")
        object.__setattr__(self, "mesh", tuple(self.mesh))
        _check_int("tokens", self.tokens, 1)
        for name in ("batch_size", "log_every", "eval_batches", "checkpoint_every", "keep_checkpoints",
                     "steps_per_dispatch"):
            _check_int(name, getattr(self, name), 1)
        _check_int("seed", self.seed, 0)
        if self.eval_every is not None:
            _check_int("eval_every", self.eval_every, 1)
        if self.cycle_tokens is not None:
            _check_int("cycle_tokens", self.cycle_tokens, 1)
        for name, low, high in (("lr", 0.0, math.inf), ("grad_clip", 0.0, math.inf), ("adam_eps", 0.0, 1.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and low < value < high):
                raise ValueError(f"{name}={value!r} must be a number in ({low}, {high})")
        for name in ("warmup_fraction", "adam_b1", "adam_b2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise ValueError(f"{name}={value!r} must be in [0, 1)")
        for name in ("final_lr_fraction", "weight_decay"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f"{name}={value!r} must be in [0, 1]")
        if len(self.mesh) != 3:
            raise ValueError(f"mesh={self.mesh!r} must be three sizes (data, fsdp, tensor)")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype={self.compute_dtype!r} is not one of {COMPUTE_DTYPES}")
        if self.peak_flops is not None and not (isinstance(self.peak_flops, (int, float))
                                                and not isinstance(self.peak_flops, bool)
                                                and 0 < self.peak_flops < math.inf):
            raise ValueError(f"peak_flops={self.peak_flops!r} must be a positive number of FLOP/s per device")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={self.attention_impl!r} is not one of {ATTENTION_IMPLS}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat={self.remat!r} is not one of {REMAT_POLICIES}")
        if not isinstance(self.scan_layers, bool):
            raise ValueError(f"scan_layers={self.scan_layers!r} must be true or false")
        if self.micro_batch_size is not None:
            _check_int("micro_batch_size", self.micro_batch_size, 1)
            if self.batch_size % self.micro_batch_size:
                raise ValueError(f"micro_batch_size={self.micro_batch_size} must divide batch_size={self.batch_size}")

    @classmethod
    def from_flops(cls, model: ModelConfig, flops: float, **kwargs: Any) -> "TrainConfig":
        """A run of ``model`` whose token budget spends ``flops`` exact Appendix F training FLOPs (rounded to whole
        tokens; the run itself rounds to whole steps)."""
        return cls(model=model, tokens=max(1, round(flops_lib.tokens_for_flops(model, flops))), **kwargs)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.seq_len

    @property
    def steps(self) -> int:
        return max(1, round(self.tokens / self.tokens_per_step))

    @property
    def cycle_steps(self) -> int:
        return self.steps if self.cycle_tokens is None else max(1, round(self.cycle_tokens / self.tokens_per_step))

    @property
    def micro_steps(self) -> int:
        """Forward/backward passes per optimizer step (batch_size / micro_batch_size)."""
        return 1 if self.micro_batch_size is None else self.batch_size // self.micro_batch_size

    @property
    def warmup_steps(self) -> int:
        return min(round(self.warmup_fraction * self.cycle_steps), self.cycle_steps - 1)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"] = self.model.to_dict()
        data["mesh"] = list(self.mesh)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        check_known_fields(cls, data)
        return cls(**{**data, "model": ModelConfig.from_dict(data["model"]), "mesh": tuple(data["mesh"])})


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
