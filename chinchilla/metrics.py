"""Throughput and utilisation: peak FLOP/s per device, a measured CPU matmul peak, MFU; live TensorBoard metrics.

MFU (model FLOPs utilisation, Chowdhery et al. 2022) = achieved model FLOP/s / peak FLOP/s, where the model FLOPs
are the exact Appendix F training FLOPs of the tokens processed (``chinchilla.flops``), whatever the implementation
actually executes.

Peaks: on GPUs and TPUs the dense data-sheet FLOP/s of the arithmetic the step runs (bf16, or float32 at JAX's
default precision), from ``chinchilla.accelerators.CHIPS``; a chip the table does not know gets no peak (MFU null
and one warning naming its device kind) unless the user gives one (``TrainConfig.peak_flops`` / ``--peak-flops``).
On CPU there is no meaningful data-sheet number, so the peak is the best FLOP/s of large float32 matmuls measured in
this process (``cpu_matmul_peak``). Such a CPU "MFU" is the fraction of the machine's own matmul speed the step
reaches.
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
from etils import epath

from chinchilla import accelerators

CPU_MATMUL_SIZES = (512, 1024, 2048)
ENV_PEAK_FLOPS = "CHINCHILLA_PEAK_FLOPS"


class UnknownAcceleratorWarning(UserWarning):
    """An accelerator without a known peak FLOP/s: the run trains, with MFU reported as missing."""


_WARNED_KINDS: set[str] = set()


def device_peak_flops(device: Any, compute_dtype: Any = "bfloat16") -> float | None:
    """Dense data-sheet FLOP/s of one jax device for ``compute_dtype`` ('bfloat16' or 'float32') compute, or None
    when the chip table does not know its kind (or the data sheet has no figure for that dtype)."""
    chip = accelerators.find_chip(getattr(device, "device_kind", ""))
    return None if chip is None else chip.peak(str(jnp.dtype(compute_dtype)))


@functools.cache
def cpu_matmul_peak(sizes: tuple[int, ...] = CPU_MATMUL_SIZES, repeats: int = 3) -> float:
    """Best FLOP/s (2 n^3 per n x n float32 matmul) over square matmuls of ``sizes``, each timed ``repeats`` times
    after a warm-up, in this process on the default CPU device. Cached: measured once per process (~0.5 s)."""
    device = jax.local_devices(backend="cpu")[0]  # not jax.devices(): on process k > 0 that device is not ours
    best = 0.0
    for n in sizes:
        a = jax.device_put(jnp.ones((n, n), jnp.float32), device)
        b = jax.device_put(jnp.full((n, n), 0.5, jnp.float32), device)
        matmul = jax.jit(jnp.matmul)
        matmul(a, b).block_until_ready()
        for _ in range(repeats):
            start = time.perf_counter()
            matmul(a, b).block_until_ready()
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def peak_flops(
    devices: list | None = None, compute_dtype: Any = "bfloat16", override: float | None = None
) -> tuple[float | None, str]:
    """Peak FLOP/s of ``devices`` (default: all) and where the number comes from.

    ``override`` (FLOP/s of one jax device, e.g. ``TrainConfig.peak_flops``; else ``$CHINCHILLA_PEAK_FLOPS``, which
    reaches the runs of ``chinchilla sweep``/``reproduce`` too) wins: times the device count ("user").
    Accelerators: the chip table's per-device peak for ``compute_dtype`` times the device count ("datasheet").
    CPU: the measured matmul peak of this process ("measured_cpu_matmul"); fake CPU devices share the same cores,
    so it is not multiplied. An accelerator the table does not know: (None, "unknown"), after a one-time
    ``UnknownAcceleratorWarning`` per device kind saying how to give a peak; training goes on, MFU is null.
    """
    devices = list(jax.devices() if devices is None else devices)
    if override is None and os.environ.get(ENV_PEAK_FLOPS):
        text = os.environ[ENV_PEAK_FLOPS]
        try:
            override = float(text)
        except ValueError:
            raise ValueError(f"{ENV_PEAK_FLOPS}={text!r} must be a number of FLOP/s per device") from None
        if not 0 < override < float("inf"):
            raise ValueError(f"{ENV_PEAK_FLOPS}={text!r} must be a positive number of FLOP/s per device")
    if override is not None:
        return float(override) * len(devices), "user"
    if devices[0].platform == "cpu":
        return cpu_matmul_peak(), "measured_cpu_matmul"
    per_device = device_peak_flops(devices[0], compute_dtype)
    if per_device is None:
        kind = devices[0].device_kind
        if kind not in _WARNED_KINDS:
            _WARNED_KINDS.add(kind)
            warnings.warn(
                f"no peak FLOP/s known for device_kind={kind!r} with {jnp.dtype(compute_dtype)} compute: "
                "MFU is reported as null; give the dense peak FLOP/s of one device with "
                f"`chinchilla train --peak-flops F`, TrainConfig(peak_flops=F) or {ENV_PEAK_FLOPS}=F",
                UnknownAcceleratorWarning,
                stacklevel=2,
            )
        return None, "unknown"
    return per_device * len(devices), "datasheet"


def mfu(model_flops: float, seconds: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: (model_flops / seconds) / peak; None when the peak is unknown."""
    return None if peak is None else model_flops / seconds / peak


# -- live metrics: TensorBoard event files ------------------------------------------------------------------------

ENV_TENSORBOARD = "CHINCHILLA_TENSORBOARD"
TENSORBOARD_DIR = "tensorboard"  # under the run directory
TENSORBOARD_SCALARS = ("loss", "eval_loss", "lr", "grad_norm", "tokens_per_s", "mfu", "step_time")
TENSORBOARD_INSTALL = "pip install 'chinchilla-scaling[tensorboard]' (or: pip install tensorboardX)"
_OFF = ("", "0", "off", "false", "no")
_ON = ("1", "on", "true", "yes")


def tensorboard_dir(run_dir: Any, environ: Any = None) -> epath.Path | None:
    """Where a run's TensorBoard event files go, from ``CHINCHILLA_TENSORBOARD``: unset, ``0`` or ``off``: nowhere
    (None); ``1`` or ``on``: ``<run_dir>/tensorboard``; any other value is a directory: ``<it>/<run name>``, so that
    one ``tensorboard --logdir`` shows every run of a sweep side by side."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV_TENSORBOARD, "").strip()
    if value.lower() in _OFF:
        return None
    run_dir = epath.Path(run_dir)
    if value.lower() in _ON:
        return run_dir / TENSORBOARD_DIR
    return epath.Path(value) / run_dir.name


def require_tensorboard(what: str = f"{ENV_TENSORBOARD}") -> None:
    """ValueError in one line, naming the pip command, when ``tensorboardX`` cannot be imported."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise ValueError(
            f"{what} writes TensorBoard event files, which needs tensorboardX: {TENSORBOARD_INSTALL}"
        ) from None


class ScalarWriter:
    """Each metrics.jsonl row's numbers as TensorBoard scalars of the same names (``TENSORBOARD_SCALARS``), at the
    row's step: loss, eval_loss, lr, grad_norm, tokens_per_s, mfu, step_time. Missing or non-finite values are left
    out. Flushed after every batch of rows, so a running job's curves are live."""

    def __init__(self, logdir: epath.Path, purge_step: int | None = None):
        require_tensorboard(f"{ENV_TENSORBOARD}={os.environ.get(ENV_TENSORBOARD, '')!r}")
        from tensorboardX import SummaryWriter

        self.logdir = logdir
        self.writer = SummaryWriter(logdir=os.fspath(logdir), purge_step=purge_step)

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            for name in TENSORBOARD_SCALARS:
                value = row.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.writer.add_scalar(name, value, global_step=row["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def tensorboard_writer(run_dir: Any, resumed_from: int | None = None) -> ScalarWriter | None:
    """A ``ScalarWriter`` for the run in ``run_dir`` when ``CHINCHILLA_TENSORBOARD`` asks for one and this is
    process 0 (the one writer of a run's files), else None. ``resumed_from``: the checkpoint step a resumed run
    starts after; the events of later steps, which the run logs again, are purged from view. Raises ValueError (one
    line, naming the pip command) when asked for without tensorboardX installed."""
    logdir = tensorboard_dir(run_dir)
    if logdir is None or jax.process_index() != 0:
        return None
    return ScalarWriter(logdir, purge_step=None if resumed_from is None else resumed_from + 1)
