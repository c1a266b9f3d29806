"""Several workers on one sweep directory claim runs one at a time through the run lock: every run is trained
exactly once whatever the workers' count flags say, whenever they start; a run held by a worker that dies is claimed
by the next worker that reaches it; SLURM array and Kubernetes indexed-job variables name the worker."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chinchilla import cli, runlock
from chinchilla.sweep import read_results_table, run_status, run_sweep
from chinchilla.sweep.runner import _failure_mark, run_one
from chinchilla.sweep.workers import worker_identity

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_sweep_runner import CountingTrainer, calls, small_plan  # noqa: E402

TIMING_COLUMNS = {"wall_time_s"}


def comparable(path: Path) -> dict:
    return {r["run_id"]: {k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in read_results_table(path)}


def test_a_mix_of_worker_counts_trains_every_run_once(tmp_path):
    """`--worker 0 --num-workers 2` and `--worker 1 --num-workers 3` claim runs, not static shares: with static
    shares the runs of the shares neither held would never be trained (11 of the synthetic preset's 35), both exiting
    0."""
    plan = small_plan()
    first = run_sweep(plan, tmp_path, train_fn=CountingTrainer(), worker=0, num_workers=2, log=None)
    second = run_sweep(plan, tmp_path, train_fn=CountingTrainer(), worker=1, num_workers=3, log=None)
    assert set(first.trained) | set(second.trained) == {r.run_id for r in plan.runs}
    assert calls(tmp_path) == {r.run_id: 1 for r in plan.runs}
    assert all(row["status"] == "finished" for row in read_results_table(tmp_path / "results.csv"))


WORKER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from test_sweep_runner import CountingTrainer, small_plan
    from chinchilla.sweep import run_sweep
    worker = int(sys.argv[1])
    outcome = run_sweep(small_plan(), {out!r}, train_fn=CountingTrainer(delay_s=0.02), worker=worker, num_workers=3,
                        log=print)
    print(json.dumps(outcome.to_dict()))
""")


def _finished(out: Path, plan) -> int:
    return sum(run_status(out / "runs" / r.run_id) == "finished" for r in plan.runs)


def test_three_worker_processes_started_at_different_times_train_each_run_once(tmp_path):
    plan = small_plan()
    alone = tmp_path / "alone"
    run_sweep(plan, alone, train_fn=CountingTrainer(), log=None)
    out = tmp_path / "shared"
    script = WORKER.format(tests=str(ROOT / "tests"), out=str(out))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "JAX_NUM_PROCESSES", "JAX_COORDINATOR_ADDRESS"):
        env.pop(name, None)
    processes = []
    try:
        for worker in range(3):  # each starts once the sweep has moved on: after 0, then 1, then 2 finished runs
            deadline = time.time() + 60
            while _finished(out, plan) < worker and time.time() < deadline:
                time.sleep(0.01)
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", script, str(worker)],
                    env=env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
        logs = [process.communicate(timeout=120)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [p.returncode for p in processes] == [0, 0, 0], logs
    outcomes = [json.loads(log.strip().splitlines()[-1]) for log in logs]
    trained = [run_id for outcome in outcomes for run_id in outcome["trained"]]
    assert sorted(trained) == sorted(r.run_id for r in plan.runs)  # every run, by exactly one worker
    assert calls(out) == {r.run_id: 1 for r in plan.runs}  # and no trainer was called twice for a run
    assert sum(bool(outcome["trained"]) for outcome in outcomes) >= 2, logs  # the work was shared
    assert all(not outcome["failed"] for outcome in outcomes)
    assert comparable(out / "results.csv") == comparable(alone / "results.csv")  # the same as one worker
    assert "worker 2 of 3: [" in logs[1]


def test_a_run_held_when_first_reached_is_claimed_once_its_holder_lets_go(tmp_path):
    """A worker that finds a run held tries it again after its walk: a holder that died (its lock released) leaves
    the run to it, rather than this worker skipping it for good."""
    plan = small_plan()
    busy, last = plan.runs[1].run_id, plan.runs[-1].run_id
    holder = contextlib.ExitStack()
    holder.enter_context(runlock.hold(tmp_path / "runs" / busy))  # another process's claim, as far as run_one sees

    class ReleasingTrainer(CountingTrainer):
        def __call__(self, run, run_dir):
            if run.run_id == last:
                holder.close()  # the holder dies while this worker trains its last run
            return super().__call__(run, run_dir)

    outcome = run_sweep(plan, tmp_path, train_fn=ReleasingTrainer(), log=None)
    assert busy in outcome.trained and outcome.held_elsewhere == () and not outcome.skipped
    assert calls(tmp_path) == {r.run_id: 1 for r in plan.runs}


def test_a_worker_stops_when_every_run_left_is_held_and_says_so(tmp_path):
    plan = small_plan()
    busy = plan.runs[2].run_id
    lines = []
    with runlock.hold(tmp_path / "runs" / busy):
        outcome = run_sweep(plan, tmp_path, train_fn=CountingTrainer(), log=lines.append)
    assert outcome.held_elsewhere == (busy,) and busy in outcome.skipped and busy not in outcome.trained
    assert any(
        line.startswith("nothing left to claim: 1 run(s) held by other workers") and busy in line for line in lines
    ), lines
    assert run_status(tmp_path / "runs" / busy) == "pending"


def test_a_run_finished_by_another_worker_after_the_scan_is_not_trained_again(tmp_path):
    plan = small_plan()
    run = plan.runs[0]
    CountingTrainer()(run, tmp_path / "runs" / run.run_id)  # another worker finished it after this one looked
    result = run_one(CountingTrainer(), run, tmp_path)
    assert not result.trained and not result.claimed and "finished by another worker" in result.message
    assert calls(tmp_path)[run.run_id] == 1


def test_a_failed_run_is_retried_by_one_worker_only(tmp_path):
    plan = small_plan()
    bad = plan.runs[0]
    run_dir = tmp_path / "runs" / bad.run_id
    run_sweep(plan, tmp_path, train_fn=CountingTrainer(fail={bad.run_id}), log=None)
    seen = _failure_mark(run_dir)  # a second worker's scan: the run has failed
    again = run_sweep(plan, tmp_path, train_fn=CountingTrainer(fail={bad.run_id}), retry_failed=True, log=None)
    assert again.failed == (bad.run_id,)  # the first worker retried it, and it failed again
    result = run_one(CountingTrainer(), bad, tmp_path, retry_failed=True, failure_mark=seen)
    assert not result.claimed and "failed under another worker" in result.message  # not a second retry
    assert calls(tmp_path)[bad.run_id] == 2
    result = run_one(CountingTrainer(), bad, tmp_path, retry_failed=True, failure_mark=_failure_mark(run_dir))
    assert result.trained and calls(tmp_path)[bad.run_id] == 3


# -- who a worker is ----------------------------------------------------------------------------------------------


def test_worker_identity_reads_slurm_arrays_and_kubernetes_indexed_jobs():
    assert worker_identity(None, None, {}) == (0, 1, "default")
    assert worker_identity(2, 5, {"SLURM_ARRAY_TASK_ID": "1"})[:2] == (2, 5)  # the flags win
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}
    assert worker_identity(None, None, slurm) == (3, 4, "SLURM_ARRAY_TASK_ID=3 of SLURM_ARRAY_TASK_COUNT=4")
    assert worker_identity(None, None, {**slurm, "SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1"})[:2] == (3, 4)
    assert worker_identity(None, 8, slurm)[:2] == (3, 8)
    assert worker_identity(None, 3, {"JOB_COMPLETION_INDEX": "2"})[:2] == (2, 3)


@pytest.mark.parametrize(
    "worker, num_workers, env, message",
    [
        (
            None,
            None,
            {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"},
            "SLURM_ARRAY_TASK_ID='x' is not a whole",
        ),
        (None, None, {"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT is not; give --num-workers"),
        (
            None,
            None,
            {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "2"},
            r"worker 5 \(from SLURM_ARRAY_TASK_ID",
        ),
        (None, None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "0"}, "SLURM_ARRAY_TASK_COUNT=0 must be"),
        (None, None, {"JOB_COMPLETION_INDEX": "2"}, "give --num-workers N, the indexed job's completions"),
        (None, 2, {"JOB_COMPLETION_INDEX": "-1"}, "JOB_COMPLETION_INDEX=-1 must be at least 0"),
        (3, 3, {}, r"worker 3 \(from --worker/--num-workers\) must lie in \[0, 3\)"),
    ],
)
def test_bad_worker_identities_are_one_line_errors(worker, num_workers, env, message):
    with pytest.raises(ValueError, match=message) as error:
        worker_identity(worker, num_workers, env)
    assert "\n" not in str(error.value)


def test_the_sweep_command_names_the_worker_from_a_slurm_array(tmp_path, monkeypatch, capsys):
    for name in ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    out = tmp_path / "sweep"
    assert cli.main(["sweep", "--preset", "synthetic", "--out", str(out), "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "worker 3 of 3 (SLURM_ARRAY_TASK_ID=2 of SLURM_ARRAY_TASK_COUNT=3)" in printed
    assert "worker 3 of 3: 35 runs on 1 worker process (one XLA thread each)" in printed
    rows = read_results_table(out / "results.csv")
    assert len(rows) == 35 and all(row["status"] == "finished" for row in rows)  # worker 3 of 3 trained them all
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    assert cli.main(["sweep", "--preset", "synthetic", "--out", str(out)]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("must lie in [0, 3): the worker count is --num-workers, else SLURM_ARRAY_TASK_COUNT")
    )


GROUP_WORKER = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests!r})
    from test_sweep_runner import CountingTrainer, small_plan
    from chinchilla.sweep import run_sweep

    class GroupTrainer(CountingTrainer):
        '''Every process of the job meets per run (as train_run's collectives do); process 0 writes the run.'''
        def __call__(self, run, run_dir):
            import jax
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("start " + run.run_id)
            with open(os.path.join({out!r}, f"group-{{jax.process_index()}}.log"), "a") as handle:
                handle.write(run.run_id + "\\n")
            summary = super().__call__(run, run_dir) if jax.process_index() == 0 else {{}}
            multihost_utils.sync_global_devices("end " + run.run_id)  # train_run: the others wait for summary.json
            return summary

    outcome = run_sweep(small_plan(), {out!r}, train_fn=GroupTrainer(delay_s=0.01), log=print)
    print(json.dumps(outcome.to_dict()))
""")


@pytest.mark.slow
def test_the_processes_of_one_multi_host_job_claim_as_one_worker_beside_another_worker(tmp_path):
    """Two JAX processes (one job: a slice's hosts) walk the plan together, process 0 claiming and telling the other
    which run; a single-process worker shares the directory. Every run is trained once; both processes of the job
    trained the same runs in the same order."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_multihost import TRIO, _free_port

    plan = small_plan()
    out = tmp_path / "shared"
    out.mkdir()
    port = _free_port()
    base = {key: value for key, value in os.environ.items() if key not in TRIO}
    base.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", JAX_ENABLE_COMPILATION_CACHE="false")
    group = GROUP_WORKER.format(tests=str(ROOT / "tests"), out=str(out))
    processes = []
    try:
        for rank in range(2):
            env = {
                **base,
                "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": str(rank),
            }
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", group], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
            )
        deadline = time.time() + 120
        while _finished(out, plan) < 1 and time.time() < deadline and processes[0].poll() is None:
            time.sleep(0.01)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER.format(tests=str(ROOT / "tests"), out=str(out)), "1"],
                env=base,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
        logs = [process.communicate(timeout=300)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [p.returncode for p in processes] == [0, 0, 0], logs
    outcomes = [json.loads(log.strip().splitlines()[-1]) for log in logs]
    assert outcomes[0]["trained"] == outcomes[1]["trained"] and outcomes[0]["trained"]  # one worker, two processes
    trained = outcomes[0]["trained"] + outcomes[2]["trained"]
    assert sorted(trained) == sorted(r.run_id for r in plan.runs)
    assert calls(out) == {r.run_id: 1 for r in plan.runs}
    order = [(out / f"group-{rank}.log").read_text().split() for rank in range(2)]
    assert order[0] == order[1] and sorted(order[0]) == sorted(outcomes[0]["trained"])
    assert "[1/8]" not in logs[1]  # process 1 says nothing: process 0 speaks for the job


def test_jobs_is_refused_in_one_line_when_several_jax_processes_train_each_run(tmp_path, monkeypatch):
    from chinchilla.sweep import runner

    monkeypatch.setattr(runner, "process_group", lambda: (0, 2))
    with pytest.raises(ValueError, match="jobs=2: this process is one of 2 JAX processes") as error:
        run_sweep(small_plan(), tmp_path, train_fn=CountingTrainer(), jobs=2, log=None)
    assert "\n" not in str(error.value) and not calls(tmp_path)
