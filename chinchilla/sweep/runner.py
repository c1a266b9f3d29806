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
- ``jobs``: several runs at once, in worker processes of one XLA thread each (``chinchilla.sweep.pool``): the same
  losses, bitwise, for every number of jobs; each run is trained and recorded by ``run_one``, in a worker or (with
  ``jobs=None``) in this process; only this process rewrites ``results.csv``.
- ``worker``/``num_workers``: a deterministic split (longest-processing-time first on the planned FLOPs), so n
  processes given the same plan and their own index train disjoint runs that together cover the plan.

A trainer is any ``train_fn(run: PlannedRun, run_dir: epath.Path) -> dict`` (the run's summary);
``train_planned_run`` is the real one, ``chinchilla.sweep.synthetic.SyntheticTrainer`` a fake for tests.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from concurrent.futures import as_completed
from typing import Any, Callable, Sequence

from etils import epath

from chinchilla import atomic
from chinchilla.runlock import RunLockedError
from chinchilla.sweep import store
from chinchilla.sweep.pool import make_pool, resolve_jobs, stop_pool
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


def _remove_dead_temporaries(sweep_dir) -> None:
    """A killed sweep can leave half-written temporaries (never the files themselves: writes are atomic) in the sweep
    directory and its run directories; clear this host's dead writers' ones before going on."""
    atomic.remove_dead_temporaries(sweep_dir)
    runs = sweep_dir / store.RUNS_DIR
    if runs.is_dir():
        for run_dir in runs.iterdir():
            if run_dir.is_dir():
                atomic.remove_dead_temporaries(run_dir)


def run_sweep(plan: Plan, sweep_dir, *, train_fn: TrainFn | None = None, worker: int = 0, num_workers: int = 1,
              retry_failed: bool = False, jobs: int | str | None = None,
              log: Callable[[str], None] | None = print) -> SweepOutcome:
    """Train this worker's share of ``plan`` under ``sweep_dir/runs/<run_id>``, skipping finished runs.

    ``jobs``: None trains the runs one after another in this process (JAX's default threads); an int trains them
    in that many worker processes at once, each with a one-thread XLA backend (``chinchilla.sweep.pool``), so the
    losses are bitwise the same for every int; ``"auto"`` is the number of usable cores on CPU (None on an
    accelerator). With workers, ``train_fn`` must be picklable (a module-level function, ``functools.partial`` or
    dataclass instance), and a script that calls this must guard its top level with ``if __name__ == "__main__":``
    (workers are spawned: each imports the main module again)."""
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker={worker} must lie in [0, num_workers={num_workers})")
    jobs = resolve_jobs(jobs)
    train_fn = train_fn or train_planned_run
    sweep_dir = store.as_path(sweep_dir)
    _remove_dead_temporaries(sweep_dir)
    store.write_text_atomic(sweep_dir / store.PLAN_FILE, plan.to_json() + "\n")
    mine = assign_runs(plan.runs, num_workers)[worker]
    start = time.time()
    trained, skipped, failed = [], [], []
    say = log or (lambda _: None)
    todo = []
    for index, run in enumerate(mine, 1):
        run_dir = sweep_dir / store.RUNS_DIR / run.run_id
        status = run_status(run_dir)
        if status == "finished" or (status == "failed" and not retry_failed):
            skipped.append(run.run_id)
            say(f"[{index}/{len(mine)}] {run.run_id}: {status}, skipped")
        else:
            todo.append((index, run))

    def record(index: int, run: PlannedRun, result: RunResult) -> None:
        (skipped if result.locked else trained if result.trained else failed).append(run.run_id)
        say(f"[{index}/{len(mine)}] {run.run_id}: {result.message}")
        write_results_table(sweep_dir)

    if jobs is None:
        for index, run in todo:
            say(f"[{index}/{len(mine)}] {run.run_id}: {run.model.name} {run.tokens:,} tokens {run.flops:.3g} FLOPs")
            record(index, run, run_one(train_fn, run, sweep_dir, retry_failed))
    elif todo:
        say(f"{len(todo)} runs on {min(jobs, len(todo))} worker processes (one XLA thread each)")
        with make_pool(min(jobs, len(todo))) as pool:
            futures = {pool.submit(run_one, train_fn, run, str(sweep_dir), retry_failed): (index, run)
                       for index, run in todo}
            try:
                for future in as_completed(futures):
                    record(*futures[future], future.result())
            except BaseException:  # e.g. KeyboardInterrupt or a dead worker: stop, the runs stay resumable
                stop_pool(pool)
                write_results_table(sweep_dir)
                raise
    order = {run.run_id: i for i, run in enumerate(mine)}
    trained.sort(key=order.get)
    failed.sort(key=order.get)
    write_results_table(sweep_dir)
    return SweepOutcome(trained=tuple(trained), skipped=tuple(skipped), failed=tuple(failed), assigned=len(mine),
                        total=len(plan.runs), wall_time_s=time.time() - start)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What ``run_one`` did: ``trained`` (the run finished), ``locked`` (another process holds the run: skipped,
    neither failed nor trained) and a one-line message for the log."""

    trained: bool
    message: str
    locked: bool = False


def run_one(train_fn: TrainFn, run: PlannedRun, sweep_dir, retry_failed: bool = False) -> RunResult:
    """Train one run of a sweep under ``sweep_dir/runs/<run_id>`` and record the outcome there: its ``run.json``
    first, then the trainer's files, or ``failure.json`` when the trainer raises (the sweep goes on). A failed run
    is only handed here again with ``retry_failed``: its failure records are removed so that the trainer resumes
    from its last good checkpoint. The same function runs in this process (``jobs=None``) and in worker processes."""
    run_dir = store.as_path(sweep_dir) / store.RUNS_DIR / run.run_id
    if retry_failed and run_status(run_dir) == "failed":
        for name in (store.FAILURE_FILE, store.SUMMARY_FILE):
            if (run_dir / name).exists():
                (run_dir / name).unlink()
    store.write_json_atomic(run_dir / store.RUN_FILE, run.to_dict())
    run_start = time.time()
    try:
        summary = train_fn(run, run_dir)
    except RunLockedError as error:  # another worker trains it: not ours to record, nor a failure
        return RunResult(False, f"skipped: {error}", locked=True)
    except Exception as error:  # recorded; the sweep continues
        store.write_json_atomic(run_dir / store.FAILURE_FILE, {
            "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(), "time": time.time()})
        return RunResult(False, f"failed: {type(error).__name__}: {error}")
    if run_status(run_dir) != "finished":
        return RunResult(False, f"not finished: status {(summary or {}).get('status')!r}")
    loss = (summary or {}).get("final_train_loss")
    return RunResult(True, f"{run.model.name} {run.tokens:,} tokens {run.flops:.3g} FLOPs finished in "
                           f"{time.time() - run_start:.1f}s"
                     + (f", final train loss {loss:.4f}" if isinstance(loss, float) else ""))


def plan_status(plan: Plan, sweep_dir) -> dict[str, list[str]]:
    """Run ids of ``plan`` by status in ``sweep_dir``: finished, failed, pending."""
    sweep_dir = store.as_path(sweep_dir)
    status: dict[str, list[str]] = {"finished": [], "failed": [], "pending": []}
    for run in plan.runs:
        status[run_status(sweep_dir / store.RUNS_DIR / run.run_id)].append(run.run_id)
    return status
