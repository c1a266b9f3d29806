"""How much device memory a run's train step needs, from XLA's own buffer assignment, without allocating it, and the
fastest plan (micro-batch size, rematerialisation) that fits a chip.

``compiled_peak_bytes`` compiles the real multi-step train program of ``chinchilla.step.Trainer`` for abstract
inputs (nothing is allocated) and reads ``compiled.memory_analysis()``: arguments + outputs - donated (aliased)
buffers + temporaries, per device.

With the layers as one ``lax.scan`` (``TrainConfig.scan_layers``, what "auto" does on accelerators) the program holds
one layer whatever
the depth, so compiling a full-size model costs what a 2-layer one does (measured on this 2-core CPU: gpu-1117M, 26
layers, batch 64: 7.2 s; the same with 2 layers: 6.8 s): the planner compiles every plan it reports at full size,
and its numbers are XLA's for the whole program, not an extrapolation. Two shortcuts keep a preset's plans (several
models x plans) to a few compiles each: a plan with n >= 2 micro-steps of b sequences is compiled as n = 2 and the
(n - 2) x b extra input sequences' int32 tokens are added (the accumulation scan's body and carry do not depend on
n), and the search stops early (``plan``). Compiles are cached within a process.

``estimate_peak_bytes`` is for unrolled programs (``scan_layers=False``), whose compile time grows with depth: it
compiles 2- and 3-layer versions and extrapolates linearly in the layer count (the layers are identical, each adds
the same parameters, optimizer state and saved activations, so the peak is a + b * n_layers). Two layers, not one:
a one-trip scan is simplified away by XLA, which makes a 1-and-2-layer fit 2.2% high.

Attention on a target chip: "auto" means the flash-type kernel the chip runs (cuDNN fused attention on a bf16 GPU,
the Pallas splash kernel on a TPU). Neither can be compiled on CPU, so the planner compiles ``attention_impl=
"blocked"`` in its place (``chinchilla.attention``: query blocks of 128 under ``jax.checkpoint``, memory
O(B * H * block * T), never the [B, H, T, T] scores), the CPU stand-in for the memory of those kernels; "xla" is
compiled as itself (the full T x T scores).

The numbers are for the backend that compiles (on CPU, XLA's CPU buffer assignment, which converts bf16 matmul
inputs to float32 in temporaries): an estimate for a GPU or TPU target, not a measurement on it
(``benchmarks/accelerator_check.py`` puts the measured ``memory_stats`` beside it on a device).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

GiB = 2**30
FIT_FRACTION = 0.85  # a plan fits when its peak is at most this share of the chip's memory (>= 15% headroom)
REMAT_ORDER = ("none", "dots", "full")  # cheapest recompute first: none < dots (+2-5% FLOPs) < full (~+25%)
FLASH_STAND_IN = "blocked"  # what the CPU compiles for cuDNN/splash attention
# TrainConfig fields that change the compiled program's memory (the others are traced scalars or host-side).
_MEMORY_FIELDS = (
    "model",
    "batch_size",
    "micro_batch_size",
    "remat",
    "scan_layers",
    "attention_impl",
    "compute_dtype",
    "steps_per_dispatch",
)

# The program is compiled only to read its memory analysis, never run: on CPU, LLVM's optimisations of the machine
# code can go (buffer assignment, hence every byte of the analysis, comes before them: the same numbers for the
# planner's programs, measured scanned and unrolled, with and without remat and micro-steps; the compile ~35% faster).
_CPU_ANALYSIS_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
_compiled: dict[str, int] = {}


def _one_device_mesh() -> Any:
    import jax

    from chinchilla import sharding

    return sharding.make_mesh(devices=jax.devices()[:1])


def _cache_key(config: Any, mesh: Any) -> str:
    data = config.to_dict()
    fields = {name: data[name] for name in _MEMORY_FIELDS}
    devices = None if mesh is None else [mesh.axis_names, list(mesh.devices.shape), [d.id for d in mesh.devices.flat]]
    return json.dumps([fields, list(config.mesh) if mesh is None else None, devices], sort_keys=True, default=str)


def compiled_peak_bytes(config: Any, mesh: Any = None) -> int:
    """Peak bytes per device of ``config``'s compiled train step (``TrainConfig``; ``mesh`` as for ``Trainer``).
    Cached within the process by the fields that shape the program (not tokens, learning rate or data)."""
    from chinchilla.step import Trainer

    key = _cache_key(config, mesh)
    if key not in _compiled:
        trainer = Trainer(config, mesh=mesh)
        options = _CPU_ANALYSIS_OPTIONS if trainer.mesh.devices.flat[0].platform == "cpu" else None
        analysis = trainer.lowered_step().compile(compiler_options=options).memory_analysis()
        _compiled[key] = int(
            analysis.argument_size_in_bytes
            + analysis.output_size_in_bytes
            - analysis.alias_size_in_bytes
            + analysis.temp_size_in_bytes
        )
    return _compiled[key]


def estimate_peak_bytes(config: Any, mesh: Any = None) -> dict[str, float]:
    """Peak bytes per device of ``config``'s train step, extrapolated from compiles with 2 and 3 layers (a model of
    at most 3 layers is compiled as it is).

    Returns ``{"peak_bytes", "per_layer_bytes", "base_bytes" (the 2-layer compile), "base_layers", "n_layers"}``.
    """
    layers = config.model.n_layers
    if layers <= 3:
        peak = compiled_peak_bytes(config, mesh)
        return {
            "peak_bytes": float(peak),
            "per_layer_bytes": float("nan"),
            "base_bytes": float(peak),
            "base_layers": float(layers),
            "n_layers": float(layers),
        }
    two, three = (
        compiled_peak_bytes(dataclasses.replace(config, model=config.model.replace(n_layers=n)), mesh) for n in (2, 3)
    )
    return {
        "peak_bytes": float(two + (layers - 2) * (three - two)),
        "per_layer_bytes": float(three - two),
        "base_bytes": float(two),
        "base_layers": 2.0,
        "n_layers": float(layers),
    }


# -- the planner ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """One way to run a train step on a chip and its peak memory per device.

    ``batch_size``/``micro_batch_size``: global sequences per optimizer step / per forward-backward pass;
    ``attention``: what runs on the target ("cudnn", "splash", "xla", ...); ``compiled_attention``: what the CPU
    compiled for it; ``bytes_per_device``: XLA's peak; ``chip_bytes``: the chip's memory per device; ``fits``:
    bytes_per_device <= ``usable_fraction`` x chip_bytes."""

    model: str
    batch_size: int
    seq_len: int
    micro_batch_size: int
    remat: str
    attention: str
    compiled_attention: str
    compute_dtype: str
    devices: int
    bytes_per_device: int
    chip: str | None
    chip_bytes: int
    usable_fraction: float = FIT_FRACTION

    @property
    def micro_steps(self) -> int:
        return self.batch_size // self.micro_batch_size

    @property
    def fits(self) -> bool:
        return self.bytes_per_device <= self.usable_fraction * self.chip_bytes

    @property
    def headroom(self) -> float:
        """The share of the chip's memory the step leaves free (0.15 = 15%)."""
        return 1.0 - self.bytes_per_device / self.chip_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "micro_batch_size": self.micro_batch_size,
            "remat": self.remat,
            "attention": self.attention,
            "bytes_per_device": self.bytes_per_device,
            "chip_bytes": self.chip_bytes,
            "fits": self.fits,
            "chip": self.chip,
            "micro_steps": self.micro_steps,
            "gib_per_device": self.bytes_per_device / GiB,
            "headroom": self.headroom,
            "usable_fraction": self.usable_fraction,
            "compiled_attention": self.compiled_attention,
            "compute_dtype": self.compute_dtype,
            "devices": self.devices,
        }


def target_attention(requested: str, platform: str, compute_dtype: str = "bfloat16") -> tuple[str, str]:
    """(the attention implementation ``requested`` runs on ``platform`` ("gpu" or "tpu"), what the CPU compiles for
    it). Raises ValueError naming ``--attention`` for one the platform cannot run."""
    from chinchilla import attention
    from chinchilla.train_config import ATTENTION_IMPLS

    if requested not in ATTENTION_IMPLS:
        raise ValueError(f"--attention {requested}: not one of {', '.join(ATTENTION_IMPLS)}")
    if requested == "cudnn" and (platform != "gpu" or compute_dtype not in ("bfloat16", "float16")):
        raise ValueError(
            f"--attention cudnn: cuDNN attention needs a GPU computing in bf16/fp16 (the chip is a "
            f"{platform} computing in {compute_dtype})"
        )
    if requested == "splash" and platform != "tpu":
        raise ValueError(f"--attention splash: the splash kernel runs on TPUs (the chip is a {platform})")
    impl, _ = attention.resolve_impl(requested, platform=platform, compute_dtype=compute_dtype)
    return impl, ("xla" if impl == "xla" else FLASH_STAND_IN)


def step_bytes(
    model: Any,
    batch_size: int,
    micro_batch_size: int,
    remat: str,
    compiled_attention: str,
    *,
    compute_dtype: str = "bfloat16",
    devices: int = 1,
    steps_per_dispatch: int = 16,
) -> int:
    """Peak bytes per device of the train step at global ``batch_size`` in micro-batches of ``micro_batch_size``,
    split over ``devices`` data-parallel devices (each compiles batch / devices sequences).

    One micro-step is the whole-batch program; n >= 2 micro-steps are compiled as 2 and the other n - 2
    micro-batches' input tokens (int32, ``steps_per_dispatch`` batches per dispatch) are added."""
    from chinchilla.train_config import TrainConfig

    if batch_size % micro_batch_size or micro_batch_size % devices:
        raise ValueError(
            f"micro_batch_size={micro_batch_size} must divide batch_size={batch_size} and be a "
            f"multiple of devices={devices}"
        )
    micro = micro_batch_size // devices
    n = batch_size // micro_batch_size
    compiled_batch = micro if n == 1 else 2 * micro
    config = TrainConfig(
        model=model,
        tokens=10**12,
        batch_size=compiled_batch,
        micro_batch_size=None if n == 1 else micro,
        remat=remat,
        attention_impl=compiled_attention,
        compute_dtype=compute_dtype,
        steps_per_dispatch=steps_per_dispatch,
        mesh=(1, 1, 1),
        scan_layers=True,
    )  # as accelerators run it ("auto" scans there; on CPU it may unroll)
    extra_inputs = (batch_size // devices - compiled_batch) * steps_per_dispatch * (model.seq_len + 1) * 4
    return compiled_peak_bytes(config, _one_device_mesh()) + extra_inputs


def plan(
    model: Any,
    batch_size: int,
    *,
    chip_bytes: int,
    platform: str,
    chip: str | None = None,
    micro_batch_size: int | None = None,
    remat: str | None = None,
    attention: str = "auto",
    compute_dtype: str = "bfloat16",
    devices: int = 1,
    steps_per_dispatch: int = 16,
    usable_fraction: float = FIT_FRACTION,
) -> MemoryPlan:
    """The fastest way to train ``model`` (a ``ModelConfig``) at ``batch_size`` sequences per step on a chip with
    ``chip_bytes`` per device, or the plan asked for when ``micro_batch_size`` and ``remat`` are both given.

    Fastest: the fewest micro-steps (largest micro-batch dividing the batch), then the cheapest remat
    (``REMAT_ORDER``: none < dots < full), whose peak fits ``usable_fraction`` of the chip. A given
    ``micro_batch_size`` or ``remat`` fixes that part of the search. Memory falls with fewer sequences per
    micro-batch and with more recompute (none >= dots >= full), so at each micro-batch size "none" is tried, then
    "full" (if even that does not fit, the next smaller micro-batch), then "dots": at most three compiles for the
    micro-batch size chosen and two for each larger one. When nothing fits, the plan with the least memory tried
    (``fits`` False).
    """
    from chinchilla.train_config import REMAT_POLICIES

    if remat is not None and remat not in REMAT_POLICIES:
        raise ValueError(f"--remat {remat}: not one of {', '.join(REMAT_POLICIES)}")
    if remat == "offload":
        raise ValueError(
            "--remat offload: host offload cannot be compiled on this CPU (no pinned host memory), "
            "so its memory cannot be estimated here; plan with dots (the same recompute, saved "
            "projections on the device)"
        )
    if micro_batch_size is not None and (micro_batch_size < 1 or batch_size % micro_batch_size):
        raise ValueError(f"--micro-batch-size {micro_batch_size}: must divide --batch-size {batch_size}")
    if batch_size % devices or (micro_batch_size is not None and micro_batch_size % devices):
        raise ValueError(f"--devices {devices}: must divide the batch ({batch_size}) and the micro-batch")
    impl, compiled = target_attention(attention, platform, compute_dtype)

    def evaluate(micro: int, policy: str) -> MemoryPlan:
        peak = step_bytes(
            model,
            batch_size,
            micro,
            policy,
            compiled,
            compute_dtype=compute_dtype,
            devices=devices,
            steps_per_dispatch=steps_per_dispatch,
        )
        return MemoryPlan(
            model=model.name,
            batch_size=batch_size,
            seq_len=model.seq_len,
            micro_batch_size=micro,
            remat=policy,
            attention=impl,
            compiled_attention=compiled,
            compute_dtype=compute_dtype,
            devices=devices,
            bytes_per_device=peak,
            chip=chip,
            chip_bytes=int(chip_bytes),
            usable_fraction=usable_fraction,
        )

    micros = (
        [micro_batch_size]
        if micro_batch_size is not None
        else [b for b in range(batch_size, 0, -1) if batch_size % b == 0 and b % devices == 0]
    )
    smallest = None
    for micro in micros:
        if remat is not None:
            candidate = evaluate(micro, remat)
            if candidate.fits:
                return candidate
            smallest = candidate
            continue
        cheapest = evaluate(micro, "none")
        if cheapest.fits:
            return cheapest
        leanest = evaluate(micro, "full")
        smallest = leanest if leanest.bytes_per_device < cheapest.bytes_per_device else cheapest
        if not leanest.fits:
            continue
        middle = evaluate(micro, "dots")
        return middle if middle.fits else leanest
    assert smallest is not None
    return smallest


def plans_for_runs(
    runs: Sequence[Any],
    *,
    chip_bytes: int,
    platform: str,
    chip: str | None = None,
    devices: int = 1,
    usable_fraction: float = FIT_FRACTION,
) -> list[MemoryPlan]:
    """One plan per distinct (model, batch, micro-batch, remat, attention) among planned runs
    (``chinchilla.sweep.plan.PlannedRun``), with each run's own ``micro_batch_size``/``remat``/``attention_impl``
    where it sets them (the planner picks the rest), smallest model first."""
    from chinchilla.train_config import TrainConfig

    seen: dict[tuple, MemoryPlan] = {}
    for run in runs:
        config = TrainConfig(model=run.model, tokens=run.tokens, **dict(run.train))
        dtype = "float32" if config.compute_dtype == "float32" else "bfloat16"
        key = (
            run.model.name,
            json.dumps(run.model.to_dict(), sort_keys=True),
            config.batch_size,
            config.micro_batch_size,
            config.remat if "remat" in dict(run.train) else None,
            config.attention_impl,
            dtype,
            config.steps_per_dispatch,
        )
        if key not in seen:
            seen[key] = plan(
                run.model,
                config.batch_size,
                chip_bytes=chip_bytes,
                platform=platform,
                chip=chip,
                micro_batch_size=config.micro_batch_size,
                remat=key[4],
                attention=config.attention_impl,
                compute_dtype=dtype,
                devices=devices,
                steps_per_dispatch=config.steps_per_dispatch,
                usable_fraction=usable_fraction,
            )
    from chinchilla.flops import param_count

    return sorted(
        seen.values(),
        key=lambda p: (param_count(_model_named(runs, p.model)).total, p.batch_size, p.micro_batch_size, p.remat),
    )


def _model_named(runs: Sequence[Any], name: str) -> Any:
    return next(run.model for run in runs if run.model.name == name)
