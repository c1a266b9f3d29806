"""One command that measures the train step on a lent accelerator (<= 5 minutes on one H100), writing as it goes.

Stages, each guarded (a failure is recorded with its error and the next stage runs); the JSON and markdown reports
(``OUT/accelerator_check.json``, ``OUT/accelerator_check.md``) are rewritten atomically after every measured row, so
a run killed at any point keeps what it measured:

1. ``environment``: Python and package versions, devices, device kind, compute capability, memory limit, the
   compute dtype ``compute_dtype="auto"`` picks and why, the data-sheet bf16 peak (``chinchilla.accelerators``).
2. ``preset_mfu``: for each accelerator preset that targets this backend (``gpu`` on a GPU, ``colab_tpu`` on a TPU;
   ``--presets`` to choose), its plan's smallest and largest model at the preset's *real* setting (of the model's
   costliest planned run), read from the preset's hparams at run time (``batch_size``, ``micro_batch_size``, ``remat``,
   ``attention_impl``,
   ``compute_dtype``, ``scan_layers``: whatever ``chinchilla/presets/<preset>.py`` says today): compile time, step time,
   tokens/s, MFU (exact Appendix F FLOPs / step time / data-sheet peak of the dtype the step computes in).
3. ``remat``: step time per remat policy (none, dots, full, and offload where the backend has pinned host memory)
   for one mid-size model of the preset's plan (the geometric middle of its sizes), at the preset's batch with
   micro-batches of at most ``--remat-micro`` (16) sequences, so that "none" fits too (equal tokens for every policy).
4. ``agreement``: loss and gradient of one batch from the same parameters, max abs difference: cuDNN vs XLA
   attention (GPU, bf16), splash vs XLA attention (TPU; on CPU the Pallas kernel in interpret mode), bf16 vs
   float32 compute (XLA attention).
5. ``checkpoint``: ``chinchilla.checkpoint.Checkpointer`` save (until on disk) and restore time of the mid-size
   model's train state (parameters + Adam moments), to a temporary directory (removed), checked bit-equal.
6. ``memory``: for every step measured in 2 and 3, the measured peak (``device.memory_stats()
   ["peak_bytes_in_use"]``, each step in its own process so the high-water mark is that step's), beside the
   planner's estimate for the same setting: the first estimate function ``chinchilla.memory`` has at run time that
   answers (``PLANNER_FUNCTIONS``: today ``plan``, what ``chinchilla memory`` reports), computed on JAX's CPU
   backend as a user gets it, else XLA's compiled ``memory_analysis()`` of the measured step (arguments + outputs
   - donated + temporaries, on the accelerator's own compiler), which every row records too.

Each measurement runs in a child process (``--isolate auto``: except with ``--dry``; a crash or an out-of-memory
error is that row's error, each child's memory peak is its own, and the parent stays on JAX's CPU backend, where it
computes the planner's estimates while the children measure); ``--budget-s`` (default 290) bounds the whole run:
a row that would start after its stage's share of the budget is recorded as skipped, and a child is killed when
the budget is spent. No network, no data set (random tokens), no install: the script puts the repository on
``sys.path``; it needs jax (with its CUDA plugin on a GPU), flax, optax, orbax-checkpoint, etils and numpy.

Usage (from the repository root)::

    python benchmarks/accelerator_check.py --out $OUT                     # on the GPU/TPU, <= ~5 minutes
    JAX_PLATFORMS=cpu python benchmarks/accelerator_check.py --dry --out /tmp/accel   # CPU, tiny stand-ins

``--dry`` runs every stage on CPU with tiny stand-ins (``tiny-00004k``/``tiny-00025k`` for a preset's smallest and
largest model, batch 8 with the preset's accumulation factor kept, 2 steps per dispatch, one timed dispatch): the suite
runs it
(``tests/test_accelerator_check.py``) so the script cannot rot before it meets an accelerator.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import inspect
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# let JAX's GPU allocator take 90% of the card (default 75%): the presets' plans size steps to ~85% of it
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.90")
# The children that measure get the accelerator (the environment as it was); the parent of an isolated run stays on
# JAX's CPU backend, so it never holds accelerator memory (or a TPU's lock) while they run, and computes the
# planner's estimates there, as ``chinchilla memory`` does.
CHILD_ENV = dict(os.environ)


def _isolating_parent(argv: list[str]) -> bool:
    """Whether this command line is the parent of an isolated run (see ``--isolate``)."""
    never = any(
        arg == "--isolate=never" or (arg == "--isolate" and argv[i + 1 : i + 2] == ["never"])
        for i, arg in enumerate(argv)
    )
    return "--worker" not in argv and not never and ("--dry" not in argv or "always" in argv)


if __name__ == "__main__" and _isolating_parent(sys.argv[1:]):
    os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from chinchilla import metrics, runfiles, zoo  # noqa: E402
from chinchilla.step import Trainer, choose_compute_dtype  # noqa: E402
from chinchilla.train_config import TrainConfig  # noqa: E402

GiB = 2**30
PACKAGES = (
    "jax",
    "jaxlib",
    "jax-cuda12-plugin",
    "jax-cuda13-plugin",
    "libtpu",
    "flax",
    "optax",
    "orbax-checkpoint",
    "numpy",
)
PRESETS_FOR_PLATFORM = {"gpu": ("gpu",), "tpu": ("colab_tpu",), "cpu": ("gpu", "colab_tpu")}
DRY_STAND_INS = ("tiny-00004k", "tiny-00025k")  # a preset's smallest and largest model, in --dry
DRY_MID = "tiny-00025k"
DRY_BATCH = 8
# The planner's estimate function, the first one ``chinchilla.memory`` has that answers (looked up at run time: the
# planner is being built beside this script); called with the TrainConfig, or with the keyword arguments its
# signature names (``plan(model, batch_size, micro_batch_size=, remat=, attention=, chip_bytes=, platform=)``).
PLANNER_FUNCTIONS = ("plan", "estimate_bytes", "estimate", "bytes_per_device", "step_bytes", "estimate_peak_bytes")
TRAIN_FIELDS = frozenset(field.name for field in dataclasses.fields(TrainConfig))
SETTING = ("batch_size", "micro_batch_size", "remat", "attention_impl", "compute_dtype", "scan_layers")
RESULT_PREFIX = "ACCELERATOR_CHECK_RESULT "


# -- report ------------------------------------------------------------------------------------------------------
class Report:
    """The JSON + markdown report, rewritten (atomically) after every recorded item."""

    def __init__(self, out: Path, dry: bool, budget_s: float):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "dry": dry,
            "budget_s": budget_s,
            "stages": {},
        }
        self.start = time.perf_counter()
        self.budget_s = budget_s
        self.flush()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def stage(self, name: str, fn: Callable[[dict], Any], start_by: float) -> None:
        """Run ``fn(entry)`` unless the run is past ``start_by`` (a fraction of the budget); record any error."""
        entry: dict[str, Any] = {"status": "running"}
        self.data["stages"][name] = entry
        if self.elapsed() > start_by * self.budget_s:
            entry.update(status="skipped", reason=f"time budget: would start after {start_by * self.budget_s:.0f} s")
            self.flush()
            return
        began = time.perf_counter()
        self.flush()
        try:
            fn(entry)
            rows = [row for key in ("runs", "comparisons") for row in entry.get(key, [])]
            failed = [row for row in rows if row.get("status") == "error"]
            entry["status"] = "partial" if failed else "ok"
        except Exception as error:  # noqa: BLE001 - every stage's failure is recorded, the next stage runs
            entry.update(
                status="error",
                error=f"{type(error).__name__}: {error}"[:2000],
                traceback=traceback.format_exc()[-4000:],
            )
        entry["seconds"] = round(time.perf_counter() - began, 2)
        self.flush()

    def flush(self) -> None:
        self.data["elapsed_s"] = round(self.elapsed(), 2)
        runfiles.write_json_atomic(self.out / "accelerator_check.json", self.data)
        temporary = self.out / ".accelerator_check.md.tmp"
        temporary.write_text(markdown(self.data))
        temporary.replace(self.out / "accelerator_check.md")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _gib(value: Any) -> str:
    return "-" if value is None else f"{value / GiB:.3g}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1%}"


def _note(row: dict) -> str:
    return (
        str(row.get("error") or row.get("reason") or row.get("note") or "")[:160].replace("|", "/").replace("\n", " ")
    )


def _setting(row: dict) -> str:
    s = row.get("setting", {})
    micro = s.get("micro_batch_size") or s.get("batch_size")
    return (
        f"{s.get('batch_size')}/{micro}, {s.get('remat', 'none')}, {row.get('attention', s.get('attention_impl'))}"
        f", {row.get('compute_dtype', s.get('compute_dtype'))}"
    )


def markdown(data: dict) -> str:
    """The report as markdown: one section per stage, a table per stage."""
    lines = [
        f"# accelerator_check ({'dry, CPU stand-ins' if data['dry'] else 'accelerator'}), started {data['started']}",
        "",
        f"elapsed: {data.get('elapsed_s')} s of a {data.get('budget_s')} s budget",
        "",
    ]
    for name, entry in data["stages"].items():
        lines += [f"## {name}: {entry.get('status')} ({entry.get('seconds', '?')} s)", ""]
        for key in ("error", "reason"):
            if entry.get(key):
                lines += ["```", str(entry[key]), "```", ""]
        if name == "environment":
            lines += [
                f"- {key}: {value}"
                for key, value in entry.items()
                if key not in ("status", "seconds", "error", "traceback")
            ] + [""]
        elif name in ("preset_mfu", "remat"):
            if entry.get("model"):
                lines += [f"model: {entry['model']}", ""]
            lines += [
                "| run | model | batch/micro, remat, attention, dtype | compile s | step s | tokens/s | MFU | "
                "peak GiB (measured) | note |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for row in entry.get("runs", []):
                lines.append(
                    f"| {row.get('label')} | {row.get('model')} | {_setting(row)} | "
                    f"{_fmt(row.get('compile_s'), 3)} | {_fmt(row.get('step_time_s'))} | "
                    f"{_fmt(row.get('tokens_per_s'))} | {_pct(row.get('mfu'))} | "
                    f"{_gib(row.get('peak_bytes_in_use'))} | {_note(row)} |"
                )
            lines.append("")
        elif name == "memory":
            lines += [
                "| run | model | batch/micro, remat, attention, dtype | measured peak GiB | planner estimate GiB "
                "| estimate source | estimate / measured | XLA compiled GiB | device limit GiB |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for row in entry.get("rows", []):
                lines.append(
                    f"| {row.get('label')} | {row.get('model')} | {_setting(row)} | "
                    f"{_gib(row.get('peak_bytes_in_use'))} | {_gib(row.get('estimate_bytes'))} | "
                    f"{row.get('estimate_source', '-')} | {_fmt(row.get('estimate_over_measured'), 3)} | "
                    f"{_gib(row.get('xla_compiled_bytes'))} | {_gib(row.get('bytes_limit'))} |"
                )
            lines.append("")
        elif name == "agreement":
            lines += [
                "| comparison | model | reference | candidate (ran as) | loss ref | abs loss diff | "
                "max abs grad diff | / max abs grad | note |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for row in entry.get("comparisons", []):
                lines.append(
                    f"| {row.get('label')} | {row.get('model')} | {row.get('reference_ran_as', '-')} | "
                    f"{row.get('candidate_ran_as', '-')} | {_fmt(row.get('loss_reference'), 6)} | "
                    f"{_fmt(row.get('loss_abs_diff'), 3)} | {_fmt(row.get('grad_max_abs_diff'), 3)} | "
                    f"{_fmt(row.get('grad_rel_diff'), 3)} | {_note(row)} |"
                )
            lines.append("")
        elif name == "checkpoint":
            lines += [
                f"- {key}: {_fmt(entry.get(key))}"
                for key in (
                    "model",
                    "state_gib",
                    "save_call_s",
                    "save_s",
                    "restore_s",
                    "save_gib_per_s",
                    "restore_gib_per_s",
                    "restored_equal",
                    "note",
                )
                if key in entry
            ] + [""]
    return "\n".join(lines) + "\n"


# -- measurements (run in a child process with --isolate) --------------------------------------------------------
def make_config(spec: dict) -> TrainConfig:
    model = zoo.get_model(spec["model"])
    train = {key: value for key, value in spec.get("train", {}).items() if key in TRAIN_FIELDS}
    return TrainConfig(model=model, tokens=int(spec.get("tokens") or 10**12), **train)


def _memory_stats(device: Any) -> dict:
    try:
        return device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - CPU devices report no memory
        return {}


def _compiled_bytes(analysis: Any) -> int:
    return int(
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        - analysis.alias_size_in_bytes
        + analysis.temp_size_in_bytes
    )


def _random_batches(config: TrainConfig, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, config.model.vocab_size, (*shape, config.model.seq_len + 1), dtype=np.int32)


def measure_step(spec: dict) -> dict:
    """Compile and time ``spec``'s train step; its MFU, measured peak memory and the planner's estimate."""
    config = make_config(spec)
    trainer = Trainer(config)
    device = trainer.mesh.devices.flat[0]
    row: dict[str, Any] = {
        "attention": trainer.attention_impl,
        "attention_reason": trainer.attention_reason,
        "compute_dtype": str(trainer.compute_dtype),
        "micro_steps": config.batch_size // trainer.micro_batch_size,
    }
    start = time.perf_counter()
    compiled = trainer.compiled_step()
    row["compile_s"] = round(time.perf_counter() - start, 3)
    row["xla_compiled_bytes"] = _compiled_bytes(compiled.memory_analysis())
    k = config.steps_per_dispatch
    batches = _random_batches(config, (k, trainer.local_batch_size))
    state = trainer.init_state()
    start = time.perf_counter()
    state, out = trainer.train(state, batches)  # warm-up
    first = np.asarray(jax.device_get(out["loss"]))
    warm_up = time.perf_counter() - start
    # timed dispatches: as given, else enough for ~target_s (at least 1, at most 10; the warm-up overestimates)
    dispatches = spec.get("dispatches") or max(1, min(10, math.ceil(spec.get("target_s", 2.0) / max(warm_up, 1e-3))))
    row.update(warm_up_s=warm_up, timed_dispatches=dispatches)
    start = time.perf_counter()
    for _ in range(dispatches):
        state, out = trainer.train(state, batches)
    losses = np.asarray(jax.device_get(out["loss"]))
    step_time = (time.perf_counter() - start) / (dispatches * k)
    stats = _memory_stats(device)
    peak, source = metrics.peak_flops(compute_dtype=trainer.compute_dtype)
    flops = trainer.flops_per_step()
    row.update(
        step_time_s=step_time,
        tokens_per_s=config.tokens_per_step / step_time,
        model_flops_per_step=flops,
        model_flops_per_s=flops / step_time,
        mfu=metrics.mfu(flops, step_time, peak),
        peak_flops=peak,
        peak_source=source,
        first_loss=float(first[0]),
        last_loss=float(losses[-1]),
        finite=bool(np.all(np.isfinite(first)) and np.all(np.isfinite(losses))),
        peak_bytes_in_use=stats.get("peak_bytes_in_use"),
        bytes_limit=stats.get("bytes_limit"),
    )
    return row


def _as_bytes(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    for key in ("bytes_per_device", "peak_bytes", "bytes"):
        if isinstance(value, dict) and key in value:
            return float(value[key])
        if hasattr(value, key):
            return float(getattr(value, key))
    raise TypeError(f"cannot read a byte count from {type(value).__name__}")


def _call_planner(function: Callable, config: TrainConfig, offered: dict) -> Any:
    """``function(config)`` if its first parameter is a config, else ``function(**kwargs)`` with the ``offered``
    values its signature names; TypeError naming what it needs that is not offered."""
    parameters = inspect.signature(function).parameters
    names = list(parameters)
    if names and names[0] in ("config", "train_config", "run_config"):
        return function(config)
    kwargs = {key: value for key, value in offered.items() if key in parameters}
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in kwargs
    ]
    if missing:
        raise TypeError(f"needs {missing}, which this check does not know how to give")
    try:
        return function(**kwargs)
    except (TypeError, AttributeError):
        if "model" not in kwargs:
            raise
        return function(**{**kwargs, "model": config.model.name})  # a planner that takes the model by name


def planner_estimate(item: dict) -> dict:
    """The planner's bytes per device for one measured step (``item``: model, setting, the attention that ran, the
    target platform, the chip's bytes): the first of ``PLANNER_FUNCTIONS`` that ``chinchilla.memory`` has and that
    answers, as ``chinchilla memory`` would compute it (run this on the CPU backend), or None with the errors."""
    config = make_config({"model": item["model"], "train": item["setting"]})
    micro = config.micro_batch_size or config.batch_size
    attention = item.get("attention") or config.attention_impl
    offered = {
        "model": config.model,
        "batch_size": config.batch_size,
        "micro_batch_size": micro,
        "remat": config.remat,
        "seq_len": config.model.seq_len,
        "attention": attention,
        "attention_impl": attention,
        "compiled_attention": "xla" if attention == "xla" else "blocked",
        "compute_dtype": item.get("compute_dtype") or config.compute_dtype,
        "scan_layers": config.scan_layers,
        "chip_bytes": item.get("chip_bytes") or 80 * 10**9,
        "platform": item["platform"],
        "steps_per_dispatch": config.steps_per_dispatch,
        "devices": item.get("devices", 1),
    }
    errors = []
    try:
        from chinchilla import memory
    except Exception as error:  # noqa: BLE001
        memory, errors = None, [f"import chinchilla.memory: {type(error).__name__}: {error}"]
    for name in PLANNER_FUNCTIONS if memory is not None else ():
        function = getattr(memory, name, None)
        if not callable(function):
            continue
        start = time.perf_counter()
        try:
            estimate = _as_bytes(_call_planner(function, config, offered))
        except Exception as error:  # noqa: BLE001 - try the next one, then XLA
            errors.append(f"{name}: {type(error).__name__}: {error}"[:300])
            continue
        return {
            "estimate_bytes": estimate,
            "estimate_source": f"chinchilla.memory.{name}",
            "estimate_s": round(time.perf_counter() - start, 2),
            "estimate_errors": errors,
        }
    return {"estimate_bytes": None, "estimate_source": None, "estimate_errors": errors}


def measure_agreement(spec: dict) -> dict:
    """Loss and gradients of one batch from the reference's parameters, reference vs candidate settings."""
    base = make_config(spec)
    reference = Trainer(base)
    candidate = Trainer(dataclasses.replace(base, **spec["candidate"]))
    params = reference.init_state()["params"]
    batch = reference.put_batches(_random_batches(base, (1, reference.local_batch_size), seed=1))[0]
    row: dict[str, Any] = {}
    results = []
    for trainer in (reference, candidate):
        value_and_grad = jax.jit(jax.value_and_grad(trainer._loss))
        loss, grads = value_and_grad(params, batch)
        results.append((float(loss), jax.tree.map(lambda g: np.asarray(g, np.float32), jax.device_get(grads))))
    (loss_ref, grads_ref), (loss_cand, grads_cand) = results
    diffs = [float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(grads_ref), jax.tree.leaves(grads_cand))]
    scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(grads_ref))
    row.update(
        reference_ran_as=f"{reference.attention_impl}, {reference.compute_dtype}",
        candidate_ran_as=f"{candidate.attention_impl}, {candidate.compute_dtype}",
        loss_reference=loss_ref,
        loss_candidate=loss_cand,
        loss_abs_diff=abs(loss_ref - loss_cand),
        grad_max_abs_diff=max(diffs),
        grad_max_abs=scale,
        grad_rel_diff=max(diffs) / scale,
        finite=bool(
            math.isfinite(loss_ref)
            and math.isfinite(loss_cand)
            and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads_cand))
        ),
    )
    wanted = spec["candidate"].get("attention_impl")
    if wanted and candidate.attention_impl != wanted:
        row["note"] = f"{wanted} fell back: {candidate.attention_reason}"
    return row


def measure_checkpoint(spec: dict) -> dict:
    """Save (until on disk) and restore time of ``spec``'s train state through ``Checkpointer``."""
    from chinchilla.checkpoint import Checkpointer

    config = make_config(spec)
    trainer = Trainer(config)
    state = jax.block_until_ready(trainer.init_state())
    nbytes = sum(int(leaf.nbytes) for leaf in jax.tree.leaves(state))
    directory = Path(tempfile.mkdtemp(prefix="accelerator_check_ckpt_"))
    try:
        checkpointer = Checkpointer(directory / "checkpoints", keep=1)
        start = time.perf_counter()
        checkpointer.save(1, state, {"accelerator_check": True})
        save_call = time.perf_counter() - start
        checkpointer.wait()
        save = time.perf_counter() - start
        start = time.perf_counter()
        restored, meta = checkpointer.restore(1, trainer.abstract_state)
        restored = jax.block_until_ready(restored)
        restore = time.perf_counter() - start
        equal = all(
            bool(np.array_equal(np.asarray(a), np.asarray(b)))
            for a, b in zip(jax.tree.leaves(jax.device_get(state)), jax.tree.leaves(jax.device_get(restored)))
        )
        checkpointer.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "state_gib": nbytes / GiB,
        "save_call_s": save_call,
        "save_s": save,
        "restore_s": restore,
        "save_gib_per_s": nbytes / GiB / save,
        "restore_gib_per_s": nbytes / GiB / restore,
        "restored_equal": equal and meta == {"accelerator_check": True},
    }


MEASUREMENTS = {"step": measure_step, "agreement": measure_agreement, "checkpoint": measure_checkpoint}


def run_measurement(spec: dict, report: Report, isolate: bool) -> dict:
    """``spec``'s measurement, in this process or in a child process (on the accelerator: ``CHILD_ENV``) killed
    when the budget is spent. Never raises: a failure is the returned row's ``error`` (status "error")."""
    left = report.left()
    if left <= 1:
        return {"status": "skipped", "reason": "time budget spent"}
    start = time.perf_counter()
    if not isolate:
        try:
            row = MEASUREMENTS[spec["kind"]](spec)
            row["status"] = "ok"
        except Exception as error:  # noqa: BLE001
            row = {
                "status": "error",
                "error": f"{type(error).__name__}: {error}"[:1500],
                "traceback": traceback.format_exc()[-3000:],
            }
        row["wall_s"] = round(time.perf_counter() - start, 2)
        return row
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=left, cwd=str(ROOT), env=CHILD_ENV)
    except subprocess.TimeoutExpired as expired:
        tail = (expired.stderr or b"")[-1500:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        return {
            "status": "error",
            "error": f"killed at the time budget after {left:.0f} s; stderr: {tail}",
            "wall_s": round(time.perf_counter() - start, 2),
        }
    rows = [line[len(RESULT_PREFIX) :] for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if rows:
        row = json.loads(rows[-1])
    else:  # died without a result: a crash, an out-of-memory kill
        row = {
            "status": "error",
            "error": f"child exited {done.returncode} without a result; stderr: {done.stderr[-1500:]}",
        }
    row["wall_s"] = round(time.perf_counter() - start, 2)
    return row


def worker(spec_json: str) -> None:
    from chinchilla.jax_cache import enable_compilation_cache

    enable_compilation_cache()
    spec = json.loads(spec_json)
    try:
        row = MEASUREMENTS[spec["kind"]](spec)
        row["status"] = "ok"
    except Exception as error:  # noqa: BLE001 - reported to the parent as the row's error
        row = {
            "status": "error",
            "error": f"{type(error).__name__}: {error}"[:1500],
            "traceback": traceback.format_exc()[-3000:],
        }
    print(RESULT_PREFIX + json.dumps(row, default=float), flush=True)


class Estimates:
    """The planner's estimates for the steps the check will measure, computed on this process's CPU backend: in a
    background thread while the children measure (isolated runs: this process is idle and on CPU), else when asked
    for. ``results`` fills item by item, so a budget that runs out keeps the ones done."""

    def __init__(self, items: list[dict], background: bool):
        self.items, self.results = items, []
        self.thread = None
        if background and items:
            self.thread = threading.Thread(target=self._run, daemon=True, name="planner-estimates")
            self.thread.start()

    def _run(self) -> None:
        for item in self.items:
            try:
                self.results.append(planner_estimate(item))
            except Exception as error:  # noqa: BLE001
                self.results.append({"estimate_bytes": None, "estimate_errors": [f"{type(error).__name__}: {error}"]})

    def get(self, timeout: float) -> list[dict]:
        if self.thread is None:
            self._run()
        else:
            self.thread.join(max(0.0, timeout))
        return list(self.results)


# -- what to measure ---------------------------------------------------------------------------------------------
def measure_environment(spec: dict) -> dict:
    device = jax.devices()[0]
    entry: dict[str, Any] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            entry[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    entry.update(
        backend=jax.default_backend(),
        devices=jax.device_count(),
        device_kind=device.device_kind,
        compute_capability=getattr(device, "compute_capability", None),
        memory_limit_bytes=_memory_stats(device).get("bytes_limit"),
    )
    dtype, reason = choose_compute_dtype("auto", device)
    entry.update(auto_compute_dtype=str(dtype), auto_compute_dtype_reason=reason)
    entry["peak_flops_bf16_per_device"] = metrics.peak_flops([device], compute_dtype="bfloat16")[0]
    return entry


MEASUREMENTS["environment"] = measure_environment


def environment(entry: dict, args: argparse.Namespace, report: Report) -> None:
    row = run_measurement({"kind": "environment"}, report, args.isolate)
    if row.get("status") != "ok":
        raise RuntimeError(row.get("error") or row.get("reason"))
    entry.update({key: value for key, value in row.items() if key != "status"})
    args.platform = {"cuda": "gpu", "rocm": "gpu"}.get(row["backend"], row["backend"])
    args.env = row


def _params(model: Any) -> int:
    from chinchilla.flops import param_count

    return param_count(model).total


def preset_runs(name: str) -> list[Any]:
    """The preset's planned runs, one per model (its costliest run of that model: the largest batch a batch rule in
    the budget gives it), smallest model first."""
    from chinchilla.preset import load_preset

    by_model: dict[str, Any] = {}
    for run in sorted(load_preset(name).plan().runs, key=lambda run: run.flops):
        by_model[run.model.name] = run
    return sorted(by_model.values(), key=lambda run: _params(run.model))


def real_setting(run: Any) -> dict:
    """The execution setting a preset gives ``run`` (its hparams, as the sweep would train it)."""
    train = dict(run.train)
    return {key: train[key] for key in SETTING if key in train} | {"batch_size": int(train.get("batch_size", 8))}


def dry_setting(setting: dict, platform_name: str) -> tuple[dict, list[str]]:
    """A preset's setting scaled to a CPU stand-in: batch DRY_BATCH with the preset's accumulation factor (capped to
    a divisor of it), remat/attention/dtype kept where the CPU runs them."""
    notes = []
    batch = setting["batch_size"]
    micro = setting.get("micro_batch_size") or batch
    accumulation = max(1, batch // micro)
    while DRY_BATCH % accumulation:
        accumulation -= 1
    scaled = {**setting, "batch_size": DRY_BATCH, "micro_batch_size": DRY_BATCH // accumulation}
    if setting.get("remat") == "offload" and platform_name == "cpu":
        scaled["remat"] = "dots"
        notes.append("offload -> dots (no pinned host memory on CPU)")
    if setting.get("attention_impl") == "splash":
        scaled["attention_impl"] = "xla"
        notes.append("splash -> xla (interpret mode is for the agreement stage)")
    return scaled, notes


def mid_model(args: argparse.Namespace) -> tuple[str, Any]:
    """The mid-size model of the first preset's plan (nearest the geometric middle of its sizes), and its run."""
    runs = preset_runs(args.presets[0])
    middle = math.sqrt(_params(runs[0].model) * _params(runs[-1].model))
    run = min(runs, key=lambda r: abs(math.log(_params(r.model) / middle)))
    return (DRY_MID if args.dry else run.model.name), run


def planned_steps(args: argparse.Namespace) -> dict[str, list[dict]]:
    """The rows of the step-measuring stages, each with the ``spec`` its child runs: every preset's smallest and
    largest planned model at the preset's setting (``preset_mfu``), and the mid-size model per remat policy."""

    def spec(model: str, run: Any, setting: dict) -> dict:
        return {
            "kind": "step",
            "model": model,
            "tokens": run.tokens,
            "dispatches": args.dispatches,
            "train": {**setting, "steps_per_dispatch": args.steps_per_dispatch},
        }

    mfu = []
    for name in args.presets:
        runs = preset_runs(name)
        for label, run in (("smallest", runs[0]), ("largest", runs[-1])):
            setting = real_setting(run)
            row: dict[str, Any] = {
                "label": f"{name} {label}",
                "preset_model": run.model.name,
                "preset_setting": setting,
                "model": run.model.name,
                "setting": setting,
            }
            if args.dry:
                row["model"] = DRY_STAND_INS[0 if label == "smallest" else 1]
                row["setting"], notes = dry_setting(setting, args.platform)
                row["note"] = "; ".join([f"stand-in for {run.model.name}"] + notes)
            row["spec"] = spec(row["model"], run, row["setting"])
            mfu.append(row)
    model, run = mid_model(args)
    setting = dict(real_setting(run))
    if args.dry:
        setting, _ = dry_setting(setting, args.platform)
        setting["micro_batch_size"] = DRY_BATCH // 2
    else:
        micro = min(setting.get("micro_batch_size") or setting["batch_size"], args.remat_micro)
        while setting["batch_size"] % micro:
            micro -= 1
        setting["micro_batch_size"] = micro
    remats = []
    for policy in ("none", "dots", "full", "offload"):
        row = {
            "label": f"remat {policy}",
            "model": model,
            "preset_model": run.model.name,
            "setting": {**setting, "remat": policy},
        }
        if policy == "offload" and args.platform not in ("gpu", "tpu"):
            row.update(
                status="skipped", reason=f"offload needs pinned host memory (GPU/TPU); backend is {args.platform}"
            )
        else:
            row["spec"] = spec(model, run, row["setting"])
        remats.append(row)
    return {"preset_mfu": mfu, "remat": remats}


def estimate_items(args: argparse.Namespace, rows: list[dict]) -> list[dict]:
    """What the planner is asked for each measured row: the setting, and the attention and dtype the step will run
    with on this backend (as ``Trainer`` resolves them)."""
    from chinchilla.attention import resolve_impl

    items = []
    for row in rows:
        setting = row["spec"]["train"]
        dtype = setting.get("compute_dtype", "auto")
        if dtype == "auto":
            dtype = args.env.get("auto_compute_dtype", "float32")
        attention, _ = resolve_impl(setting.get("attention_impl", "auto"), platform=args.platform, compute_dtype=dtype)
        items.append(
            {
                "model": row["model"],
                "setting": setting,
                "attention": attention,
                "compute_dtype": dtype,
                "platform": args.platform,
                "chip_bytes": args.env.get("memory_limit_bytes"),
                "devices": args.env.get("devices", 1),
            }
        )
    return items


def measure_rows(entry: dict, rows: list[dict], args: argparse.Namespace, report: Report, end: float) -> None:
    entry["runs"] = rows
    for row in rows:
        if "spec" not in row:
            continue
        if report.elapsed() > end * report.budget_s:
            row.update(status="skipped", reason="time budget")
            continue
        row.update(run_measurement(row["spec"], report, args.isolate))
        report.flush()


def memory_summary(entry: dict, rows: list[dict], estimates: Estimates, report: Report) -> None:
    """Measured peak beside the planner's estimate for every step measured by the stages before."""
    results = estimates.get(timeout=report.left() - 2)
    entry["rows"] = []
    entry["estimated_on"] = "cpu" if estimates.thread is not None else jax.default_backend()
    for row, estimate in zip(rows, results + [{}] * (len(rows) - len(results))):
        if row.get("status") != "ok":
            continue
        out = {
            key: row.get(key)
            for key in (
                "label",
                "model",
                "setting",
                "attention",
                "compute_dtype",
                "peak_bytes_in_use",
                "xla_compiled_bytes",
                "bytes_limit",
            )
        }
        out.update(estimate)
        if out.get("estimate_bytes") is None:  # no planner answered (or not in time): XLA's analysis of the step
            out.update(
                estimate_bytes=row.get("xla_compiled_bytes"),
                estimate_source="XLA memory_analysis of the measured step (no planner estimate)",
            )
        measured = out.get("peak_bytes_in_use")
        out["estimate_over_measured"] = out["estimate_bytes"] / measured if measured and out["estimate_bytes"] else None
        entry["rows"].append(out)
    if len(results) < len(rows):
        entry["note"] = f"the planner answered {len(results)} of {len(rows)} steps within the budget"
    if not any(row["peak_bytes_in_use"] for row in entry["rows"]):
        entry["note"] = (entry.get("note", "") + "; " if entry.get("note") else "") + (
            "this backend reports no memory_stats(): measured peaks are missing"
        )


def agreement(entry: dict, args: argparse.Namespace, report: Report, end: float) -> None:
    is_gpu, is_tpu = args.platform == "gpu", args.platform == "tpu"
    half = "bfloat16"
    comparisons = [
        (
            "cudnn vs xla",
            {"attention_impl": "xla", "compute_dtype": half},
            {"attention_impl": "cudnn"},
            None if is_gpu else "cuDNN attention needs a CUDA GPU",
        ),
        (
            "splash vs xla",
            {"attention_impl": "xla", "compute_dtype": half if is_tpu else "float32"},
            {"attention_impl": "splash"},
            None if is_tpu or args.dry else "splash needs a TPU (off TPU it is Pallas interpret mode: the CPU suite)",
        ),
        ("bf16 vs float32", {"attention_impl": "xla", "compute_dtype": "float32"}, {"compute_dtype": half}, None),
    ]
    entry["comparisons"] = []
    for label, reference, candidate, skip in comparisons:
        row: dict[str, Any] = {"label": label, "model": args.agreement_model, "batch_size": args.agreement_batch}
        entry["comparisons"].append(row)
        if skip:
            row.update(status="skipped", reason=skip)
            continue
        if report.elapsed() > end * report.budget_s:
            row.update(status="skipped", reason="time budget")
            continue
        spec = {
            "kind": "agreement",
            "model": args.agreement_model,
            "candidate": candidate,
            "train": {**reference, "batch_size": args.agreement_batch},
        }
        row.update(run_measurement(spec, report, args.isolate))
        report.flush()


def checkpoint(entry: dict, args: argparse.Namespace, report: Report) -> None:
    model, _ = mid_model(args)
    entry["model"] = model
    row = run_measurement({"kind": "checkpoint", "model": model, "train": {"batch_size": 8}}, report, args.isolate)
    if row.get("status") != "ok":
        raise RuntimeError(row.get("error") or row.get("reason"))
    entry.update({key: value for key, value in row.items() if key != "status"})


# -- command line ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="accelerator_check", help="report directory")
    parser.add_argument("--dry", action="store_true", help="tiny stand-ins on CPU (the suite runs this)")
    parser.add_argument("--budget-s", type=float, default=290.0, help="time budget of the whole run, seconds")
    parser.add_argument(
        "--presets",
        nargs="+",
        help="presets whose setting to measure (default: those that "
        "target this backend: gpu on GPU, colab_tpu on TPU; both "
        "with --dry)",
    )
    parser.add_argument(
        "--isolate",
        choices=("auto", "always", "never"),
        default="auto",
        help="each measurement in its own process (auto: yes, except with --dry)",
    )
    parser.add_argument("--steps-per-dispatch", type=int, default=2, help="optimizer steps per dispatch")
    parser.add_argument(
        "--dispatches",
        type=int,
        help="timed dispatches after the warm-up one (default: enough for ~2 s, 1 to 10; 1 with --dry)",
    )
    parser.add_argument(
        "--remat-micro",
        type=int,
        default=16,
        help="largest micro-batch of the remat stage (so that remat none fits too)",
    )
    parser.add_argument(
        "--agreement-model", help="model of the agreement stage (default gpu-0014M; tiny-00025k with --dry)"
    )
    parser.add_argument("--agreement-batch", type=int, help="sequences of the agreement batch (default 4)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.isolate = {"always": True, "never": False, "auto": not args.dry}[args.isolate]
    args.dispatches = args.dispatches or (1 if args.dry else None)
    args.agreement_model = args.agreement_model or ("tiny-00025k" if args.dry else "gpu-0014M")
    args.agreement_batch = args.agreement_batch or 4
    args.platform, args.env = "unknown", {}
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker is not None:
        worker(args.worker)
        return {}
    from chinchilla.jax_cache import enable_compilation_cache

    enable_compilation_cache()  # a rerun (or the suite's next dry run) skips the compiles already done
    report = Report(Path(args.out), args.dry, args.budget_s)
    report.data["command"] = " ".join(["benchmarks/accelerator_check.py", *(sys.argv[1:] if argv is None else argv)])
    report.data["isolated"] = args.isolate
    report.stage("environment", lambda entry: environment(entry, args, report), start_by=1.0)
    if args.presets is None:
        args.presets = (
            PRESETS_FOR_PLATFORM["cpu" if args.dry else args.platform]
            if args.dry or args.platform in PRESETS_FOR_PLATFORM
            else ("gpu",)
        )
    try:
        planned = planned_steps(args)
        measured = [row for rows in planned.values() for row in rows if "spec" in row]
        estimates = Estimates(estimate_items(args, measured), background=args.isolate)
    except Exception as error:  # noqa: BLE001 - the stages below then record this error
        planned, measured, estimates = None, [], None
        report.data["planning_error"] = f"{type(error).__name__}: {error}"
        report.data["planning_traceback"] = traceback.format_exc()[-3000:]

    def stage_rows(name: str, end: float) -> Callable[[dict], None]:
        def run(entry: dict) -> None:
            if planned is None:
                raise RuntimeError(f"planning the steps failed: {report.data['planning_error']}")
            if name == "remat":
                entry.update(model=planned["remat"][0]["model"], preset_model=planned["remat"][0]["preset_model"])
            measure_rows(entry, planned[name], args, report, end)

        return run

    def memory(entry: dict) -> None:
        if estimates is None:
            raise RuntimeError(f"planning the steps failed: {report.data['planning_error']}")
        memory_summary(entry, measured, estimates, report)

    report.stage("preset_mfu", stage_rows("preset_mfu", end=0.35), start_by=0.2)
    report.stage("remat", stage_rows("remat", end=0.62), start_by=0.55)
    report.stage("agreement", lambda entry: agreement(entry, args, report, end=0.85), start_by=0.8)
    report.stage("checkpoint", lambda entry: checkpoint(entry, args, report), start_by=0.9)
    report.stage("memory", memory, start_by=1.0)
    print(markdown(report.data))
    return report.data


if __name__ == "__main__":
    main()
