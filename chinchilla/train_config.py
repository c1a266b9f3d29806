"""What defines a training run: ``TrainConfig`` (saved as a run's ``config.json``).

Kept apart from ``chinchilla.train`` (the run loop) and ``chinchilla.step`` (the compiled step) so that both can
import it without importing each other.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

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


# The groups a field belongs to (``chinchilla train --help`` shows its flags under these titles), in order.
FIELD_GROUPS = {
    "budget": "model and budget",
    "data": "data",
    "optimiser": "optimiser (AdamW)",
    "schedule": "learning-rate schedule",
    "logging": "evaluation and logging",
    "execution": "execution (devices, precision, memory, speed)",
    "checkpoints": "checkpoints and branching",
}


def _field(text: str, group: str, default: Any = dataclasses.MISSING, **cli: Any) -> Any:
    """A ``TrainConfig`` field and its documentation, kept in its metadata: ``help`` (``text``: shown by
    ``chinchilla train --help``), ``group`` (a key of ``FIELD_GROUPS``) and hints for the command line: ``choices``
    (the allowed values), ``metavar``, ``aliases`` (more flag names) and ``none`` (the word for None, "none" unless
    given)."""
    assert group in FIELD_GROUPS, group
    return dataclasses.field(default=default, metadata={"help": text, "group": group, **cli})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (saved as ``config.json``; a resumed run must match it exactly, but for
    ``EXECUTION_FIELDS`` and ``REPORTING_FIELDS``; a branch may differ from its trunk in ``BRANCH_FIELDS``).

    Each field is documented where it is declared (its ``help`` metadata), which is also what ``chinchilla train
    --help`` shows: the command line has one flag per field, made from these declarations (``chinchilla.cli.train``).

    Schedule (``chinchilla.schedule``): "cosine" is the paper's (linear warm-up, then a cosine decay over
    ``cycle_tokens``); "wsd" (warmup-stable-decay) holds the rate constant, then cools down over the last
    ``cooldown_fraction`` of the run (0 = a constant rate: a trunk). Branching (Hägele et al. 2024): ``init_from``
    starts this run from another run's state at a step (parameters, optimizer state, data position, its logged
    metrics); the trunk must be the same run but for ``BRANCH_FIELDS``, with a constant rate through that step;
    this run's tokens and FLOPs count from step 0. Memory (``chinchilla memory`` plans these for a chip):
    ``micro_batch_size`` folds the batch into a ``lax.scan`` of micro-steps with float32 gradient accumulators and
    one optimizer update, so a run's maths does not depend on it (round-off aside).
    """

    model: ModelConfig = _field(
        "the model's shape (chinchilla.config.ModelConfig); on the command line --model NAME (a zoo model) and "
        "--seq-len",
        "budget",
    )
    tokens: int = _field(
        "the token budget D: the run trains round(tokens / (batch_size x seq_len)) steps; on the command line "
        "--tokens D or --flops C",
        "budget",
    )
    batch_size: int = _field(
        "global sequences per optimizer step (split over processes and the data x fsdp mesh axes)", "budget", 8
    )
    lr: float = _field("peak learning rate", "optimiser", 3e-3)
    warmup_fraction: float = _field(
        "linear warm-up as a fraction of the cosine cycle (of the run, for wsd); --warmup-tokens overrides it",
        "schedule",
        0.1,
    )
    cycle_tokens: int | None = _field(
        "cosine: the cycle length in tokens (none: the run's length; Approach 1 trains other lengths)", "schedule", None
    )
    final_lr_fraction: float | None = _field(
        "learning rate at the end of the cycle (cosine) or of the cooldown (wsd) / peak (none: 0.1 for cosine, the "
        "paper's 10x decay; 0 for wsd)",
        "schedule",
        None,
    )
    weight_decay: float = _field(
        "AdamW weight decay, times the learning rate, on matrices only (not on norm scales)", "optimiser", 0.1
    )
    grad_clip: float = _field("gradients are scaled to a global norm of at most this", "optimiser", 1.0)
    adam_b1: float = _field("AdamW beta1 (first-moment decay)", "optimiser", 0.9)
    adam_b2: float = _field("AdamW beta2 (second-moment decay)", "optimiser", 0.95)
    adam_eps: float = _field("AdamW epsilon", "optimiser", 1e-8)
    seed: int = _field("seed of the initial parameters and of the data order", "budget", 0)
    dataset: str = _field(
        "'embedded' (offline), 'files:GLOB[?text_key=NAME]' (your .txt/.jsonl/.parquet shards, docs/data.md) or a "
        "prepared TFDS name",
        "data",
        "embedded",
    )
    tokenizer: str = _field("'byte', 'sentencepiece:<vocab>' or a .model path", "data", "byte")
    data_dir: str | None = _field(
        "data cache / TFDS data directory (none: the default cache)", "data", None, metavar="DIR"
    )
    log_every: int = _field("steps between metrics.jsonl lines", "logging", 10)
    eval_every: int | None = _field(
        "steps between validation losses, at the first dispatch boundary at or after each multiple (none: only at "
        "the end; always at the end)",
        "logging",
        None,
    )
    eval_batches: int = _field("fixed batches of --eval-split in each validation loss", "logging", 8)
    eval_split: str = _field(
        "the data split of the validation loss (a held-out slice of train where the data set has none)",
        "data",
        "validation",
    )
    checkpoint_every: int = _field(
        "steps between checkpoints (at the first dispatch boundary at or after each multiple, and at the end)",
        "checkpoints",
        500,
    )
    keep_checkpoints: int = _field(
        "the latest checkpoints kept (older ones are deleted; --save-steps' are kept for good)", "checkpoints", 2
    )
    steps_per_dispatch: int = _field(
        "optimizer steps per device call (a lax.fori_loop in the compiled step; one host sync per call)",
        "execution",
        16,
    )
    mesh: tuple[int, int, int] = _field(
        "(data, fsdp, tensor) mesh sizes; one may be -1 (all remaining devices)",
        "execution",
        (-1, 1, 1),
        metavar="DATA,FSDP,TENSOR",
    )
    compute_dtype: str = _field(
        "matmul precision: auto (from the chip: chinchilla.step.choose_compute_dtype), float32 or bfloat16; master "
        "weights stay float32",
        "execution",
        "auto",
        choices=COMPUTE_DTYPES,
    )
    attention_impl: str = _field(
        "attention kernel (chinchilla.attention): auto (splash on TPU, cuDNN on bf16 GPUs, XLA elsewhere; the choice "
        "is written to summary.json), xla, cudnn, splash or blocked",
        "execution",
        "auto",
        choices=ATTENTION_IMPLS,
        aliases=("--attention",),
        metavar="KERNEL",
    )
    peak_flops: float | None = _field(
        "dense peak FLOP/s of one jax device, for MFU (none: from chinchilla.accelerators' data-sheet table; needed "
        "on a chip the table does not know, e.g. 65e12); only reported",
        "logging",
        None,
    )
    micro_batch_size: int | None = _field(
        "global sequences per forward/backward pass; the batch is accumulated over batch_size / micro_batch_size "
        "micro-steps in one optimizer step (none: the whole batch; `chinchilla memory` plans it for a chip)",
        "execution",
        None,
    )
    remat: str = _field(
        "per-layer rematerialisation (chinchilla.model.remat_policy): none, full (recompute each layer), dots (keep "
        "weight matmuls), offload (as dots, kept in host memory; GPU/TPU)",
        "execution",
        "none",
        choices=REMAT_POLICIES,
    )
    scan_layers: bool | None = _field(
        "the layers as one lax.scan (true) or unrolled (false); auto: scanned on accelerators and wherever remat is "
        "on, unrolled on CPU without remat (1.4-1.7x faster there for the tiny models, BENCHMARKS.md)",
        "execution",
        None,
        none="auto",
    )
    schedule: str = _field(
        "learning-rate schedule: cosine (the paper's: one cycle per run) or wsd (warmup-stable-decay: a constant "
        "rate, then a cooldown over the last --cooldown-fraction of the run; docs/wsd.md)",
        "schedule",
        "cosine",
        choices=SCHEDULES,
    )
    cooldown_fraction: float = _field(
        "wsd: the cooldown's share of the run (0: a constant rate after warm-up, a trunk that other runs branch off)",
        "schedule",
        0.2,
    )
    cooldown_shape: str = _field(
        "wsd: the cooldown's shape (1-sqrt: Hägele et al.'s best)", "schedule", "1-sqrt", choices=COOLDOWN_SHAPES
    )
    warmup_tokens: int | None = _field(
        "warm-up length in tokens, instead of --warmup-fraction (none: the fraction); runs that share a trunk need "
        "one warm-up whatever their length",
        "schedule",
        None,
    )
    init_from: str | None = _field(
        "start from another run's state: its last checkpoint, or its checkpoint at STEP (a wsd trunk's branch point), "
        "continuing its data order and optimizer state; this run must be that run but for its length and cooldown "
        "(a relative RUN_DIR is a sibling of this run's directory, as in a sweep's runs/ folder; the command line "
        "makes it absolute against the working directory)",
        "checkpoints",
        None,
        metavar="RUN_DIR[:STEP]",
    )
    save_steps: tuple[int, ...] = _field(
        "steps at which to keep a checkpoint for good (under RUN_DIR/branch_points): where branches will start "
        "(--init-from RUN_DIR:STEP)",
        "checkpoints",
        (),
        metavar="STEP[,STEP...]",
    )
    data_tokens: int | None = _field(
        "draw batches from (at least) this many tokens of the data set (none: what this run needs); runs that share "
        "a trunk need one data pool",
        "data",
        None,
    )

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
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
