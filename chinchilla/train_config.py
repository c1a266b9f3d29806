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
EXECUTION_FIELDS = ("micro_batch_size", "remat", "scan_layers", "attention_impl", "steps_per_dispatch", "save_steps")
SCHEDULES = ("cosine", "wsd")  # chinchilla.schedule's
COOLDOWN_SHAPES = ("1-sqrt", "linear", "cosine")
# What a branch (init_from) may set differently from its trunk: its length and cooldown, and what is only recorded.
BRANCH_FIELDS = (
    (
        "tokens",
        "cooldown_fraction",
        "cooldown_shape",
        "final_lr_fraction",
        "init_from",
        "log_every",
        "eval_every",
        "eval_batches",
        "checkpoint_every",
        "keep_checkpoints",
    )
    + REPORTING_FIELDS
    + EXECUTION_FIELDS
)


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

    Schedule (``chinchilla.schedule``): ``schedule`` "cosine" (the paper's; ``cycle_tokens``, ``warmup_fraction``
    of the cycle) or "wsd" (warmup-stable-decay: a constant rate, then a cooldown over the last
    ``cooldown_fraction`` of the run, shaped ``cooldown_shape`` "1-sqrt", "linear" or "cosine"; 0 = a constant
    rate, a trunk); ``final_lr_fraction`` None = 0.1 for cosine, 0 for wsd; ``warmup_tokens``: warm-up in tokens
    (overrides ``warmup_fraction``: runs that share a trunk need one warm-up whatever their length).
    Branching (Hägele et al. 2024): ``init_from`` "RUN_DIR" (its last checkpoint) or "RUN_DIR:STEP" (a relative
    RUN_DIR is a sibling of this run's directory, as in a sweep's runs/ folder) starts this run
    from another run's state at that step (parameters, optimizer state, data position, its logged metrics): the
    trunk must be the same run but for ``BRANCH_FIELDS`` with a constant rate through STEP; this run's tokens and
    FLOPs count from step 0. ``save_steps``: steps at which a checkpoint is kept for good, under
    ``RUN_DIR/branch_points`` (where branches start). ``data_tokens``: draw batches from (at least) this many tokens
    of the data set (None: what this run needs): runs that share a trunk need one data pool.

    Memory (``chinchilla memory`` plans these for a chip): ``micro_batch_size``: global sequences per forward/backward
    pass (None = the whole batch); the batch is folded by a ``lax.scan`` of batch_size / micro_batch_size micro-steps
    inside the compiled step with float32 gradient accumulators and one optimizer update, so a run's maths does not
    depend on it (round-off aside). ``remat``: per-layer rematerialisation (``chinchilla.model.remat_policy``: "none",
    "full", "dots", "offload"). ``scan_layers``: the layers as one ``lax.scan`` (True) or unrolled (False); None
    (auto): scanned on
    accelerators and wherever remat is on (one compiled layer; remat honoured), unrolled on CPU without remat (measured
    1.4-1.7x faster there for the tiny models, BENCHMARKS.md).
    ``attention_impl``: "auto" (splash on TPU, cuDNN on bf16 GPUs, XLA elsewhere; the choice is written to
    ``summary.json``), "xla", "cudnn", "splash" or "blocked" (``chinchilla.attention``).
    """

    model: ModelConfig
    tokens: int
    batch_size: int = 8
    lr: float = 3e-3
    warmup_fraction: float = 0.1
    cycle_tokens: int | None = None
    final_lr_fraction: float | None = None
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
    scan_layers: bool | None = None
    schedule: str = "cosine"
    cooldown_fraction: float = 0.2
    cooldown_shape: str = "1-sqrt"
    warmup_tokens: int | None = None
    init_from: str | None = None
    save_steps: tuple[int, ...] = ()
    data_tokens: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ValueError(f"model={self.model!r} must be a chinchilla.config.ModelConfig")
        if self.model.architecture != "rotary":
            raise ValueError(f"model.architecture={self.model.architecture!r}: only 'rotary' models can be trained")
        if self.model.kv_heads != self.model.n_heads:
            raise ValueError(
                f"model.n_kv_heads={self.model.n_kv_heads}: grouped/multi-query attention is counted by "
                "chinchilla.flops but not trained by chinchilla.model (one K/V head per query head); "
                "leave n_kv_heads unset to train"
            )
        object.__setattr__(self, "mesh", tuple(self.mesh))
        object.__setattr__(self, "save_steps", tuple(self.save_steps))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not one of {SCHEDULES}")
        if self.final_lr_fraction is None:
            object.__setattr__(self, "final_lr_fraction", 0.1 if self.schedule == "cosine" else 0.0)
        if self.cooldown_shape not in COOLDOWN_SHAPES:
            raise ValueError(f"cooldown_shape={self.cooldown_shape!r} is not one of {COOLDOWN_SHAPES}")
        if not (isinstance(self.cooldown_fraction, (int, float)) and 0 <= self.cooldown_fraction <= 1):
            raise ValueError(f"cooldown_fraction={self.cooldown_fraction!r} must be in [0, 1]")
        if self.schedule == "wsd" and self.cycle_tokens is not None:
            raise ValueError(
                f"cycle_tokens={self.cycle_tokens} is a cosine setting; a wsd run's cooldown is "
                "cooldown_fraction of its own length"
            )
        for name in ("warmup_tokens", "data_tokens"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 0 if name == "warmup_tokens" else 1)
        for step in self.save_steps:
            _check_int("save_steps", step, 1)
        if self.init_from is not None and not (isinstance(self.init_from, str) and self.init_from.strip()):
            raise ValueError(f"init_from={self.init_from!r} must be a run directory, optionally with :STEP")
        _check_int("tokens", self.tokens, 1)
        for name in (
            "batch_size",
            "log_every",
            "eval_batches",
            "checkpoint_every",
            "keep_checkpoints",
            "steps_per_dispatch",
        ):
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
        if self.peak_flops is not None and not (
            isinstance(self.peak_flops, (int, float))
            and not isinstance(self.peak_flops, bool)
            and 0 < self.peak_flops < math.inf
        ):
            raise ValueError(f"peak_flops={self.peak_flops!r} must be a positive number of FLOP/s per device")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={self.attention_impl!r} is not one of {ATTENTION_IMPLS}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat={self.remat!r} is not one of {REMAT_POLICIES}")
        if self.scan_layers is not None and not isinstance(self.scan_layers, bool):
            raise ValueError(f"scan_layers={self.scan_layers!r} must be true, false or null (auto)")
        if self.micro_batch_size is not None:
            _check_int("micro_batch_size", self.micro_batch_size, 1)
            if self.batch_size % self.micro_batch_size:
                raise ValueError(f"micro_batch_size={self.micro_batch_size} must divide batch_size={self.batch_size}")

    @classmethod
    def from_flops(cls, model: ModelConfig, flops: float, **kwargs: Any) -> TrainConfig:
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
        if self.warmup_tokens is not None:
            return min(round(self.warmup_tokens / self.tokens_per_step), self.steps - 1)
        return min(round(self.warmup_fraction * self.cycle_steps), self.cycle_steps - 1)

    @property
    def decay_start(self) -> int:
        """The step where a wsd run's cooldown starts (= steps when cooldown_fraction is 0); cosine: 0."""
        if self.schedule != "wsd":
            return 0
        return max(self.warmup_steps, self.steps - round(self.cooldown_fraction * self.steps))

    @property
    def branch_point(self) -> tuple[str, int | None] | None:
        """``init_from`` as (run directory, step or None for its last checkpoint), or None."""
        if self.init_from is None:
            return None
        directory, _, step = self.init_from.rpartition(":")
        if directory and step.isdigit():
            return directory, int(step)
        return self.init_from, None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"] = self.model.to_dict()
        data["mesh"] = list(self.mesh)
        data["save_steps"] = list(self.save_steps)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        check_known_fields(cls, data)
        return cls(
            **{
                **data,
                "model": ModelConfig.from_dict(data["model"]),
                "mesh": tuple(data["mesh"]),
                "save_steps": tuple(data.get("save_steps", ())),
            }
        )


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
