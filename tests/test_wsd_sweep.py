"""Sweeps of WSD branches that share trunks (``share_trunks``): the runner trains trunks before their
branches and starts a branch as soon as its trunk has saved the branch point (one process and ``jobs=2``); a branch
whose trunk is not ready is deferred, never failed, and one whose trunk failed is failed with the trunk's reason; a
sweep SIGKILLed mid-trunk and mid-branch resumes to the uninterrupted losses with no duplicate row. A fake trainer
that writes branch-point checkpoints (and sleeps) stands in for training where the losses do not matter."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from chinchilla import flops, runlock, zoo
from chinchilla.sweep import Plan, PlannedRun, read_results_table, run_status, run_sweep
from chinchilla.sweep.plan import share_trunks
from chinchilla.sweep.runner import BRANCH_POINT_FILES, BRANCH_POINTS, branch_point, branch_point_saved
from chinchilla.sweep.synthetic import SyntheticTrainer

ROOT = Path(__file__).resolve().parents[1]
EVENTS = "events.log"


def family_plan(lengths=(40, 60, 80), seeds=(0,), model_name="tiny-00004k", seq_len=None, batch=8, **train):
    """Runs of one model that differ only in length (plus a second model's single run), as share_trunks takes them."""
    model = zoo.get_model(model_name)
    if seq_len:
        model = dataclasses.replace(model, seq_len=seq_len)
    runs = []
    for seed in seeds:
        for steps in lengths:
            tokens = steps * batch * model.seq_len
            runs.append(
                PlannedRun(
                    run_id=f"isoflop-{model.name}-{steps}-s{seed}",
                    group="isoflop",
                    model=model,
                    tokens=tokens,
                    flops=float(steps * batch * flops.training_flops_per_sequence(model)),
                    budget=float(steps),
                    train={
                        "batch_size": batch,
                        "lr": 3e-3 * (40 / steps) ** 0.25,
                        "warmup_fraction": 0.1,
                        "seed": seed,
                        **train,
                    },
                )
            )
    return Plan(name="family", runs=tuple(runs))


@dataclasses.dataclass
class TrunkTrainer(SyntheticTrainer):
    """A synthetic trainer that knows trunks: a trunk writes a complete-looking checkpoint at each save step (the
    files ``branch_point_saved`` looks for), ``step_s`` seconds apart; a branch refuses to start before its trunk's
    checkpoint exists. Every start and save is appended to ``<sweep>/events.log`` with the time."""

    step_s: float = 0.0
    fail: tuple[str, ...] = ()

    def __call__(self, run, run_dir):
        sweep = Path(run_dir).parent.parent

        def log(what):
            with open(sweep / EVENTS, "a") as events:
                events.write(f"{time.time():.6f} {what}\n")

        log(f"start {run.run_id}")
        point = branch_point(run)
        if point and not branch_point_saved(Path(sweep) / "runs" / point[0], point[1]):
            raise RuntimeError(f"{run.run_id} started before {point[0]} saved step {point[1]}")
        if run.run_id in self.fail:
            raise RuntimeError(f"boom in {run.run_id}")
        for step in run.train.get("save_steps", ()):
            time.sleep(self.step_s)
            for name in BRANCH_POINT_FILES:
                path = Path(run_dir) / BRANCH_POINTS / str(step) / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}")
            log(f"saved {run.run_id}:{step}")
        return super().__call__(run, run_dir)


def events(sweep: Path) -> list[tuple[float, str, str]]:
    lines = (sweep / EVENTS).read_text().splitlines()
    return [(float(t), kind, what) for t, kind, what in (line.split(" ", 2) for line in lines)]


@pytest.mark.parametrize("jobs", [None, 2])
def test_trunks_train_before_their_branches_and_branches_start_at_their_checkpoint(tmp_path, jobs):
    plan = share_trunks(family_plan(lengths=(40, 80, 120, 160), seeds=(0, 1)))
    trunks = [r.run_id for r in plan.runs if "trunk" in r.flags]
    assert len(trunks) == 2
    outcome = run_sweep(plan, tmp_path, train_fn=TrunkTrainer(step_s=0.3), jobs=jobs, log=None)
    assert set(outcome.trained) == {r.run_id for r in plan.runs} and not outcome.failed and not outcome.waiting
    log = events(tmp_path)
    started = {what: t for t, kind, what in log if kind == "start"}
    saved = {what: t for t, kind, what in log if kind == "saved"}
    for run in plan.runs:
        point = branch_point(run)
        if point:  # never before its checkpoint (the trainer would have raised)
            assert started[run.run_id] >= saved[f"{point[0]}:{point[1]}"]
    rows = read_results_table(tmp_path / "results.csv")
    assert len(rows) == len(plan.runs) and all(r["status"] == "finished" for r in rows)


def test_a_branch_whose_trunk_failed_is_failed_with_the_trunks_reason(tmp_path):
    plan = share_trunks(family_plan())
    trunk = next(r.run_id for r in plan.runs if "trunk" in r.flags)
    outcome = run_sweep(plan, tmp_path, train_fn=TrunkTrainer(fail=(trunk,)), log=None)
    branches = [r.run_id for r in plan.runs if r.trunk == trunk]
    assert set(outcome.failed) == {trunk, *branches} and not outcome.trained
    rows = {r["run_id"]: r for r in read_results_table(tmp_path / "results.csv")}
    for branch in branches:
        assert rows[branch]["status"] == "failed"
        assert rows[branch]["error"] == f"trunk {trunk} failed: RuntimeError: boom in {trunk}"
    # fixed and retried: the trunk first, then its branches
    again = run_sweep(plan, tmp_path, train_fn=TrunkTrainer(), retry_failed=True, jobs=2, log=None)
    assert set(again.trained) == {r.run_id for r in plan.runs} and not again.failed


def test_a_branch_waits_for_a_trunk_another_worker_holds_and_is_not_failed(tmp_path):
    plan = share_trunks(family_plan())
    trunk = next(r.run_id for r in plan.runs if "trunk" in r.flags)
    branches = {r.run_id for r in plan.runs if r.trunk == trunk}
    lines = []
    with runlock.hold(tmp_path / "runs" / trunk):  # another worker trains the trunk
        outcome = run_sweep(plan, tmp_path, train_fn=TrunkTrainer(), log=lines.append)
        pooled = run_sweep(plan, tmp_path, train_fn=TrunkTrainer(), jobs=2, log=None)
    for result in (outcome, pooled):
        assert not result.failed and result.held_elsewhere == (trunk,) and set(result.waiting) == branches
    assert all(run_status(tmp_path / "runs" / b) == "pending" for b in branches)
    assert any(
        "branch(es) wait for their trunk's checkpoint" in line and f"trunk {trunk} has not saved step" in line
        for line in lines
    ), lines
    done = run_sweep(plan, tmp_path, train_fn=TrunkTrainer(), log=None)  # the holder is gone
    assert set(done.trained) == {trunk, *branches}


KILLING_SWEEP = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from chinchilla import checkpoint, runfiles
    from chinchilla.sweep import run_sweep
    from test_wsd_sweep import real_plan

    # every save complete before training goes on: which checkpoints and branch points a kill leaves behind (hence
    # which branch the next invocation trains first) must not depend on how fast the machine writes them
    save = checkpoint.Checkpointer.save
    def save_and_wait(self, *args, **kwargs):
        save(self, *args, **kwargs)
        self.wait()
    checkpoint.Checkpointer.save = save_and_wait

    append = runfiles.append_jsonl

    def append_then_die(path, rows):  # SIGKILL right after run {victim!r} logged step {step}
        append(path, rows)
        if {victim!r} in str(path) and any(row["step"] >= {step} for row in rows):
            os.kill(os.getpid(), signal.SIGKILL)

    runfiles.append_jsonl = append_then_die
    run_sweep(real_plan(), {out!r}, log=None)
""")


def real_plan() -> Plan:
    """A trunk of tiny-00004k (context 32, batch 4) with branches of 30, 45 and 60 steps (from steps 24, 36, 48),
    checkpoints every 8 steps."""
    return share_trunks(
        family_plan(
            lengths=(30, 45, 60),
            seq_len=32,
            batch=4,
            log_every=1,
            eval_batches=2,
            checkpoint_every=8,
            steps_per_dispatch=4,
            dataset="embedded",
        )
    )


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_sweep_killed_mid_trunk_and_mid_branch_resumes_to_the_uninterrupted_losses(tmp_path):
    plan = real_plan()
    trunk = next(r for r in plan.runs if "trunk" in r.flags)
    branches = [r for r in plan.runs if r.trunk == trunk.run_id]
    assert trunk.train["save_steps"] == [24, 36, 48]
    reference = tmp_path / "uninterrupted"
    run_sweep(plan, reference, log=None)
    out = tmp_path / "killed"
    # a clean environment: no variable another test left behind (SLURM_*, CHINCHILLA_*) changes what the sweep does
    env = {
        key: os.environ[key] for key in ("PATH", "HOME", "TMPDIR", "JAX_PLATFORMS", "XLA_FLAGS") if key in os.environ
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    first, second = sorted(branches, key=lambda r: r.tokens)[:2]
    # mid-trunk (past its checkpoint at 40), then mid-branch before its own first checkpoint (it branches again),
    # then mid-branch after one (it resumes from it)
    for victim, step in ((trunk.run_id, 43), (first.run_id, 27), (second.run_id, 42)):
        script = KILLING_SWEEP.format(tests=str(ROOT / "tests"), victim=victim, step=step, out=str(out))
        process = subprocess.run([sys.executable, "-c", script], env=env, timeout=300)
        assert process.returncode == -signal.SIGKILL, (victim, process.returncode)
        assert run_status(out / "runs" / victim) == "pending"
    outcome = run_sweep(plan, out, log=None)
    assert not outcome.failed
    for run in [trunk] + branches:
        got, expected = _rows(out / "runs" / run.run_id), _rows(reference / "runs" / run.run_id)
        steps = run.tokens // (4 * 32)
        assert [r["step"] for r in got] == list(range(1, steps + 1)), run.run_id  # each step once: no duplicate
        np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in expected], rtol=0, atol=1e-6)
        assert [r.get("eval_loss") for r in got][-1] == pytest.approx(expected[-1]["eval_loss"], abs=1e-6)
    rows = read_results_table(out / "results.csv")
    assert len(rows) == len(plan.runs) == len({r["run_id"] for r in rows})
    assert all(r["status"] == "finished" for r in rows)


def test_a_wsd_preset_plans_whole_runs_costliest_first_then_branches():
    """Trunks and single runs (families of one length) train from step 0: the costliest go first, so that no long
    run is left alone at the end (the first measured tiny_cpu_wsd sweep ended on its two single runs); then the
    branches, cheapest first."""
    from chinchilla.preset import load_preset

    plan = load_preset("tiny_cpu_wsd").plan()
    kinds = ["branch" if r.trunk else "whole" for r in plan.runs]
    whole = kinds.count("whole")
    assert kinds == ["whole"] * whole + ["branch"] * (len(kinds) - whole)
    singles = [r for r in plan.runs[:whole] if "trunk" not in r.flags]
    assert singles and whole > len(singles)
    assert [r.flops for r in plan.runs[:whole]] == sorted((r.flops for r in plan.runs[:whole]), reverse=True)
    assert [r.flops for r in plan.runs[whole:]] == sorted(r.flops for r in plan.runs[whole:])
