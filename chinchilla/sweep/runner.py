"""The resumable sweep runner: one directory per run, finished runs skipped, failures recorded, work split over
workers that share one (possibly ``gs://``) sweep directory.

- A run is *finished* when its ``summary.json`` says so; it is never trained again. A run that was killed has no
  finished summary and is handed to the trainer again, which resumes from its last checkpoint.
- A trainer exception is written to the run's ``failure.json`` and the sweep goes on (so is a summary with status
  "failed", e.g. a non-finite loss); failed runs are retried only with ``retry_failed``, which removes those files
  so the trainer resumes from its last good checkpoint. KeyboardInterrupt and SystemExit stop the sweep (the run
  stays resumable). A run that another process holds (``chinchilla.runlock``, taken by ``train_run``) is skipped
  with the holder's name, and neither recorded as failed nor counted as trained.
- ``results.csv`` is rebuilt from all run directories after every run (``results.write_results_table``): no
  duplicate or torn row can appear.
- ``worker``/``num_workers``: a deterministic split (longest-processing-time first on the planned FLOPs), so n
  processes given the same plan and their own index train disjoint runs that together cover the plan.

A trainer is any ``train_fn(run: PlannedRun, run_dir: epath.Path) -> dict`` (the run's summary);
``train_planned_run`` is the real one, ``chinchilla.sweep.synthetic.SyntheticTrainer`` a fake for tests.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Any, Callable, Sequence

from etils import epath

from chinchilla.runlock import RunLockedError
from chinchilla.sweep import store
from chinchilla.sweep.plan import Plan, PlannedRun
from chinchilla.sweep.results import run_status, write_results_table

TrainFn = Callable[[PlannedRun, epath.Path], dict]


@dataclasses.dataclass(frozen=True)
class SweepOutcome:
    """What one ``run_sweep`` call did with the runs assigned to its worker."""

    trained: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: tuple[str, ...]
    assigned: int
    total: int
    wall_time_s: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train_planned_run(run: PlannedRun, run_dir: epath.Path, *, progress: bool = False) -> dict:
    """Train one planned run with ``chinchilla.train`` (resuming from its checkpoints if it was interrupted)."""
    from chinchilla.train import TrainConfig, train_run

    config = TrainConfig(model=run.model, tokens=run.tokens, **dict(run.train))
    return train_run(config, run_dir, progress=progress)


def assign_runs(runs: Sequence[PlannedRun], num_workers: int) -> list[list[PlannedRun]]:
    """Deterministic split of ``runs`` over ``num_workers``: largest planned FLOPs first, each to the worker with the
    least work so far (ties to the lowest index); each worker's list keeps the plan's order."""
    if num_workers < 1:
        raise ValueError(f"num_workers={num_workers} must be at least 1")
    load = [0.0] * num_workers
    owner: dict[str, int] = {}
    for run in sorted(runs, key=lambda r: (-r.flops, r.run_id)):
        worker = min(range(num_workers), key=lambda w: (load[w], w))
        owner[run.run_id] = worker
        load[worker] += run.flops
    return [[r for r in runs if owner[r.run_id] == w] for w in range(num_workers)]


def run_sweep(plan: Plan, sweep_dir, *, train_fn: TrainFn | None = None, worker: int = 0, num_workers: int = 1,
              retry_failed: bool = False, log: Callable[[str], None] | None = print) -> SweepOutcome:
    """Train this worker's share of ``plan`` under ``sweep_dir/runs/<run_id>``, skipping finished runs."""
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker={worker} must lie in [0, num_workers={num_workers})")
    train_fn = train_fn or train_planned_run
    sweep_dir = store.as_path(sweep_dir)
    store.write_text_atomic(sweep_dir / store.PLAN_FILE, plan.to_json() + "\n")
    mine = assign_runs(plan.runs, num_workers)[worker]
    start = time.time()
    trained, skipped, failed = [], [], []
    say = log or (lambda _: None)
    for index, run in enumerate(mine, 1):
        run_dir = sweep_dir / store.RUNS_DIR / run.run_id
        status = run_status(run_dir)
        if status == "finished" or (status == "failed" and not retry_failed):
            skipped.append(run.run_id)
            say(f"[{index}/{len(mine)}] {run.run_id}: {status}, skipped")
            continue
        if status == "failed":  # retried: the trainer resumes from its last good checkpoint
            for name in (store.FAILURE_FILE, store.SUMMARY_FILE):
                if (run_dir / name).exists():
                    (run_dir / name).unlink()
        store.write_json_atomic(run_dir / store.RUN_FILE, run.to_dict())
        say(f"[{index}/{len(mine)}] {run.run_id}: {run.model.name} {run.tokens:,} tokens {run.flops:.3g} FLOPs")
        run_start = time.time()
        try:
            summary = train_fn(run, run_dir)
        except RunLockedError as error:  # another worker trains it: not ours to record, nor a failure
            skipped.append(run.run_id)
            say(f"    skipped: {error}")
            continue
        except Exception as error:  # recorded; the sweep continues
            store.write_json_atomic(run_dir / store.FAILURE_FILE, {
                "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(),
                "time": time.time()})
            failed.append(run.run_id)
            say(f"    failed: {type(error).__name__}: {error}")
        else:
            if run_status(run_dir) == "finished":
                trained.append(run.run_id)
                loss = (summary or {}).get("final_train_loss")
                say(f"    finished in {time.time() - run_start:.1f}s"
                    + (f", final train loss {loss:.4f}" if isinstance(loss, float) else ""))
            else:
                failed.append(run.run_id)
                say(f"    not finished: status {(summary or {}).get('status')!r}")
        write_results_table(sweep_dir)
    write_results_table(sweep_dir)
    return SweepOutcome(trained=tuple(trained), skipped=tuple(skipped), failed=tuple(failed), assigned=len(mine),
                        total=len(plan.runs), wall_time_s=time.time() - start)


def plan_status(plan: Plan, sweep_dir) -> dict[str, list[str]]:
    """Run ids of ``plan`` by status in ``sweep_dir``: finished, failed, pending."""
    sweep_dir = store.as_path(sweep_dir)
    status: dict[str, list[str]] = {"finished": [], "failed": [], "pending": []}
    for run in plan.runs:
        status[run_status(sweep_dir / store.RUNS_DIR / run.run_id)].append(run.run_id)
    return status
