"""The results of a sweep, read back from its run directories: a table with one row per run, and the training curves.

The table is always rebuilt from the run directories (each run's ``run.json``, ``summary.json``, ``metrics.jsonl``,
``failure.json``), never appended to, so it can hold neither a duplicate nor a torn row, whatever was killed when and
however many workers share the directory.

Loss columns: ``final_train_loss`` is the last value of the Gaussian-smoothed training curve (the paper's choice for
Approaches 1 and 2: single-epoch training loss estimates the test loss); ``eval_loss`` the trainer's held-out loss.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from chinchilla import flops as flops_lib
from chinchilla import runfiles
from chinchilla.fit.envelope import PAPER_SMOOTHING_WINDOW, Curve, smooth_curve
from chinchilla.sweep.plan import Plan, PlannedRun

RESULT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "group",
    "status",
    "budget",
    "model",
    "n_layers",
    "d_model",
    "ffw_size",
    "n_heads",
    "kv_size",
    "vocab_size",
    "seq_len",
    "n_params",
    "non_embedding_params",
    "tokens",
    "flops",
    "final_train_loss",
    "eval_loss",
    "seed",
    "lr",
    "batch_size",
    "flags",
    "epochs",
    "wall_time_s",
    "error",
)
LOSS_COLUMNS: tuple[str, ...] = ("final_train_loss", "eval_loss")
FLOAT_COLUMNS = frozenset({"budget", "flops", "final_train_loss", "eval_loss", "lr", "epochs", "wall_time_s"})
INT_COLUMNS = frozenset(
    {
        "n_layers",
        "d_model",
        "ffw_size",
        "n_heads",
        "kv_size",
        "vocab_size",
        "seq_len",
        "n_params",
        "non_embedding_params",
        "tokens",
        "seed",
        "batch_size",
    }
)


# The results column holding N in each parameter convention.
N_COLUMNS = {"total": "n_params", "non_embedding": "non_embedding_params"}
MISSING = "missing"
# A row's key (not a results.csv column) saying why a run directory is not one of plan.json's runs (None when it is).
OUTSIDE_PLAN = "outside_plan"
# a planned run without a run directory (not started yet, or deleted)


def run_status(run_dir) -> str:
    """``finished``, ``failed`` or ``pending`` (never started, or started and not finished: resumable)."""
    return run_state(run_dir)[0]


def run_state(run_dir) -> tuple[str, str | None]:
    """A run's status (as ``run_status``) and, unless finished or pending, the reason: the trainer's (a non-finite
    loss), the exception it raised, or what is wrong with a damaged ``summary.json`` (a damaged summary makes the
    run failed: ``retry_failed`` removes it and resumes the run from its last checkpoint)."""
    run_dir = runfiles.as_path(run_dir)
    summary, problem = read_object(run_dir / runfiles.SUMMARY_FILE)
    if problem is None and summary is not None:
        problem = _summary_problem(summary)
    if problem is not None:
        return "failed", problem
    if summary is not None and summary["status"] == "finished":
        return "finished", None
    if summary is not None:  # failed: the trainer's reason (e.g. a non-finite loss at step n)
        return "failed", str(summary.get("reason") or summary.get("error") or "failed (no reason recorded)")
    failure, failure_problem = read_object(run_dir / runfiles.FAILURE_FILE)
    if failure_problem is not None:
        return "failed", failure_problem
    if failure is not None:
        return "failed", str(failure.get("error") or "failed (no reason recorded)")
    return "pending", None


def read_object(path) -> tuple[dict[str, Any] | None, str | None]:
    """A run file that holds a JSON object: (the object, None), (None, None) when the file does not exist, or
    (None, what is wrong with it, naming the file)."""
    path = runfiles.as_path(path)
    if not path.exists():
        return None, None
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        return None, f"{path.name} is damaged ({error})"
    if not isinstance(value, dict):
        return None, f"{path.name} holds a JSON {type(value).__name__}, not an object"
    return value, None


def _summary_problem(summary: dict[str, Any]) -> str | None:
    if summary.get("status") not in ("finished", "failed"):
        return f"{runfiles.SUMMARY_FILE}: status={summary.get('status')!r} is not 'finished' or 'failed'"
    for key in ("tokens", "flops"):
        if key in summary and not _finite(summary[key]):
            return f"{runfiles.SUMMARY_FILE}: {key}={summary[key]!r} is not a finite number"
    return None


def load_metrics(run_dir) -> list[dict[str, Any]]:
    """The training-loss records of ``metrics.jsonl`` in step order, one per step: a run resumed from a checkpoint
    re-logs the steps after it, and the last record of a step wins."""
    by_step: dict[int, dict[str, Any]] = {}
    for record in runfiles.read_jsonl(runfiles.as_path(run_dir) / runfiles.METRICS_FILE):
        if isinstance(record.get("step"), int) and _finite(record.get("loss")):
            by_step[int(record["step"])] = record
    return [by_step[s] for s in sorted(by_step)]


def load_curve(run_dir, convention: str = "total") -> Curve | None:
    """A run's raw training curve for Approach 1, N under ``convention`` (None with fewer than 2 logged points;
    the fit smooths it)."""
    run_dir = runfiles.as_path(run_dir)
    planned = read_object(run_dir / runfiles.RUN_FILE)[0]  # a damaged run.json: no curve (its row says why)
    metrics = load_metrics(run_dir)
    if planned is None or len(metrics) < 2:
        return None
    try:
        run = PlannedRun.from_dict(planned)
    except (KeyError, TypeError, ValueError):
        return None
    tokens = np.array([float(m["tokens"]) for m in metrics])
    flops = np.array([float(m["flops"]) for m in metrics])
    keep = np.concatenate([[True], np.diff(flops) > 0])
    return Curve(
        run=run.run_id,
        n_params=float(run.n_params(convention)),
        tokens=tokens[keep],
        flops=flops[keep],
        loss=np.array([float(m["loss"]) for m in metrics])[keep],
    )


def load_curves(
    sweep_dir, *, convention: str = "total", groups: Sequence[str] | None = None, finished_only: bool = True
) -> list[Curve]:
    """Training curves of the sweep's runs (finished ones by default; of ``groups`` if given)."""
    curves = []
    for run_dir in runfiles.run_dirs(sweep_dir):
        if finished_only and run_status(run_dir) != "finished":
            continue
        planned = read_object(run_dir / runfiles.RUN_FILE)[0]
        if planned is None or (groups is not None and planned.get("group") not in groups):
            continue
        curve = load_curve(run_dir, convention)
        if curve is not None:
            curves.append(curve)
    return curves


def result_row(
    run_dir, window: int = PAPER_SMOOTHING_WINDOW, planned_run: PlannedRun | None = None
) -> dict[str, Any] | None:
    """The results-table row of one run directory (None if it holds no ``run.json`` and ``planned_run`` is not
    given). A damaged run file makes the row's status "failed", with what is wrong in ``error``."""
    run_dir = runfiles.as_path(run_dir)
    planned, problem = read_object(run_dir / runfiles.RUN_FILE)
    run = planned_run
    if planned is not None:
        try:
            run = PlannedRun.from_dict(planned)
        except (KeyError, TypeError, ValueError) as error:
            problem = f"{runfiles.RUN_FILE} is not a planned run ({type(error).__name__}: {error})"
    if run is None:
        if problem is None:
            return None
        return {
            **{c: None for c in RESULT_COLUMNS},
            "run_id": run_dir.name,
            "status": "failed",
            "flags": [],
            "error": problem,
        }
    status, reason = run_state(run_dir)
    if problem is not None:
        status, reason = "failed", problem
    summary = (read_object(run_dir / runfiles.SUMMARY_FILE)[0] or {}) if status == "finished" else {}
    metrics = load_metrics(run_dir) if status == "finished" else []
    counts = flops_lib.param_count(run.model)
    smoothed = smooth_curve([m["loss"] for m in metrics], window)[-1] if metrics else math.nan
    finished = status == "finished"
    return {
        "run_id": run.run_id,
        "group": run.group,
        "status": status,
        "budget": run.budget,
        "model": run.model.name,
        "n_layers": run.model.n_layers,
        "d_model": run.model.d_model,
        "ffw_size": run.model.ffw_size,
        "n_heads": run.model.n_heads,
        "kv_size": run.model.kv_size,
        "vocab_size": run.model.vocab_size,
        "seq_len": run.model.seq_len,
        "n_params": counts.total,
        "non_embedding_params": counts.non_embedding,
        "tokens": int(summary.get("tokens", run.tokens)) if finished else run.tokens,
        "flops": float(summary.get("flops", run.flops)) if finished else run.flops,
        "final_train_loss": float(smoothed) if finished else None,
        "eval_loss": _float_or_none(summary.get("eval_loss")) if finished else None,
        "seed": run.train.get("seed", 0),
        "lr": run.train.get("lr"),
        "batch_size": run.train.get("batch_size"),
        "flags": list(run.flags),
        "epochs": _float_or_none(summary.get("epochs")),
        "wall_time_s": _float_or_none(summary.get("wall_time_s")),
        "error": reason,
    }


def check_sweep_dir(sweep_dir) -> None:
    """ValueError unless ``sweep_dir`` is a sweep directory: it exists, is a directory, and holds ``plan.json`` or
    ``runs/`` (so that a mistyped path is an error, and nothing is created there)."""
    path = runfiles.as_path(sweep_dir)
    if not path.exists():
        raise ValueError(f"{sweep_dir}: no such directory; give the --out of a `chinchilla sweep`/`reproduce`")
    if not path.is_dir():
        raise ValueError(f"{sweep_dir} is a file, not a sweep directory")
    if not (path / runfiles.PLAN_FILE).exists() and not (path / runfiles.RUNS_DIR).is_dir():
        raise ValueError(
            f"{sweep_dir} is not a sweep directory (it has neither {runfiles.PLAN_FILE} nor "
            f"{runfiles.RUNS_DIR}/); give the --out of a `chinchilla sweep`/`reproduce`"
        )


def collect_results(sweep_dir) -> list[dict[str, Any]]:
    """One row per run directory, and one with status "missing" per run of the sweep's ``plan.json`` that has no
    directory (not started yet, or deleted), sorted by run id. Each row's ``outside_plan`` (not a results.csv
    column) says why a run directory is not one of the plan's runs (None when it is, or without ``plan.json``).
    Raises ValueError when ``plan.json`` is damaged."""
    sweep_dir = runfiles.as_path(sweep_dir)
    plan_data, problem = read_object(sweep_dir / runfiles.PLAN_FILE)
    if problem is not None:
        raise ValueError(f"{sweep_dir / runfiles.PLAN_FILE}: {problem}; rerun the sweep command to rewrite it")
    try:
        planned = {r.run_id: r for r in Plan.from_dict(plan_data).runs} if plan_data is not None else {}
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{sweep_dir / runfiles.PLAN_FILE} is not a plan ({type(error).__name__}: {error}); rerun "
            "the sweep command to rewrite it"
        ) from None
    rows = []
    for run_dir in runfiles.run_dirs(sweep_dir):
        row = result_row(run_dir, planned_run=planned.get(run_dir.name))
        if row is not None:
            rows.append({**row, OUTSIDE_PLAN: _outside_plan(run_dir, planned) if plan_data is not None else None})
    seen = {row["run_id"] for row in rows}
    for run_id, run in planned.items():
        if run_id not in seen:
            row = result_row(sweep_dir / runfiles.RUNS_DIR / run_id, planned_run=run)
            rows.append(
                {
                    **row,
                    "status": MISSING,
                    "error": "no run directory (not started yet, or deleted)",
                    OUTSIDE_PLAN: None,
                }
            )
    return sorted(rows, key=lambda row: row["run_id"])


def _outside_plan(run_dir, planned: dict[str, PlannedRun]) -> str | None:
    """Why a run directory is not one of the plan's runs (None when it is): no run of that id in ``plan.json``, or
    its ``run.json`` has other settings than the plan's run (a sweep of an earlier, edited plan)."""
    from chinchilla.sweep.identity import run_changes

    run = planned.get(run_dir.name)
    if run is None:
        return f"not in {runfiles.PLAN_FILE}"
    data = read_object(run_dir / runfiles.RUN_FILE)[0]
    if data is None:
        return None
    try:
        changes = run_changes(PlannedRun.from_dict(data), run)
    except (KeyError, TypeError, ValueError):
        return None  # a damaged run.json: the row is failed and says why
    return f"trained with other settings than {runfiles.PLAN_FILE}: {changes}" if changes else None


def plan_parts(sweep_dir) -> dict[str, Any] | None:
    """What ``plan.json`` says of the sweep's plan: its fingerprint, run count and the plans it was built from
    (``parts``: more than one when ``--extend`` added runs); None without ``plan.json``."""
    from chinchilla.sweep import identity

    plan, parts = identity.recorded(sweep_dir)
    if plan is None:
        return None
    return {"name": plan.name, "fingerprint": identity.fingerprint(plan), "runs": len(plan.runs), "parts": parts}


def extension_text(plan_info: dict[str, Any] | None) -> str | None:
    """One line saying how an extended sweep's plan was built (None for a plan that was not extended)."""
    parts = (plan_info or {}).get("parts") or []
    if len(parts) < 2:
        return None
    first, later = parts[0], parts[1:]
    added = ", ".join(f"{p.get('added', '?')} from {p.get('name', '?')!r}" for p in later)
    return (
        f"extended (--extend): {first.get('runs', '?')} runs of the original plan {first.get('name', '?')!r}, "
        f"then {added}; {plan_info.get('runs', '?')} runs in all"
    )


def write_results_table(sweep_dir) -> list[dict[str, Any]]:
    """Rebuild ``results.csv`` from the run directories (atomically) and return its rows."""
    rows = collect_results(sweep_dir)
    runfiles.write_csv_atomic(runfiles.as_path(sweep_dir) / runfiles.RESULTS_FILE, rows, RESULT_COLUMNS)
    return rows


def read_results_table(path) -> list[dict[str, Any]]:
    """A results CSV (ours, or any with at least n_params, tokens, flops and a loss column) with typed values."""
    rows = []
    for line, raw in enumerate(runfiles.read_csv(path), 2):
        row: dict[str, Any] = {}
        for key, value in raw.items():
            if value in ("", None):
                row[key] = None
            elif key in INT_COLUMNS or key in FLOAT_COLUMNS:
                try:
                    number = float(value)
                except ValueError:
                    raise ValueError(f"{path}: line {line}, column {key!r}: {value!r} is not a number") from None
                row[key] = int(number) if key in INT_COLUMNS and math.isfinite(number) else number
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
