"""Concurrent sweeps (``run_sweep(jobs=N)``): the results rows do not depend on the number of jobs (real training,
same seeds), and a SIGKILLed concurrent sweep leaves no orphan worker and resumes with no duplicate or torn row."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chinchilla import flops, zoo
from chinchilla.sweep import Plan, PlannedRun, read_results_table, run_status, run_sweep
from chinchilla.sweep.pool import resolve_jobs, usable_cores

ROOT = Path(__file__).resolve().parents[1]
TIMING_COLUMNS = {"wall_time_s"}


def tiny_real_plan() -> Plan:
    """Three real runs of two tiny shapes (context 32, 24 steps of 4 sequences), two seeds of one shape."""
    runs = []
    for name, seed in (("tiny-00004k", 0), ("tiny-00004k", 1), ("tiny-00006k", 0)):
        model = dataclasses.replace(zoo.get_model(name), seq_len=32)
        tokens = 24 * 4 * 32
        runs.append(
            PlannedRun(
                run_id=f"{name}_seed{seed}",
                group="concurrency",
                model=model,
                tokens=tokens,
                flops=float(tokens * flops.training_flops_per_sequence(model) / model.seq_len),
                train={
                    "batch_size": 4,
                    "lr": 3e-3,
                    "seed": seed,
                    "log_every": 1,
                    "eval_batches": 2,
                    "steps_per_dispatch": 8,
                },
            )
        )
    return Plan(name="concurrency", runs=tuple(runs))


def comparable(rows):
    return {r["run_id"]: {k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows}


@pytest.mark.slow
def test_concurrent_and_sequential_sweeps_give_identical_rows(tmp_path):
    plan = tiny_real_plan()
    one = run_sweep(plan, tmp_path / "jobs1", jobs=1, log=None)
    two = run_sweep(plan, tmp_path / "jobs2", jobs=2, log=None)
    assert one.trained == two.trained == tuple(r.run_id for r in plan.runs)
    rows1 = comparable(read_results_table(tmp_path / "jobs1" / "results.csv"))
    rows2 = comparable(read_results_table(tmp_path / "jobs2" / "results.csv"))
    assert rows1 == rows2  # bitwise: every worker has a one-thread XLA backend
    losses = [rows1[r.run_id]["eval_loss"] for r in plan.runs]
    assert all(math.isfinite(x) for x in losses) and losses[0] != losses[1]  # the seeds differ
    # The training curves too, step by step.
    for run in plan.runs:
        curve1 = (tmp_path / "jobs1" / "runs" / run.run_id / "metrics.jsonl").read_text().splitlines()
        curve2 = (tmp_path / "jobs2" / "runs" / run.run_id / "metrics.jsonl").read_text().splitlines()

        def strip(lines):
            timing = ("step_time", "tokens_per_s", "mfu")
            return [{k: v for k, v in eval_json(line).items() if k not in timing} for line in lines]

        assert strip(curve1) == strip(curve2)


def eval_json(line: str) -> dict:
    import json

    return json.loads(line)


KILLED_SWEEP = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_sweep_runner import CountingTrainer, small_plan
    from chinchilla.sweep import run_sweep
    run_sweep(small_plan(), {out!r}, train_fn=PidTrainer(delay_s=0.03), jobs=2, log=None)
""")
PID_TRAINER = textwrap.dedent("""
    import os
    import time
    from test_sweep_runner import CountingTrainer

    class PidTrainer(CountingTrainer):
        def __call__(self, run, run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(os.path.join(str(run_dir), "pids.log"), "a") as handle:
                handle.write(f"{{os.getpid()}}\\n")
            time.sleep(0.25)  # a run takes a while, so that the kill lands mid-sweep (the synthetic one is instant)
            return super().__call__(run, run_dir)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with their parent on Linux only")
def test_killed_concurrent_sweep_resumes_without_duplicates(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_sweep_runner import CountingTrainer, calls, small_plan

    module = tmp_path / "pidtrainer.py"
    module.write_text(PID_TRAINER.format())
    out = tmp_path / "sweep"
    script = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\nfrom pidtrainer import PidTrainer\n"
        + KILLED_SWEEP.format(tests=str(ROOT / "tests"), out=str(out))
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(tmp_path)])}
    plan = small_plan()
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # wait until a few runs are finished, then kill the parent mid-sweep
            finished = [r.run_id for r in plan.runs if run_status(out / "runs" / r.run_id) == "finished"]
            if len(finished) >= 3:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the concurrent sweep did not finish three runs in 120 s")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    pids = {int(p) for f in out.glob("runs/*/pids.log") for p in f.read_text().split()}
    assert len(pids) >= 1 and process.pid not in pids  # the runs were trained in worker processes
    deadline = time.time() + 10
    while any(_alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)  # no orphan worker goes on training
    before = {r.run_id for r in plan.runs if run_status(out / "runs" / r.run_id) == "finished"}
    assert 3 <= len(before) < len(plan.runs)
    outcome = run_sweep(plan, out, train_fn=CountingTrainer(), jobs=2, log=None)
    assert set(outcome.skipped) == before
    assert set(outcome.trained) == {r.run_id for r in plan.runs} - before
    counts = calls(out)
    assert all(counts[run_id] == 1 for run_id in before)  # finished runs never trained again
    assert sum(1 for n in counts.values() if n == 2) <= 2  # at most the runs in flight when killed (2 jobs)
    rows = read_results_table(out / "results.csv")
    assert len(rows) == len(plan.runs) == len({r["run_id"] for r in rows})
    assert all(r["status"] == "finished" for r in rows)
    assert not list(out.rglob("*.tmp"))


def test_failures_in_workers_are_recorded(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_sweep_runner import CountingTrainer, small_plan

    plan = small_plan()
    bad = plan.runs[2].run_id
    outcome = run_sweep(plan, tmp_path, train_fn=CountingTrainer(fail={bad}), jobs=2, log=None)
    assert outcome.failed == (bad,)
    assert outcome.trained == tuple(r.run_id for r in plan.runs if r.run_id != bad)  # the plan's order
    assert run_status(tmp_path / "runs" / bad) == "failed"
    row = {r["run_id"]: r for r in read_results_table(tmp_path / "results.csv")}[bad]
    assert row["status"] == "failed" and "boom" in row["error"]


def test_jobs_values():
    assert resolve_jobs(None) is None
    assert resolve_jobs(3) == 3 and resolve_jobs("2") == 2
    assert resolve_jobs("auto") == usable_cores()  # the tests run on the CPU backend
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ValueError, match="jobs="):
            resolve_jobs(bad)


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or usable_cores() < 2 or not Path("/proc/self/task").is_dir(),
    reason="needs per-thread CPU affinity (Linux) and at least 2 CPUs",
)
def test_worker_threads_may_use_every_cpu():
    """A worker pins itself to one CPU to start XLA with a one-thread pool; afterwards every one of its threads
    (XLA's included) must be free to run on any CPU again, or all workers compete for the same core: with
    XLA's threads kept on the single CPU, 2 workers kept 1.06 of 2 cores busy."""
    script = textwrap.dedent("""
        import os
        from chinchilla.sweep.pool import one_thread_backend
        allowed = os.sched_getaffinity(0)
        one_thread_backend()
        masks = [os.sched_getaffinity(int(t)) for t in os.listdir("/proc/self/task")]
        print(len(masks), sum(m == allowed for m in masks))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    ).stdout.split()
    threads, free = map(int, out)
    assert threads > 1 and free == threads
