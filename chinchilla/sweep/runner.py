"""The resumable sweep runner: one directory per run, finished runs skipped, failures recorded, and runs claimed one
at a time by however many workers share one (possibly ``gs://``) sweep directory.

- A run is *finished* when its ``summary.json`` says so; it is never trained again. A run that was killed has no
  finished summary and is handed to the trainer again, which resumes from its last checkpoint.
- A trainer exception is written to the run's ``failure.json`` and the sweep goes on (so is a summary with status
  "failed", e.g. a non-finite loss); failed runs are retried only with ``retry_failed``, which removes those files
  so the trainer resumes from its last good checkpoint (a run is retried once per worker, and not at all when
  another worker retried it meanwhile). KeyboardInterrupt and SystemExit stop the sweep (the run stays resumable).
- **Claims**: every worker walks the plan in its order (the presets plan cheapest first) and claims each run it
  trains through the run lock (``chinchilla.runlock``, the same lock ``train_run`` takes), so a worker that finishes
  a run takes the next unclaimed one, however many workers there are and whenever they started; none trains a run
  another holds, and a run finished by another worker between the scan and the claim is seen under the claim and
  skipped. A claim is released when its worker exits, however it exits (SIGKILL included; see ``runlock`` for
  object stores), so a dead worker's run is claimed again by the next worker that reaches it. After its walk, a
  worker tries once more the runs it found held; when every run left is held by other live workers, it stops
  (it does not wait for them): the last worker to finish leaves the complete ``results.csv``.
- ``worker``/``num_workers`` only name the worker in its log lines (``--worker``/``--num-workers``, or a SLURM
  array or Kubernetes indexed job); they no longer split the plan, so any mix of counts trains every run once.
- ``results.csv`` is rebuilt from all run directories after every run (``results.write_results_table``), by one
  writer at a time on a local or NFS directory: no duplicate or torn row can appear, and the last rewrite sees
  every finished run.
- ``jobs``: several runs at once, in worker processes of one XLA thread each (``chinchilla.sweep.pool``): the same
  losses, bitwise, for every number of jobs; each run is claimed, trained and recorded by ``run_one``, in a worker
  or (with ``jobs=None``) in this process; only this process rewrites ``results.csv``.
- **Trunks and branches** (``chinchilla.sweep.plan.share_trunks``: WSD runs that start from a shared trunk's
  checkpoint, ``train["init_from"] = "<trunk id>:<step>"``): the plan lists trunks before their branches; a branch
  whose trunk has not saved its branch point yet is *deferred*, not failed: skipped for now and claimed as soon as
  the checkpoint exists (with ``jobs``, while the trunk still trains; without, on the next walk). A branch whose
  trunk failed is marked failed, with the reason ``trunk <id> failed: ...``. A worker does not wait for a trunk that
  another worker holds: that worker reaches the trunk's branches after it (the log names them).
- Several JAX processes that train each run together (a multi-host slice: ``JAX_NUM_PROCESSES`` and the like, see
  ``chinchilla.sharding``) form one worker: process 0 claims the next run and tells the others which, one run at a
  time.

A trainer is any ``train_fn(run: PlannedRun, run_dir: epath.Path) -> dict`` (the run's summary);
``train_planned_run`` is the real one, ``chinchilla.sweep.synthetic.SyntheticTrainer`` a fake for tests.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from etils import epath

from chinchilla import runfiles, runlock
from chinchilla.fit.table import counted
from chinchilla.runlock import RunLockedError
from chinchilla.sweep.identity import adopt_plan
from chinchilla.sweep.plan import Plan, PlannedRun
from chinchilla.sweep.pool import (
    JOBS_AUTO,
    WorkerDied,
    make_pool,
    resolve_jobs,
    stop_pool,
    worker_death_text,
    worker_exits,
)
from chinchilla.sweep.results import run_state, run_status, write_results_table

TrainFn = Callable[[PlannedRun, epath.Path], dict]
BRANCH_POINTS = "branch_points"  # chinchilla.train.BRANCH_POINTS (not imported: it would import JAX)
BRANCH_POINT_FILES = ("meta/metadata", "state/_METADATA")  # chinchilla.checkpoint.REQUIRED_FILES: a complete step
TRUNK_POLL_S = 1.0  # with jobs: how often a deferred branch's trunk is looked at again while runs are in flight


@dataclasses.dataclass(frozen=True)
class SweepOutcome:
    """What one ``run_sweep`` call (one worker) did."""

    trained: tuple[str, ...]
    skipped: tuple[str, ...]  # finished or failed before, by another worker meanwhile, or held by another worker
    failed: tuple[str, ...]
    claimed: int  # runs this worker claimed: trained or failed
    total: int
    wall_time_s: float
    held_elsewhere: tuple[str, ...] = ()  # runs other workers were training when this one stopped
    waiting: tuple[str, ...] = ()  # branches left for the workers that hold their trunks (deferred, not failed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train_planned_run(run: PlannedRun, run_dir: epath.Path, *, progress: bool = False) -> dict:
    """Train one planned run with ``chinchilla.train`` (resuming from its checkpoints if it was interrupted)."""
    from chinchilla.train import TrainConfig, train_run

    config = TrainConfig(model=run.model, tokens=run.tokens, **dict(run.train))
    return train_run(config, run_dir, progress=progress)


def assign_runs(runs: Sequence[PlannedRun], num_workers: int) -> list[list[PlannedRun]]:
    """A deterministic split of ``runs`` over ``num_workers`` (largest planned FLOPs first, each to the worker with
    the least work so far; each list keeps the plan's order). ``run_sweep`` no longer uses it (workers claim runs
    as they go); kept for planning who would do what."""
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
    runfiles.remove_dead_temporaries(sweep_dir)
    runs = sweep_dir / runfiles.RUNS_DIR
    if runs.is_dir():
        for run_dir in runs.iterdir():
            if run_dir.is_dir():
                runfiles.remove_dead_temporaries(run_dir)


RESULTS_LOCK = "results.lock"


def _write_results(sweep_dir: epath.Path) -> None:
    """``write_results_table`` by one writer at a time (a blocking ``flock`` on ``results.lock``, local and NFS
    directories), so that of several workers' rewrites the last one read every run finished before it."""
    if "://" in str(sweep_dir):  # no kernel locks on object stores: each rewrite is whole, the last one wins
        write_results_table(sweep_dir)
        return
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(os.fspath(sweep_dir / RESULTS_LOCK), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: write unserialised, as before
            pass
        write_results_table(sweep_dir)


def _failure_mark(run_dir: epath.Path) -> str:
    """What a failed run's record files hold now: a retry that failed again (under another worker) changes it."""
    return "".join(
        (run_dir / name).read_text() if (run_dir / name).exists() else "-"
        for name in (runfiles.FAILURE_FILE, runfiles.SUMMARY_FILE)
    )


_GROUP_VARIABLES = (
    "JAX_COORDINATOR_ADDRESS",
    "JAX_NUM_PROCESSES",
    "JAX_PROCESS_ID",
    "CHINCHILLA_DISTRIBUTED",
    "SLURM_NTASKS",
    "OMPI_COMM_WORLD_SIZE",
    "TPU_WORKER_HOSTNAMES",
    "TPU_PROCESS_ADDRESSES",
)


def process_group() -> tuple[int, int]:
    """(this process's index, the number of processes) of the JAX job this sweep runs in: (0, 1) for one process.
    Starts ``jax.distributed`` where the environment asks for several processes (``chinchilla.sharding``); does not
    import JAX when no variable that could ask for it is set."""
    if "jax" not in sys.modules and not any(os.environ.get(name) for name in _GROUP_VARIABLES):
        return 0, 1
    from chinchilla import sharding

    sharding.maybe_initialize_distributed()
    import jax

    if not jax.distributed.is_initialized():
        return 0, 1
    return jax.process_index(), jax.process_count()


def check_data_files(runs: list[PlannedRun], sweep_dir) -> None:
    """ValueError, before any run starts, when a ``files:`` data set of a run still to train matches no file: one
    line naming the pattern and where preparing each preset's data is described (docs/data.md)."""
    from chinchilla.data import files

    to_train = [r for r in runs if not (sweep_dir / runfiles.RUNS_DIR / r.run_id / runfiles.SUMMARY_FILE).exists()]
    for dataset in sorted({str(r.train["dataset"]) for r in to_train if r.train.get("dataset")}):
        if files.is_files(dataset):
            try:
                files.list_files(files.parse(dataset))
            except ValueError as error:
                raise ValueError(f"{error}; prepare the data first (docs/data.md), then rerun") from None


def run_sweep(
    plan: Plan,
    sweep_dir,
    *,
    train_fn: TrainFn | None = None,
    worker: int = 0,
    num_workers: int = 1,
    retry_failed: bool = False,
    jobs: int | str | None = None,
    extend: bool = False,
    log: Callable[[str], None] | None = print,
) -> SweepOutcome:
    """Train the runs of ``plan`` that no other worker has claimed, under ``sweep_dir/runs/<run_id>``, skipping
    finished runs (see the module docstring for claims; ``worker``/``num_workers`` name this worker in the log).

    ``jobs``: None trains the runs one after another in this process (JAX's default threads); an int trains them
    in that many worker processes at once, each with a one-thread XLA backend (``chinchilla.sweep.pool``), so the
    losses are bitwise the same for every int; ``"auto"`` is the number of usable cores on CPU (None on an
    accelerator). With workers, ``train_fn`` must be picklable (a module-level function, ``functools.partial`` or
    dataclass instance), and a script that calls this must guard its top level with ``if __name__ == "__main__":``
    (workers are spawned: each imports the main module again).

    The directory is one experiment (``chinchilla.sweep.identity``): a ``plan`` other than the one its ``plan.json``
    holds is refused (``PlanChangedError``, naming what changed) before anything is written, unless ``extend``
    adds its new runs to the directory's plan; the runs trained are those of the directory's plan."""
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker={worker} must lie in [0, num_workers={num_workers})")
    explicit_jobs = jobs not in (None, JOBS_AUTO)
    jobs = resolve_jobs(jobs)
    train_fn = train_fn or train_planned_run
    sweep_dir = runfiles.as_path(sweep_dir)
    rank, processes = process_group()
    if processes > 1:
        if explicit_jobs and jobs != 1:
            raise ValueError(
                f"jobs={jobs}: this process is one of {processes} JAX processes that train each run "
                "together, one run at a time; leave --jobs out"
            )
        jobs = None
    writer = rank == 0
    plan = adopt_plan(plan, sweep_dir, extend=extend)  # every process: the same plan, whoever wrote it first
    if writer:
        _remove_dead_temporaries(sweep_dir)
    runs = list(plan.runs)
    if getattr(train_fn, "func", train_fn) is train_planned_run:  # the real trainer (or a partial of it)
        check_data_files(runs, sweep_dir)  # a missing data set is one line now, not one failed run per run
    number = {run.run_id: index for index, run in enumerate(runs, 1)}
    start = time.time()
    trained: list[str] = []
    skipped: list[str] = []
    failed: list[str] = []
    say = (log or (lambda _: None)) if writer else (lambda _: None)
    me = f"worker {worker + 1} of {num_workers}: " if num_workers > 1 else ""

    def tell(run: PlannedRun, message: str) -> None:
        say(f"{me}[{number[run.run_id]}/{len(runs)}] {run.run_id}: {message}")

    todo, marks = [], {}
    for run in runs:
        run_dir = sweep_dir / runfiles.RUNS_DIR / run.run_id
        status = run_status(run_dir)
        if status == "finished" or (status == "failed" and not retry_failed):
            skipped.append(run.run_id)
            tell(run, f"{status}, skipped")
        else:
            todo.append(run)
            if status == "failed":
                marks[run.run_id] = _failure_mark(run_dir)

    def record(run: PlannedRun, result: RunResult) -> bool:
        """Note a result; whether the run is held by another worker."""
        if result.held:
            tell(run, f"held by another worker ({result.message})")
            return True
        (trained if result.trained else failed if result.claimed else skipped).append(run.run_id)
        tell(run, result.message)
        if writer:
            _write_results(sweep_dir)
        return False

    held: list[PlannedRun] = []
    waiting: list[PlannedRun] = []
    pool = None
    retrying = set(marks)  # failed runs this worker retries: their branches wait for the retry

    def waits(run: PlannedRun) -> str | None:
        return trunk_wait(run, sweep_dir, retrying, marks)

    try:
        while todo:
            held, waiting, progressed = [], [], False
            if processes > 1:  # one walk, with its own second try of held runs: every process must agree
                results = _lockstep_pass(train_fn, runs, todo, sweep_dir, retry_failed, marks, rank, waits)
            elif jobs is None:
                results = _sequential_pass(train_fn, todo, sweep_dir, retry_failed, marks, tell, waits)
            else:
                if pool is None:
                    workers = min(jobs, len(todo))
                    say(
                        f"{me}{counted(len(todo), 'run')} on {counted(workers, 'worker process', 'worker processes')} "
                        "(one XLA thread each)"
                    )
                    pool = make_pool(min(jobs, len(todo)))
                results = _pool_pass(pool, jobs, train_fn, todo, sweep_dir, retry_failed, marks, waits)
            for run, result in results:
                if result.deferred:
                    if run not in waiting:
                        waiting.append(run)
                    continue
                if run in waiting:  # claimed on a later walk (lockstep): no longer waiting
                    waiting.remove(run)
                if record(run, result):
                    held.append(run)
                    continue
                progressed = True
                if run in held:  # claimed on a later walk (lockstep): no longer held
                    held.remove(run)
            if processes > 1 or not progressed or not (held or waiting):  # every run left is held (or waits for a
                break  # trunk held elsewhere): stop, no wait
            left = {run.run_id for run in held + waiting}
            todo = [run for run in runs if run.run_id in left]  # claims released meanwhile are taken now
    except BaseException as error:  # e.g. KeyboardInterrupt or a dead pool worker: stop, the runs stay resumable
        died = worker_death_text(worker_exits(pool)) if isinstance(error, BrokenProcessPool) and pool else None
        if pool is not None:
            stop_pool(pool)
            pool = None
        if writer:
            _write_results(sweep_dir)
        if died:  # killed from outside (the OOM killer's SIGKILL...): say so, it is no bug of ours
            raise WorkerDied(died) from error
        raise
    finally:
        if pool is not None:
            pool.shutdown()
    skipped.extend(run.run_id for run in held + waiting)
    if held:
        say(
            f"{me}nothing left to claim: {len(held)} run(s) held by other workers "
            f"({', '.join(run.run_id for run in held)}); this worker stops, they finish them"
        )
    if waiting:
        say(
            f"{me}{len(waiting)} branch(es) wait for their trunk's checkpoint ("
            + "; ".join(f"{run.run_id}: {waits(run) or 'ready now: rerun to train it'}" for run in waiting[:3])
            + (f"; ... {len(waiting) - 3} more" if len(waiting) > 3 else "")
            + "); the workers that hold those trunks train them after it"
        )
    order = {run.run_id: i for i, run in enumerate(runs)}
    for names in (trained, failed, skipped):
        names.sort(key=order.get)
    if writer:
        _write_results(sweep_dir)
    return SweepOutcome(
        trained=tuple(trained),
        skipped=tuple(skipped),
        failed=tuple(failed),
        claimed=len(trained) + len(failed),
        total=len(runs),
        wall_time_s=time.time() - start,
        held_elsewhere=tuple(run.run_id for run in held),
        waiting=tuple(run.run_id for run in waiting),
    )


def branch_point(run: PlannedRun) -> tuple[str, int] | None:
    """(trunk run id, step) of a branch of this sweep (``init_from = "<trunk id>:<step>"``, a sibling run directory),
    or None: not a branch, or one that starts from a run outside the sweep (an absolute path or a URL)."""
    init_from = run.train.get("init_from")
    if init_from is None:
        return None
    trunk, _, step = str(init_from).rpartition(":")
    if not trunk or not step.isdigit() or "/" in trunk or "\\" in trunk:
        return None
    return trunk, int(step)


def branch_point_saved(trunk_dir: epath.Path, step: int) -> bool:
    """Whether the trunk in ``trunk_dir`` has saved a complete checkpoint at ``step`` (kept under
    ``branch_points/``, or still among its rolling ``checkpoints/``)."""
    return any(
        all((trunk_dir / folder / str(step) / name).exists() for name in BRANCH_POINT_FILES)
        for folder in (BRANCH_POINTS, "checkpoints")
    )


def trunk_failure(run: PlannedRun, sweep_dir) -> str | None:
    """For a branch whose trunk failed: ``trunk <id> failed: <its reason>``; else None."""
    point = branch_point(run)
    if point is None:
        return None
    status, reason = run_state(runfiles.as_path(sweep_dir) / runfiles.RUNS_DIR / point[0])
    if status != "failed":
        return None
    return f"trunk {point[0]} failed: {(str(reason or 'no reason recorded').splitlines() or [''])[0][:200]}"


def trunk_wait(
    run: PlannedRun, sweep_dir, retrying: set[str] = frozenset(), marks: dict[str, str] | None = None
) -> str | None:
    """Why a branch cannot start yet (its trunk has not saved the branch point), or None: it can (not a branch, the
    checkpoint exists, the trunk finished, or the trunk failed and the branch is to be marked failed). A failed trunk
    that this worker is to retry (``retrying``, with the failure it had when this worker looked: ``marks``) counts as
    not saved yet."""
    point = branch_point(run)
    if point is None:
        return None
    trunk, step = point
    trunk_dir = runfiles.as_path(sweep_dir) / runfiles.RUNS_DIR / trunk
    status = run_status(trunk_dir)
    if status == "finished" or branch_point_saved(trunk_dir, step):
        return None
    if status == "failed" and not (
        trunk in retrying and marks is not None and _failure_mark(trunk_dir) == marks.get(trunk)
    ):
        return None
    return f"trunk {trunk} has not saved step {step} yet"


def _is_trunk_not_ready(error: BaseException) -> bool:
    """``chinchilla.train.TrunkNotReady`` (looked up only if that module is loaded: it imports JAX)."""
    train = sys.modules.get("chinchilla.train")
    kind = getattr(train, "TrunkNotReady", None) if train is not None else None
    return kind is not None and isinstance(error, kind)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What ``run_one`` did: ``claimed`` the run (and ``trained`` it to the end, or it failed), found it ``held`` by
    another worker, ``deferred`` it (a branch whose trunk has not saved its branch point yet), or neither (another
    worker finished it, or failed it again, before the claim); and a one-line message for the log."""

    trained: bool
    message: str
    held: bool = False
    claimed: bool = True
    deferred: bool = False  # a branch whose trunk has not saved its branch point yet: claimed later


def _settled(run_dir: epath.Path, retry_failed: bool, mark: str | None) -> str | None:
    """Under the claim: why the run needs no training any more (another worker finished or failed it since this
    worker's scan), or None."""
    status = run_status(run_dir)
    if status == "finished":
        return "finished by another worker, skipped"
    if status == "failed" and not (retry_failed and mark is not None and _failure_mark(run_dir) == mark):
        return "failed under another worker, skipped"
    return None


def run_one(
    train_fn: TrainFn,
    run: PlannedRun,
    sweep_dir,
    retry_failed: bool = False,
    failure_mark: str | None = None,
    trunk_marks: dict[str, str] | None = None,
) -> RunResult:
    """Claim one run of a sweep (``runlock.hold`` on ``sweep_dir/runs/<run_id>``), train it and record the outcome
    there: its ``run.json`` first, then the trainer's files, or ``failure.json`` when the trainer raises (the sweep
    goes on). A run another process holds is left alone (``held``); one that another worker finished or failed
    since this worker looked is skipped. A failed run is retried only with ``retry_failed`` and the failure it had
    when this worker looked (``failure_mark``): its failure records are removed so that the trainer resumes from
    its last good checkpoint. A branch whose trunk has not saved its branch point yet is ``deferred`` (nothing is
    written); one whose trunk failed is recorded failed with the trunk's reason (``trunk_marks``: the failed runs
    this worker retries, whose branches wait for the retry). The same function runs in this process
    (``jobs=None``) and in worker processes."""
    run_dir = runfiles.as_path(sweep_dir) / runfiles.RUNS_DIR / run.run_id
    try:
        claim = runlock.hold(run_dir, nested=True)
        claim.__enter__()
    except RunLockedError as error:
        return RunResult(False, runlock.holder_text(error.holder), held=True, claimed=False)
    try:
        done = _settled(run_dir, retry_failed, failure_mark)
        if done:
            return RunResult(False, done, claimed=False)
        marks = dict(trunk_marks or {})
        wait = trunk_wait(run, sweep_dir, set(marks), marks)
        if wait:
            return RunResult(False, wait, claimed=False, deferred=True)
        return _train_claimed(train_fn, run, run_dir, retry_failed)
    finally:
        claim.__exit__(None, None, None)


def _train_claimed(
    train_fn: TrainFn, run: PlannedRun, run_dir: epath.Path, retry_failed: bool, writer: bool = True
) -> RunResult:
    if writer and retry_failed and run_status(run_dir) == "failed":
        for name in (runfiles.FAILURE_FILE, runfiles.SUMMARY_FILE):
            if (run_dir / name).exists():
                (run_dir / name).unlink()
    trunk_failed = trunk_failure(run, run_dir.parent.parent)
    if writer:
        runfiles.write_json_atomic(run_dir / runfiles.RUN_FILE, run.to_dict())
    if trunk_failed:  # nothing to branch from: failed with the trunk's reason (retried with --retry-failed)
        if writer:
            runfiles.write_json_atomic(
                run_dir / runfiles.FAILURE_FILE, {"error": trunk_failed, "traceback": None, "time": time.time()}
            )
        return RunResult(False, f"failed: {trunk_failed}")
    run_start = time.time()
    try:
        summary = train_fn(run, run_dir)
    except RunLockedError as error:  # held after all (a trainer's own lock): not ours to record, nor a failure
        return RunResult(False, runlock.holder_text(error.holder), held=True, claimed=False)
    except Exception as error:  # recorded; the sweep continues
        point = branch_point(run)
        if _is_trunk_not_ready(error) and point and run_status(run_dir.parent / point[0]) != "finished":
            return RunResult(False, str(error), claimed=False, deferred=True)  # its checkpoint comes later
        if writer:
            runfiles.write_json_atomic(
                run_dir / runfiles.FAILURE_FILE,
                {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(), "time": time.time()},
            )
        return RunResult(False, f"failed: {type(error).__name__}: {error}")
    if run_status(run_dir) != "finished":
        return RunResult(False, f"not finished: status {(summary or {}).get('status')!r}")
    loss = (summary or {}).get("train_loss_tail")
    return RunResult(
        True,
        f"{run.model.name} {run.tokens:,} tokens {run.flops:.3g} FLOPs finished in "
        f"{time.time() - run_start:.1f}s"
        + (f", train loss {loss:.4f} (last steps' mean)" if isinstance(loss, float) else ""),
    )


def _sequential_pass(
    train_fn: TrainFn,
    todo: Sequence[PlannedRun],
    sweep_dir: epath.Path,
    retry_failed: bool,
    marks: dict[str, str],
    tell: Callable[[PlannedRun, str], None],
    waits: Callable[[PlannedRun], str | None],
) -> Iterator[tuple[PlannedRun, RunResult]]:
    for run in todo:
        wait = waits(run)
        if wait:  # a branch whose trunk is held elsewhere (or failed, to be retried later in this walk)
            yield run, RunResult(False, wait, claimed=False, deferred=True)
            continue
        tell(run, f"{run.model.name} {run.tokens:,} tokens {run.flops:.3g} FLOPs")
        yield run, run_one(train_fn, run, sweep_dir, retry_failed, marks.get(run.run_id), marks)


def _pool_pass(
    pool,
    jobs: int,
    train_fn: TrainFn,
    todo: Sequence[PlannedRun],
    sweep_dir: epath.Path,
    retry_failed: bool,
    marks: dict[str, str],
    waits: Callable[[PlannedRun], str | None],
) -> Iterator[tuple[PlannedRun, RunResult]]:
    """One walk with ``jobs`` runs in flight: each free worker gets the first run of ``todo`` (plan order: trunks
    first) that can start, so a branch starts as soon as its trunk has saved its branch point, while the trunk
    trains on. Branches whose trunk is not trained here (held elsewhere) are given back deferred."""
    queue = list(todo)
    flight: dict[Any, PlannedRun] = {}
    while queue or flight:
        for run in list(queue):
            if len(flight) >= jobs:
                break
            if waits(run):
                continue
            queue.remove(run)
            flight[pool.submit(run_one, train_fn, run, str(sweep_dir), retry_failed, marks.get(run.run_id), marks)] = (
                run
            )
        if not flight:  # every run left waits for a trunk no job of this walk trains
            for run in queue:
                yield run, RunResult(False, waits(run) or "deferred", claimed=False, deferred=True)
            return
        done, _ = wait_futures(list(flight), timeout=TRUNK_POLL_S if queue else None, return_when=FIRST_COMPLETED)
        for future in done:
            run = flight.pop(future)
            result = future.result()
            trunk = (branch_point(run) or (None,))[0]
            if result.deferred and trunk in {r.run_id for r in list(flight.values()) + queue}:
                queue.append(run)  # its trunk trains in this walk: try again when it has saved the step
                continue
            yield run, result


def _lockstep_pass(
    train_fn: TrainFn,
    runs: Sequence[PlannedRun],
    todo: Sequence[PlannedRun],
    sweep_dir: epath.Path,
    retry_failed: bool,
    marks: dict[str, str],
    rank: int,
    waits: Callable[[PlannedRun], str | None] = lambda run: None,
) -> Iterator[tuple[PlannedRun, RunResult]]:
    """The whole sweep of the processes of one JAX job: process 0 claims the next run it can (walking ``todo``, then
    once more the runs it found held, as ``run_sweep`` does) and broadcasts its position in the plan (-1: none
    left); every process then trains it (``train_fn`` runs its collectives in all of them), process 0 under the
    claim and as the one writer of the sweep's files. Only process 0's ``todo`` matters: the others follow."""
    import numpy as np
    from jax.experimental import multihost_utils

    position = {run.run_id: index for index, run in enumerate(runs)}
    queue, held, progress = list(todo), [], False
    while True:
        claim, chosen, passed = None, -1, []
        while rank == 0 and chosen < 0:
            if not queue:
                if not held or not progress:  # every run left is held by other live workers
                    break
                queue, held, progress = held, [], False  # claims released meanwhile (a worker died) are taken now
            run = queue.pop(0)
            run_dir = sweep_dir / runfiles.RUNS_DIR / run.run_id
            wait = waits(run)
            if wait:
                held.append(run)
                passed.append((run, RunResult(False, wait, claimed=False, deferred=True)))
                continue
            try:
                claim = runlock.hold(run_dir, nested=True)
                claim.__enter__()
            except RunLockedError as error:
                claim = None
                held.append(run)
                passed.append((run, RunResult(False, runlock.holder_text(error.holder), held=True, claimed=False)))
                continue
            done = _settled(run_dir, retry_failed, marks.get(run.run_id))
            if done:
                claim.__exit__(None, None, None)
                claim = None
                passed.append((run, RunResult(False, done, claimed=False)))
                continue
            chosen = position[run.run_id]
        for run, result in passed:  # held runs that a later walk claims are reported again then
            yield run, result
        chosen = int(multihost_utils.broadcast_one_to_all(np.int32(chosen)))
        if chosen < 0:
            return
        run = runs[chosen]
        progress = True
        try:
            result = _train_claimed(
                train_fn, run, sweep_dir / runfiles.RUNS_DIR / run.run_id, retry_failed, writer=rank == 0
            )
        finally:
            if claim is not None:
                claim.__exit__(None, None, None)
        yield run, result


def plan_status(plan: Plan, sweep_dir) -> dict[str, list[str]]:
    """Run ids of ``plan`` by status in ``sweep_dir``: finished, failed, pending."""
    sweep_dir = runfiles.as_path(sweep_dir)
    status: dict[str, list[str]] = {"finished": [], "failed": [], "pending": []}
    for run in plan.runs:
        status[run_status(sweep_dir / runfiles.RUNS_DIR / run.run_id)].append(run.run_id)
    return status


def failures_text(plan: Plan, sweep_dir) -> str | None:
    """One line for the runs of ``plan`` that failed in ``sweep_dir`` (this worker's or earlier ones): how many,
    the first one's reason, and where every reason is; None when none failed."""
    from chinchilla.sweep.results import run_state

    sweep_dir = runfiles.as_path(sweep_dir)
    failed = plan_status(plan, sweep_dir)["failed"]
    if not failed:
        return None
    reason = (
        str(run_state(sweep_dir / runfiles.RUNS_DIR / failed[0])[1] or "no reason recorded").splitlines()
        or ["no reason recorded"]
    )[0][:200]
    where = str(sweep_dir).rstrip("/")
    return (
        f"{len(failed)} of {len(plan.runs)} runs failed (first: {failed[0]}: {reason}); every reason is in "
        f"{where}/{runfiles.RESULTS_FILE} (column error) and "
        f"{where}/{runfiles.RUNS_DIR}/<run_id>/{runfiles.FAILURE_FILE} "
        f"or {runfiles.SUMMARY_FILE}; fix the cause, then rerun with --retry-failed"
    )
