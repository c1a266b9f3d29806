"""A sweep directory is one experiment, and failures are said: a rerun with an edited
preset is refused in one line naming what changed, ``--extend`` adds runs and keeps the old ones (the report says
so), the report fits the plan's runs only and names any others; failed runs make the sweep exit non-zero with their
count and where the reasons are, and the report's console output names failed and missing runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chinchilla import cli, zoo
from chinchilla.analysis.report import AnalysisSettings, analyze
from chinchilla.sweep import plan_isoflop, run_sweep
from chinchilla.sweep.synthetic import SyntheticTrainer

PRESET_TEXT = """
from chinchilla import zoo
from chinchilla.fit.allocate import ChinchillaParams
from chinchilla.analysis.report import AnalysisSettings
from chinchilla.preset import Preset
from chinchilla.sweep.synthetic import SyntheticTrainer

SURFACE = ChinchillaParams(E=1.2, A=60.0, B=300.0, alpha=0.4, beta=0.35, source="test")
PRESET = Preset(
    name="mini", description="a small synthetic sweep", ladder=zoo.ladder("tiny"), budgets={budgets},
    hparams=lambda model, tokens: {{"batch_size": 8, "lr": {lr}}}, center=(1e12, 2.4e4, SURFACE.a),
    sizes_per_budget=5, convention="non_embedding", min_steps=100,
    analysis=AnalysisSettings(loss="final_train_loss", neighbours=2, n_resamples=0, approach3_resamples=0),
    trainer=SyntheticTrainer(surface=SURFACE, log_points=20, convention="non_embedding", fail_runs={fail}),
)
"""
FIVE = (1e11, 3e11, 1e12, 3e12, 1e13)


def write_preset(path: Path, *, budgets=FIVE, lr=0.01, fail=()) -> str:
    path.write_text(PRESET_TEXT.format(budgets=tuple(budgets), lr=lr, fail=tuple(fail)))
    return str(path)


def sweep(preset: str, out: Path, *extra: str) -> int:
    return cli.main(["sweep", "--preset", preset, "--out", str(out), "--jobs", "1", *extra])


def snapshot(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def small_plan(lr=0.01, budgets=(1e11, 3e11)):
    return plan_isoflop(budgets, zoo.ladder("tiny")[:4], hparams=lambda m, tokens: {"batch_size": 8, "lr": lr})


# ---- one experiment per directory ----


def test_an_edited_learning_rate_is_refused_in_one_line_and_changes_nothing(tmp_path, capsys):
    preset, out = write_preset(tmp_path / "mini.py"), tmp_path / "sweep"
    assert sweep(preset, out) == 0
    runs = len(json.loads((out / "plan.json").read_text())["runs"])
    before = snapshot(out)
    capsys.readouterr()
    write_preset(tmp_path / "mini.py", lr=0.02)  # the preset file edited between two invocations
    assert sweep(preset, out) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "plan.json holds another plan" in lines[0] and f"train.lr 0.01 -> 0.02 in {runs} runs" in lines[0]
    assert "--out" in lines[0]
    assert snapshot(out) == before  # nothing trained, nothing rewritten (preset.json neither)
    # --extend cannot change a run already planned either
    assert sweep(preset, out, "--extend") == 2
    assert "cannot change" in capsys.readouterr().err
    assert snapshot(out) == before
    # reproduce says the same
    assert cli.main(["reproduce", "--preset", preset, "--out", str(out), "--jobs", "1"]) == 2
    assert "train.lr 0.01 -> 0.02" in capsys.readouterr().err
    assert snapshot(out) == before


def test_a_narrowed_preset_is_refused_and_extend_adds_runs_and_keeps_the_old_ones(tmp_path, capsys):
    preset, out = write_preset(tmp_path / "mini.py", budgets=FIVE[:3]), tmp_path / "sweep"
    assert sweep(preset, out) == 0
    three = json.loads((out / "plan.json").read_text())
    finished = {p.parent.name: p.read_bytes() for p in out.glob("runs/*/summary.json")}
    assert len(finished) == len(three["runs"])
    # five budgets without --extend: refused, naming the new runs and the flag
    write_preset(tmp_path / "mini.py")
    capsys.readouterr()
    assert sweep(preset, out) == 2
    err = capsys.readouterr().err.strip()
    assert "new runs" in err and "--extend" in err and len(err.splitlines()) == 1
    # with --extend: the new runs only; every old run kept as it was
    assert sweep(preset, out, "--extend") == 0
    plan = json.loads((out / "plan.json").read_text())
    new = [r["run_id"] for r in plan["runs"] if r["run_id"] not in {x["run_id"] for x in three["runs"]}]
    assert new and len(plan["runs"]) == len(three["runs"]) + len(new)
    assert [p["added"] for p in plan["parts"]] == [len(three["runs"]), len(new)]
    assert {k: (out / "runs" / k / "summary.json").read_bytes() for k in finished} == finished
    # the original (3-budget) preset resumes the extended directory without --extend; a narrower one is refused
    write_preset(tmp_path / "mini.py", budgets=FIVE[:3])
    capsys.readouterr()
    assert sweep(preset, out) == 0
    assert "finished, skipped" in capsys.readouterr().out
    write_preset(tmp_path / "mini.py", budgets=FIVE[:2])
    assert sweep(preset, out) == 2
    assert "no longer planned" in capsys.readouterr().err
    # the report says the plan was extended, on the console and in report.md
    assert cli.main(["report", str(out), "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "extended (--extend)" in printed
    assert "extended (--extend)" in (out / "report.md").read_text()


def test_the_report_fits_the_plans_runs_only_and_names_the_others(tmp_path, capsys):
    """A directory swept before this check (or edited by hand) may hold runs of another plan: the report leaves
    them out of every fit and names them."""
    preset, out = write_preset(tmp_path / "mini.py"), tmp_path / "sweep"
    assert sweep(preset, out) == 0
    plan = json.loads((out / "plan.json").read_text())
    ids = [r["run_id"] for r in plan["runs"]]
    # a run trained at another lr (its run.json says so) and a run directory plan.json does not list
    changed = out / "runs" / ids[0] / "run.json"
    record = json.loads(changed.read_text())
    record["train"]["lr"] = 0.02
    changed.write_text(json.dumps(record))
    stray = out / "runs" / "isoflop-stray"
    shutil.copytree(out / "runs" / ids[1], stray)
    record = json.loads((stray / "run.json").read_text())
    record["run_id"] = "isoflop-stray"
    (stray / "run.json").write_text(json.dumps(record))
    analysis = analyze(out, AnalysisSettings(n_resamples=0, approach3_resamples=0))
    fitted = {r["run_id"] for r in analysis.rows}
    assert ids[0] not in fitted and "isoflop-stray" not in fitted and len(fitted) == len(ids) - 1
    assert all(c.run not in (ids[0], "isoflop-stray") for c in analysis.curves["total"])
    capsys.readouterr()
    assert cli.main(["report", str(out), "--no-figures", "--resamples", "0"]) == 0
    printed = capsys.readouterr().out
    assert "not in the sweep's plan" in printed and "2 run directories" in printed
    report = (out / "report.md").read_text()
    assert "isoflop-stray" in report and "train.lr 0.02 (plan: 0.01)" in report
    summary = json.loads((out / "summary.json").read_text())
    assert {o["run_id"] for o in summary["outside_plan"]} == {ids[0], "isoflop-stray"}


def test_a_second_head_to_head_at_another_budget_is_refused_naming_both(tmp_path, capsys):
    preset, out = write_preset(tmp_path / "mini.py"), tmp_path / "sweep"
    assert sweep(preset, out) == 0
    assert cli.main(["sweep", "--preset", preset, "--out", str(out), "--head-to-head", "3e13"]) == 0
    before = snapshot(out / "headtohead")
    capsys.readouterr()
    assert cli.main(["sweep", "--preset", preset, "--out", str(out), "--head-to-head", "1e14"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "holds the head-to-head at 3e+13 FLOPs, not at 1e+14" in lines[0], lines
    assert snapshot(out / "headtohead") == before


def test_fingerprint_and_adopt_plan(tmp_path):
    from chinchilla.sweep.identity import PlanChangedError, adopt_plan, fingerprint

    plan = small_plan()
    assert fingerprint(plan) == fingerprint(small_plan()) != fingerprint(small_plan(lr=0.02))
    out = tmp_path / "sweep"
    assert adopt_plan(plan, out) == plan
    assert json.loads((out / "plan.json").read_text())["fingerprint"] == fingerprint(plan)
    with pytest.raises(PlanChangedError, match=r"train\.lr 0\.01 -> 0\.02 in \d+ runs"):
        adopt_plan(small_plan(lr=0.02), out, extend=True)
    with pytest.raises(PlanChangedError, match="--extend"):
        run_sweep(small_plan(budgets=(1e11, 3e11, 1e12)), out, train_fn=SyntheticTrainer(), log=None)
    # an older plan.json (no fingerprint) is the same plan: resumed, and its fingerprint recorded
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "plan.json").write_text(plan.to_json())
    assert adopt_plan(small_plan(), legacy) == plan
    assert json.loads((legacy / "plan.json").read_text())["fingerprint"] == fingerprint(plan)


# ---- failures are said, and the exit status says them ----


def test_a_sweep_whose_runs_failed_exits_non_zero_with_the_count_and_where(tmp_path, capsys):
    preset, out = write_preset(tmp_path / "mini.py", fail=("*",)), tmp_path / "sweep"
    assert sweep(preset, out) == 1
    runs = len(json.loads((out / "plan.json").read_text())["runs"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("chinchilla sweep: error: ") and f"{runs} of {runs} runs failed" in err[-1]
    assert "results.csv" in err[-1] and "failure.json" in err[-1] and "--retry-failed" in err[-1]
    assert "synthetic failure" in err[-1]  # the first run's reason
    # a rerun (every run skipped as failed) still says so
    assert sweep(preset, out) == 1
    assert f"{runs} of {runs} runs failed" in capsys.readouterr().err
    # reproduce: the report is written, and the exit says the failures
    assert cli.main(["reproduce", "--preset", preset, "--out", str(out), "--jobs", "1"]) == 1
    captured = capsys.readouterr()
    assert f"{runs} of {runs} runs failed" in captured.err
    assert f"not in the fits: {runs} failed" in captured.out


def test_the_report_console_names_failed_and_missing_runs(tmp_path, capsys):
    preset, out = write_preset(tmp_path / "mini.py"), tmp_path / "sweep"
    assert sweep(preset, out) == 0
    ids = [r["run_id"] for r in json.loads((out / "plan.json").read_text())["runs"]]
    shutil.rmtree(out / "runs" / ids[0])  # missing: planned, no run directory
    (out / "runs" / ids[1] / "summary.json").write_text('{"status": "failed", "reason": "non-finite loss at 7"}')
    capsys.readouterr()
    assert cli.main(["report", str(out), "--no-figures", "--resamples", "0"]) == 0
    printed = capsys.readouterr().out
    assert f"runs: {len(ids) - 2} of {len(ids)} finished; not in the fits: 1 failed, 1 missing" in printed
    assert f"{ids[0]}: missing" in printed and f"{ids[1]}: failed: non-finite loss at 7" in printed
