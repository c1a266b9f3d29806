"""The results of a sweep, read back from its run directories: a table with one row per run, and the training curves.

The table is always rebuilt from the run directories (each run's ``run.json``, ``summary.json``, ``metrics.jsonl``,
``failure.json``), never appended to, so it can hold neither a duplicate nor a torn row, whatever was killed when and
however many workers share the directory.

Loss columns: ``final_train_loss`` is the last value of the Gaussian-smoothed training curve (the paper's choice for
Approaches 1 and 2: single-epoch training loss estimates the test loss); ``eval_loss`` the trainer's held-out loss.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from chinchilla import flops as flops_lib
from chinchilla.fit.envelope import PAPER_SMOOTHING_WINDOW, Curve, smooth_curve
from chinchilla.sweep import store
from chinchilla.sweep.plan import PlannedRun

RESULT_COLUMNS: tuple[str, ...] = (
    "run_id", "group", "status", "budget", "model", "n_layers", "d_model", "ffw_size", "n_heads", "kv_size",
    "vocab_size", "seq_len", "n_params", "non_embedding_params", "tokens", "flops", "final_train_loss",
    "eval_loss", "seed", "lr", "batch_size", "flags", "epochs", "wall_time_s", "error",
)
LOSS_COLUMNS: tuple[str, ...] = ("final_train_loss", "eval_loss")
FLOAT_COLUMNS = frozenset({"budget", "flops", "final_train_loss", "eval_loss", "lr", "epochs", "wall_time_s"})
INT_COLUMNS = frozenset({"n_layers", "d_model", "ffw_size", "n_heads", "kv_size", "vocab_size", "seq_len",
                         "n_params", "non_embedding_params", "tokens", "seed", "batch_size"})


def run_status(run_dir) -> str:
    """``finished``, ``failed`` or ``pending`` (never started, or started and not finished: resumable)."""
    run_dir = store.as_path(run_dir)
    summary = store.read_json(run_dir / store.SUMMARY_FILE)
    if summary is not None and summary.get("status") == "finished":
        return "finished"
    if (summary is not None and summary.get("status") == "failed") or (run_dir / store.FAILURE_FILE).exists():
        return "failed"
    return "pending"


def load_metrics(run_dir) -> list[dict[str, Any]]:
    """The training-loss records of ``metrics.jsonl`` in step order, one per step: a run resumed from a checkpoint
    re-logs the steps after it, and the last record of a step wins."""
    by_step: dict[int, dict[str, Any]] = {}
    for record in store.read_jsonl(store.as_path(run_dir) / store.METRICS_FILE):
        if "step" in record and _finite(record.get("loss")):
            by_step[int(record["step"])] = record
    return [by_step[s] for s in sorted(by_step)]


def load_curve(run_dir, convention: str = "total") -> Curve | None:
    """A run's raw training curve for Approach 1, N under ``convention`` (None with fewer than 2 logged points;
    the fit smooths it)."""
    run_dir = store.as_path(run_dir)
    planned = store.read_json(run_dir / store.RUN_FILE)
    metrics = load_metrics(run_dir)
    if planned is None or len(metrics) < 2:
        return None
    run = PlannedRun.from_dict(planned)
    tokens = np.array([float(m["tokens"]) for m in metrics])
    flops = np.array([float(m["flops"]) for m in metrics])
    keep = np.concatenate([[True], np.diff(flops) > 0])
    return Curve(run=run.run_id, n_params=float(run.n_params(convention)), tokens=tokens[keep], flops=flops[keep],
                 loss=np.array([float(m["loss"]) for m in metrics])[keep])


def load_curves(sweep_dir, *, convention: str = "total", groups: Sequence[str] | None = None,
                finished_only: bool = True) -> list[Curve]:
    """Training curves of the sweep's runs (finished ones by default; of ``groups`` if given)."""
    curves = []
    for run_dir in store.run_dirs(sweep_dir):
        if finished_only and run_status(run_dir) != "finished":
            continue
        planned = store.read_json(run_dir / store.RUN_FILE)
        if planned is None or (groups is not None and planned["group"] not in groups):
            continue
        curve = load_curve(run_dir, convention)
        if curve is not None:
            curves.append(curve)
    return curves


def result_row(run_dir, window: int = PAPER_SMOOTHING_WINDOW) -> dict[str, Any] | None:
    """The results-table row of one run directory (None if it holds no ``run.json``)."""
    run_dir = store.as_path(run_dir)
    planned = store.read_json(run_dir / store.RUN_FILE)
    if planned is None:
        return None
    run = PlannedRun.from_dict(planned)
    summary = store.read_json(run_dir / store.SUMMARY_FILE) or {}
    failure = store.read_json(run_dir / store.FAILURE_FILE) or {}
    metrics = load_metrics(run_dir)
    status = run_status(run_dir)
    counts = flops_lib.param_count(run.model)
    smoothed = smooth_curve([m["loss"] for m in metrics], window)[-1] if metrics else math.nan
    finished = status == "finished"
    return {
        "run_id": run.run_id, "group": run.group, "status": status, "budget": run.budget,
        "model": run.model.name, "n_layers": run.model.n_layers, "d_model": run.model.d_model,
        "ffw_size": run.model.ffw_size, "n_heads": run.model.n_heads, "kv_size": run.model.kv_size,
        "vocab_size": run.model.vocab_size, "seq_len": run.model.seq_len,
        "n_params": counts.total, "non_embedding_params": counts.non_embedding,
        "tokens": int(summary.get("tokens", run.tokens)) if finished else run.tokens,
        "flops": float(summary.get("flops", run.flops)) if finished else run.flops,
        "final_train_loss": float(smoothed) if finished else None,
        "eval_loss": _float_or_none(summary.get("eval_loss")) if finished else None,
        "seed": run.train.get("seed", 0), "lr": run.train.get("lr"), "batch_size": run.train.get("batch_size"),
        "flags": list(run.flags), "epochs": _float_or_none(summary.get("epochs")),
        "wall_time_s": _float_or_none(summary.get("wall_time_s")),
        "error": failure.get("error") or summary.get("error"),
    }


def collect_results(sweep_dir) -> list[dict[str, Any]]:
    """One row per run directory, sorted by run id."""
    return [row for row in (result_row(d) for d in store.run_dirs(sweep_dir)) if row is not None]


def write_results_table(sweep_dir) -> list[dict[str, Any]]:
    """Rebuild ``results.csv`` from the run directories (atomically) and return its rows."""
    rows = collect_results(sweep_dir)
    store.write_csv_atomic(store.as_path(sweep_dir) / store.RESULTS_FILE, rows, RESULT_COLUMNS)
    return rows


def read_results_table(path) -> list[dict[str, Any]]:
    """A results CSV (ours, or any with at least n_params, tokens, flops and a loss column) with typed values."""
    rows = []
    for raw in store.read_csv(path):
        row: dict[str, Any] = {}
        for key, value in raw.items():
            if value in ("", None):
                row[key] = None
            elif key in INT_COLUMNS:
                row[key] = int(float(value))
            elif key in FLOAT_COLUMNS:
                row[key] = float(value)
            elif key == "flags":
                row[key] = [v for v in value.split(";") if v]
            else:
                row[key] = value
        rows.append(row)
    return rows


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _float_or_none(value: Any) -> float | None:
    return float(value) if _finite(value) else None
