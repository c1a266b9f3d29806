"""One command that measures this project on an accelerator, writing everything as it goes (<= 5 minutes on one GPU).

Stages, each guarded (a failure is recorded with its error and the next stage runs) and each flushed to
``OUT/accelerator_check.json`` and ``OUT/accelerator_check.md`` when it ends, so a run cut off at any point still
reports what it measured:

1. ``environment``: Python and package versions, devices, device kind, compute capability, memory, the compute dtype
   ``compute_dtype="auto"`` picks and why, the data-sheet peak (``chinchilla.accelerators``).
2. ``fit``: the Approach 3 fit (``chinchilla.fit.parametric.fit_parametric``, the paper's 4,500-start grid) on data
   drawn from the paper's own law, timed with ``strategy="vmap"`` and ``"map"`` (``lax.map``): first call (compile
   included) and a second, warm call; the two objectives must agree.
3. ``throughput``: for ``gpu-0436M`` and ``gpu-0134M``, with ``attention_impl`` xla and cudnn, bf16 compute: the batch
   that fills the device (XLA's compiled memory analysis of 1- and 2-layer versions at two batches, extrapolated
   linearly in layers and batch, ``chinchilla.memory``; then the real step compiled at that batch and checked), then
   timed dispatches: step time, tokens/s, MFU against the data-sheet bf16 peak, XLA's own memory figure.
4. ``isoflop_sweep``: a short real IsoFLOP sweep (two budgets x the three smallest ``gpu`` ladder sizes, embedded
   corpus, byte tokenizer) through ``chinchilla.sweep.runner.run_sweep``, ending in ``chinchilla.reproduce.report``
   (the report's table is copied into the markdown).

Usage (from the repository root; no network, no install needed: the script puts the repository on ``sys.path``)::

    python benchmarks/accelerator_check.py --out results/accel                 # on the GPU, <= ~5 minutes
    JAX_PLATFORMS=cpu python benchmarks/accelerator_check.py --dry --out /tmp/accel   # CPU, tiny sizes, seconds

The GPU machine needs jax (with its CUDA plugin), flax, optax, orbax-checkpoint, etils, numpy and tqdm, and no
TensorFlow Datasets: the embedded corpus is read from prepared token arrays. Prepare them where the project is
installed (``python benchmarks/accelerator_check.py --prepare-data .accel_data``), carry ``.accel_data`` along and
pass ``--data-dir .accel_data``. ``--budget-s`` (default 290) bounds the whole run: stages that would start after
their share of it are recorded as skipped.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# let JAX's GPU allocator take 90% of the card (default 75%) so the batch search can fill it; set before jax loads
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.90")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from chinchilla import memory, metrics, zoo  # noqa: E402
from chinchilla.step import Trainer, choose_compute_dtype  # noqa: E402
from chinchilla.train_config import TrainConfig  # noqa: E402

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "tensorflow-datasets", "grain")
MEMORY_FILL = 0.85  # use at most this fraction of the device's memory limit when choosing a batch


class Report:
    """The JSON + markdown report, rewritten (atomically) after every recorded item."""

    def __init__(self, out: Path, dry: bool):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "dry": dry, "stages": {}}
        self.start = time.perf_counter()
        self.flush()

    def stage(self, name: str, fn: Callable[[dict], Any], deadline: float) -> None:
        entry: dict[str, Any] = {"status": "running"}
        self.data["stages"][name] = entry
        if time.perf_counter() - self.start > deadline:
            entry.update(status="skipped", reason=f"time budget: started after {deadline:.0f} s")
            self.flush()
            return
        began = time.perf_counter()
        try:
            fn(entry)
            entry["status"] = "ok" if entry.get("status") == "running" else entry["status"]
        except Exception as error:  # noqa: BLE001 - every stage's failure is recorded, the next stage runs
            entry.update(status="error", error=f"{type(error).__name__}: {error}"[:2000],
                         traceback=traceback.format_exc()[-4000:])
        entry["seconds"] = round(time.perf_counter() - began, 2)
        self.flush()

    def flush(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.start, 2)
        metrics.write_json_atomic(self.out / "accelerator_check.json", self.data)
        temporary = self.out / ".accelerator_check.md.tmp"
        temporary.write_text(markdown(self.data))
        temporary.replace(self.out / "accelerator_check.md")


def markdown(data: dict) -> str:
    """The report as markdown: one section per stage, tables for throughput and fit timings."""
    lines = [f"# accelerator_check ({'dry, CPU' if data['dry'] else 'accelerator'}), started {data['started']}", "",
             f"elapsed: {data.get('elapsed_s')} s", ""]
    for name, entry in data["stages"].items():
        lines += [f"## {name}: {entry.get('status')} ({entry.get('seconds', '?')} s)", ""]
        if entry.get("error"):
            lines += ["```", entry["error"], "```", ""]
        if entry.get("reason"):
            lines += [entry["reason"], ""]
        if name == "environment":
            lines += [f"- {key}: {value}" for key, value in entry.items()
                      if key not in ("status", "seconds", "error", "traceback")] + [""]
        elif name == "fit":
            lines += ["| strategy | first call s | warm call s | objective |", "| --- | --- | --- | --- |"]
            lines += [f"| {s} | {r.get('first_s')} | {r.get('warm_s')} | {r.get('objective')} |"
                      for s, r in entry.get("strategies", {}).items()] + [""]
        elif name == "throughput":
            lines += ["| model | attention | batch | step s | tokens/s | MFU | XLA peak GiB | note |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- |"]
            for row in entry.get("runs", []):
                mfu = row.get("mfu")
                lines.append(f"| {row.get('model')} | {row.get('attention_impl')} | {row.get('batch_size')} | "
                             f"{_fmt(row.get('step_time_s'))} | {_fmt(row.get('tokens_per_s'))} | "
                             f"{'-' if mfu is None else f'{mfu:.1%}'} | {_fmt(row.get('xla_peak_gib'))} | "
                             f"{row.get('error', '')[:120]} |")
            lines.append("")
        elif name == "isoflop_sweep":
            lines += [f"- {key}: {entry[key]}" for key in ("sweep_dir", "budgets", "models", "trained", "failed")
                      if key in entry]
            if entry.get("report_table"):
                lines += ["", "```", entry["report_table"], "```"]
            lines.append("")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


# -- stages ------------------------------------------------------------------------------------------------------
def environment(entry: dict) -> None:
    device = jax.devices()[0]
    entry["python"] = platform.python_version()
    for name in PACKAGES:
        try:
            entry[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            entry[name] = None
    entry.update(backend=jax.default_backend(), devices=jax.device_count(), device_kind=device.device_kind,
                 compute_capability=getattr(device, "compute_capability", None),
                 memory_limit_bytes=_memory_limit(device))
    dtype, reason = choose_compute_dtype("auto", device)
    entry.update(auto_compute_dtype=str(dtype), auto_compute_dtype_reason=reason)
    entry["peak_flops_bf16_per_device"] = metrics.peak_flops([device], compute_dtype="bfloat16")[0]


def _memory_limit(device: Any) -> int | None:
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - CPU devices may not report memory
        stats = {}
    return stats.get("bytes_limit")


def fit_strategies(entry: dict, dry: bool) -> None:
    from chinchilla.fit.allocate import PAPER_FIT
    from chinchilla.fit.parametric import fit_parametric

    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(1e7, 1e10, 8), 5)
    d = n * np.tile(np.geomspace(2, 200, 5), 8)
    loss = (PAPER_FIT.E + PAPER_FIT.A / n**PAPER_FIT.alpha + PAPER_FIT.B / d**PAPER_FIT.beta) \
        * np.exp(rng.normal(0, 0.005, n.size))
    options = {"top_k": 8} if dry else {}
    entry["strategies"] = {}
    for strategy in ("vmap", "map"):
        result: dict[str, Any] = {}
        entry["strategies"][strategy] = result
        for key in ("first_s", "warm_s"):
            start = time.perf_counter()
            fit = fit_parametric(n, d, loss, strategy=strategy, **options)
            result[key] = round(time.perf_counter() - start, 3)
        result["objective"] = float(fit.objective)
        result["alpha"], result["beta"] = float(fit.alpha), float(fit.beta)
    objectives = [r["objective"] for r in entry["strategies"].values()]
    entry["objectives_agree"] = bool(np.isclose(objectives[0], objectives[1], rtol=1e-6))


def _config(model: str, batch: int, impl: str, dtype: str, k: int) -> TrainConfig:
    return TrainConfig(model=zoo.get_model(model), tokens=10**12, batch_size=batch, compute_dtype=dtype,
                       attention_impl=impl, steps_per_dispatch=k)


def choose_batch(model: str, impl: str, dtype: str, k: int, limit: float, probes: tuple[int, int],
                 largest: int) -> tuple[int, dict]:
    """The largest power-of-two batch whose estimated step peak fits ``limit`` bytes (at least 1)."""
    low, high = (memory.estimate_peak_bytes(_config(model, b, impl, dtype, k))["peak_bytes"] for b in probes)
    per_sequence = (high - low) / (probes[1] - probes[0])
    fixed = low - probes[0] * per_sequence
    batch = 1
    while batch * 2 <= largest and fixed + batch * 2 * per_sequence <= limit:
        batch *= 2
    return batch, {"fixed_gib": fixed / memory.GiB, "per_sequence_gib": per_sequence / memory.GiB}


def measure(model: str, impl: str, batch: int, dtype: str, k: int, dispatches: int) -> dict:
    config = _config(model, batch, impl, dtype, k)
    trainer = Trainer(config)
    row: dict[str, Any] = {"model": model, "attention_impl": impl, "batch_size": batch,
                           "compute_dtype": str(trainer.compute_dtype), "steps_per_dispatch": k}
    start = time.perf_counter()
    compiled = trainer.compiled_step()
    row["compile_s"] = round(time.perf_counter() - start, 2)
    analysis = compiled.memory_analysis()
    row["xla_peak_gib"] = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
                           - analysis.alias_size_in_bytes + analysis.temp_size_in_bytes) / memory.GiB
    state = trainer.init_state()
    rng = np.random.default_rng(0)
    batches = rng.integers(0, config.model.vocab_size, (k, trainer.local_batch_size, config.model.seq_len + 1),
                           dtype=np.int32)
    state, out = trainer.train(state, batches)  # warm-up
    jax.block_until_ready(out)
    start = time.perf_counter()
    for _ in range(dispatches):
        state, out = trainer.train(state, batches)
    losses = np.asarray(jax.device_get(out["loss"]))
    step_time = (time.perf_counter() - start) / (dispatches * k)
    peak, source = metrics.peak_flops(compute_dtype=trainer.compute_dtype)
    row.update(step_time_s=step_time, tokens_per_s=config.tokens_per_step / step_time,
               model_flops_per_s=trainer.flops_per_step() / step_time,
               mfu=metrics.mfu(trainer.flops_per_step(), step_time, peak), peak_flops=peak, peak_source=source,
               last_loss=float(losses[-1]), finite=bool(np.all(np.isfinite(losses))))
    return row


def throughput(entry: dict, args: argparse.Namespace, report: Report, deadline: float) -> None:
    device = jax.devices()[0]
    on_gpu = device.platform == "gpu"
    limit = _memory_limit(device) or args.cpu_memory_gib * memory.GiB
    entry["memory_limit_gib"] = limit / memory.GiB
    entry["runs"] = []
    for model in args.models:
        for impl in ("xla", "cudnn"):
            row: dict[str, Any] = {"model": model, "attention_impl": impl}
            entry["runs"].append(row)
            if impl == "cudnn" and not on_gpu:
                row["error"] = "skipped: cuDNN attention needs a CUDA GPU"
                continue
            if time.perf_counter() - report.start > deadline:
                row["error"] = "skipped: time budget"
                continue
            try:
                batch, fit = choose_batch(model, impl, args.dtype, args.steps_per_dispatch, MEMORY_FILL * limit,
                                          args.probe_batches, args.max_batch)
                row["batch_search"] = fit
                for attempt in range(3):  # halve on an out-of-memory error
                    try:
                        row.update(measure(model, impl, batch, args.dtype, args.steps_per_dispatch,
                                           args.dispatches))
                        break
                    except Exception as error:  # noqa: BLE001
                        if "RESOURCE_EXHAUSTED" not in str(error) or batch == 1 or attempt == 2:
                            raise
                        row.setdefault("oom_batches", []).append(batch)
                        batch //= 2
            except Exception as error:  # noqa: BLE001 - recorded; the other models still run
                row["error"] = f"{type(error).__name__}: {error}"[:1000]
            report.flush()


def isoflop_sweep(entry: dict, args: argparse.Namespace) -> None:
    from chinchilla.reproduce import report as write_report
    from chinchilla.report import AnalysisSettings
    from chinchilla.sweep.plan import plan_isoflop
    from chinchilla.sweep.runner import run_sweep

    models = [zoo.get_model(name) for name in args.sweep_models]
    train = {"batch_size": args.sweep_batch, "lr": 2e-3, "warmup_fraction": 0.05, "dataset": "embedded",
             "tokenizer": "byte", "data_dir": args.data_dir, "log_every": 10, "eval_batches": 2,
             "checkpoint_every": 10**9, "steps_per_dispatch": args.steps_per_dispatch}
    plan = plan_isoflop(args.budgets, models, hparams=lambda model, tokens: dict(train), convention="total",
                        name="accelerator_check")
    sweep_dir = Path(args.out) / "sweep"
    entry.update(sweep_dir=str(sweep_dir), budgets=list(args.budgets), models=list(args.sweep_models),
                 runs=len(plan.runs))
    outcome = run_sweep(plan, sweep_dir, log=None)
    entry.update(trained=len(outcome.trained), failed=len(outcome.failed))
    settings = AnalysisSettings(conventions=("total",), n_resamples=10, approach3_resamples=5)
    from chinchilla.reproduce import format_table

    payload = write_report(sweep_dir, settings, figures=False, log=None)
    entry["report_table"] = format_table(payload)
    entry["report"] = str(sweep_dir / "report.md")


def prepare_data(directory: str) -> None:
    """Build the embedded corpus's byte-token arrays (train, validation) under ``directory``, to carry."""
    from chinchilla.data import get_tokenizer, sources

    for split in ("train", "validation"):
        tokens = sources.token_array("embedded", split, get_tokenizer("byte"), data_dir=directory)
        print(f"{directory}: embedded {split}: {tokens.size:,} byte tokens")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="accelerator_check", help="report directory")
    parser.add_argument("--dry", action="store_true", help="tiny sizes on CPU, in seconds (the suite runs this)")
    parser.add_argument("--budget-s", type=float, default=290.0, help="time budget of the whole run, seconds")
    parser.add_argument("--data-dir", help="cache root holding the embedded corpus's token arrays")
    parser.add_argument("--prepare-data", metavar="DIR", help="only build the token arrays under DIR, then exit")
    args = parser.parse_args(argv)
    dry = args.dry
    args.models = ("tiny-00025k",) if dry else ("gpu-0436M", "gpu-0134M")
    args.dtype = "bfloat16"
    args.steps_per_dispatch = 2 if dry else 8
    args.dispatches = 2 if dry else 3
    args.probe_batches = (2, 4) if dry else (4, 8)
    args.max_batch = 8 if dry else 512
    args.cpu_memory_gib = 2.0  # a CPU device reports no memory limit: size the dry batch search against this
    args.sweep_models = ("tiny-00004k", "tiny-00010k", "tiny-00025k") if dry else ("gpu-0014M", "gpu-0020M",
                                                                                   "gpu-0028M")
    args.budgets = (3e9, 1e10) if dry else (3e14, 1e15)
    args.sweep_batch = 8 if dry else 16
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.prepare_data:
        prepare_data(args.prepare_data)
        return {}
    from chinchilla.jax_cache import enable_compilation_cache

    enable_compilation_cache()  # a rerun (or the suite's next dry run) skips the compiles already done
    report = Report(Path(args.out), args.dry)
    budget = args.budget_s
    report.stage("environment", environment, deadline=budget)
    report.stage("fit", lambda entry: fit_strategies(entry, args.dry), deadline=0.15 * budget)
    report.stage("throughput", lambda entry: throughput(entry, args, report, deadline=0.6 * budget),
                 deadline=0.5 * budget)
    report.stage("isoflop_sweep", lambda entry: isoflop_sweep(entry, args), deadline=0.75 * budget)
    print(markdown(report.data))
    return report.data


if __name__ == "__main__":
    main()
