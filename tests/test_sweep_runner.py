"""The resumable runner, with a fast synthetic trainer: finished runs skipped, failures recorded, a SIGKILLed sweep
resumed with no duplicate or torn rows (workers sharing one directory: tests/test_sweep_workers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from chinchilla import zoo
from chinchilla.sweep import (
    assign_runs,
    collect_results,
    load_curves,
    plan_isoflop,
    plan_status,
    read_results_table,
    run_status,
    run_sweep,
)
from chinchilla.sweep.synthetic import SyntheticTrainer

ROOT = Path(__file__).resolve().parents[1]
CALLS = "calls.log"


def small_plan():
    return plan_isoflop((1e11, 3e11), zoo.ladder("tiny")[:4], hparams=lambda m, tokens: {"batch_size": 8, "lr": 1e-3})


class CountingTrainer(SyntheticTrainer):
    """Appends one line per call to the run's calls.log; raises for the run ids in ``fail``."""

    def __init__(self, fail=(), **kwargs):
        super().__init__(**kwargs)
        self.fail = set(fail)

    def __call__(self, run, run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / CALLS).open("a") as handle:
            handle.write("call\n")
        if run.run_id in self.fail:
            raise RuntimeError(f"boom in {run.run_id}")
        return super().__call__(run, run_dir)


def calls(sweep_dir: Path) -> Counter:
    return Counter({p.parent.name: len(p.read_text().splitlines()) for p in sweep_dir.glob(f"runs/*/{CALLS}")})


def test_finished_runs_are_skipped(tmp_path):
    plan = small_plan()
    first = run_sweep(plan, tmp_path, train_fn=CountingTrainer(), log=None)
    assert len(first.trained) == len(plan.runs) and not first.skipped
    second = run_sweep(plan, tmp_path, train_fn=CountingTrainer(), log=None)
    assert second.trained == () and len(second.skipped) == len(plan.runs)
    assert set(calls(tmp_path).values()) == {1}
    rows = read_results_table(tmp_path / "results.csv")
    assert sorted(r["run_id"] for r in rows) == sorted(r.run_id for r in plan.runs)
    assert all(r["status"] == "finished" and r["final_train_loss"] > 0 for r in rows)
    assert rows[0]["non_embedding_params"] < rows[0]["n_params"]
    assert len(load_curves(tmp_path)) == len(plan.runs)


def test_failed_run_is_recorded_and_the_sweep_continues(tmp_path):
    plan = small_plan()
    bad = plan.runs[1].run_id
    outcome = run_sweep(plan, tmp_path, train_fn=CountingTrainer(fail={bad}), log=None)
    assert outcome.failed == (bad,) and len(outcome.trained) == len(plan.runs) - 1
    assert run_status(tmp_path / "runs" / bad) == "failed"
    row = {r["run_id"]: r for r in collect_results(tmp_path)}[bad]
    assert row["status"] == "failed" and "boom" in row["error"]
    again = run_sweep(plan, tmp_path, train_fn=CountingTrainer(), log=None)
    assert again.trained == () and bad in again.skipped  # failures are not retried by default
    retried = run_sweep(plan, tmp_path, train_fn=CountingTrainer(), retry_failed=True, log=None)
    assert retried.trained == (bad,)
    assert plan_status(plan, tmp_path)["finished"] == [r.run_id for r in plan.runs]
    assert not (tmp_path / "runs" / bad / "failure.json").exists()


KILLED_SWEEP = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_sweep_runner import CountingTrainer, small_plan
    from chinchilla.sweep import run_sweep
    run_sweep(small_plan(), {out!r}, train_fn=CountingTrainer(delay_s=0.02), log=None)
""")


def test_killed_sweep_resumes_without_duplicates(tmp_path):
    plan = small_plan()
    script = KILLED_SWEEP.format(tests=str(ROOT / "tests"), out=str(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 60
    try:
        while time.time() < deadline:  # wait until a few runs are finished, then kill mid-run
            finished = [r.run_id for r in plan.runs if run_status(tmp_path / "runs" / r.run_id) == "finished"]
            if len(finished) >= 2:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the sweep did not finish two runs in 60 s")
        time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    before = {r.run_id for r in plan.runs if run_status(tmp_path / "runs" / r.run_id) == "finished"}
    assert 2 <= len(before) < len(plan.runs)
    outcome = run_sweep(plan, tmp_path, train_fn=CountingTrainer(), log=None)
    assert set(outcome.skipped) == before
    counts = calls(tmp_path)
    assert all(counts[run_id] == 1 for run_id in before)  # finished runs never trained again
    assert sum(1 for run_id, n in counts.items() if n == 2) <= 1  # at most the run that was killed
    rows = read_results_table(tmp_path / "results.csv")
    assert len(rows) == len(plan.runs) == len({r["run_id"] for r in rows})
    assert all(r["status"] == "finished" for r in rows)
    assert not list(tmp_path.rglob("*.tmp"))


def test_assign_runs_splits_the_plan_deterministically(tmp_path):
    """A planning aid only: workers sharing a directory claim runs as they go (tests/test_sweep_workers.py)."""
    plan = small_plan()
    shares = assign_runs(plan.runs, 3)
    assert shares == assign_runs(plan.runs, 3)
    ids = [r.run_id for share in shares for r in share]
    assert sorted(ids) == sorted(r.run_id for r in plan.runs)
    loads = [sum(r.flops for r in share) for share in shares]
    assert max(loads) <= 2.5 * min(loads)
    with pytest.raises(ValueError, match="worker=3"):
        run_sweep(plan, tmp_path, worker=3, num_workers=3)
