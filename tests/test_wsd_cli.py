"""WSD on the command line and in the report: `train --schedule wsd ... --init-from RUN[:STEP]` (made
absolute), recorded in config.json and summary.json; `sweep`/`reproduce --schedule wsd`; `--plan-only` with trunks,
branch points and spent vs nominal FLOPs (and `--json`'s spent_flops); the analysis leaves trunks out and states the
schedule; `--compare-schedules` puts both schedules side by side. Synthetic runs where no training is needed."""

from __future__ import annotations

import json

import pytest

from chinchilla import cli
from chinchilla.preset import load_preset, with_schedule
from chinchilla.reproduce import reproduce
from chinchilla.studies.schedules import compare_schedules
from chinchilla.sweep import collect_results


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_train_flags_make_a_trunk_and_a_branch_recorded_in_config_and_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    common = [
        "--model",
        "tiny-00004k",
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--log-every",
        "1",
        "--steps-per-dispatch",
        "4",
        "--schedule",
        "wsd",
        "--warmup-tokens",
        str(2 * 4 * 32),
        "--quiet",
        "--json",
    ]
    assert (
        cli.main(
            [
                "train",
                *common,
                "--tokens",
                str(16 * 4 * 32),
                "--cooldown-fraction",
                "0",
                "--save-steps",
                "8,12",
                "--out",
                "trunk",
            ]
        )
        == 0
    )
    trunk = _json_out(capsys)
    assert trunk["schedule"] == "wsd" and trunk["cooldown_fraction"] == 0.0
    assert sorted(p.name for p in (tmp_path / "trunk" / "branch_points").iterdir()) == ["12", "8"]
    assert (
        cli.main(
            [
                "train",
                *common,
                "--tokens",
                str(10 * 4 * 32),
                "--cooldown-shape",
                "linear",
                "--init-from",
                "trunk:8",
                "--out",
                "branch",
            ]
        )
        == 0
    )
    branch = _json_out(capsys)
    config = json.loads((tmp_path / "branch" / "config.json").read_text())
    assert config["init_from"] == f"{tmp_path / 'trunk'}:8"  # absolute against the working directory
    assert (config["schedule"], config["cooldown_fraction"], config["cooldown_shape"]) == ("wsd", 0.2, "linear")
    assert branch["schedule"] == "wsd" and branch["init_from"] == config["init_from"] and branch["steps"] == 10
    rows = [json.loads(line) for line in (tmp_path / "branch" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 11))  # the trunk's prefix, then its own cooldown
    assert (
        cli.main(
            [
                "train",
                "--model",
                "tiny-00004k",
                "--tokens",
                "4096",
                "--out",
                "cosine",
                "--quiet",
                "--seq-len",
                "32",
                "--batch-size",
                "4",
                "--json",
            ]
        )
        == 0
    )
    assert _json_out(capsys)["schedule"] == "cosine"


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--model", "tiny-00004k", "--tokens", "4096", "--out", "x", "--cooldown-fraction", "0.1"],
            "--cooldown-fraction would be ignored: the cosine schedule has no cooldown; add --schedule wsd",
        ),
        (
            ["train", "--model", "tiny-00004k", "--tokens", "4096", "--out", "x", "--save-steps", "a,b"],
            "--save-steps='a,b' must be whole numbers separated by commas",
        ),
        (
            ["sweep", "--preset", "tiny_cpu", "--plan-only", "--cooldown-shape", "linear"],
            "--cooldown-shape would be ignored: preset 'tiny_cpu' trains cosine schedules here; give --schedule wsd",
        ),
        (
            ["reproduce", "--preset", "tiny_cpu", "--out", "x", "--compare-schedules"],
            "--compare-schedules compares a wsd preset with its cosine twin",
        ),
        (["reproduce", "--preset", "tiny_cpu_wsd", "--out", "x", "--cosine-dir", "y"], "--cosine-dir would be ignored"),
    ],
)
def test_schedule_flags_refuse_what_they_would_ignore_in_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_plan_only_shows_trunks_branch_points_and_spent_flops(capsys):
    assert cli.main(["sweep", "--preset", "tiny_cpu", "--schedule", "wsd", "--plan-only", "--json"]) == 0
    data = _json_out(capsys)
    plan = with_schedule(load_preset("tiny_cpu"), "wsd").plan()
    cosine = load_preset("tiny_cpu").plan()
    assert data["total_flops"] == cosine.total_flops and data["spent_flops"] == plan.spent_flops
    assert data["spent_flops"] < 0.65 * data["total_flops"]
    trunks = [r for r in data["runs"] if r["flags"] == "trunk"]
    assert len(trunks) == sum("trunk" in r.flags for r in plan.runs) > 0
    branch = next(r for r in data["runs"] if r["trunk"])
    assert {"model", "tokens", "branch_point", "spent_flops", "schedule"} <= set(branch)
    assert branch["spent_flops"] < branch["flops"] and branch["schedule"] == "wsd"
    assert sum(r["spent_flops"] for r in data["runs"]) == pytest.approx(data["spent_flops"])
    assert cli.main(["sweep", "--preset", "tiny_cpu_wsd", "--plan-only"]) == 0
    text = capsys.readouterr().out
    assert f"branch off {len(trunks)} shared trunks; spent {plan.spent_flops:.3g} FLOPs" in text
    assert "branch points at steps" in text and " step " in text


def test_the_analysis_leaves_trunks_out_and_states_the_schedule(tmp_path):
    preset = with_schedule(load_preset("synthetic"), "wsd")
    plan = preset.plan()
    trunks = {r.run_id for r in plan.runs if "trunk" in r.flags}
    summary = reproduce(preset, tmp_path, log=None)
    assert {r["run_id"] for r in collect_results(tmp_path) if r["status"] == "finished"} >= trunks  # trained
    assert summary["approach3"]["n_runs"] == len(plan.runs) - len(trunks)  # but not fitted
    assert summary["schedule"]["schedule"] == "wsd" and summary["schedule"]["trunks"] == len(trunks)
    assert summary["schedule"]["spent_flops"] == plan.spent_flops
    assert summary["schedule"]["nominal_flops"] == plan.total_flops
    assert summary["total_flops"] == pytest.approx(plan.total_flops)  # the fitted runs: no trunk counted
    report = (tmp_path / "report.md").read_text()
    assert f"The plan spends {plan.spent_flops:.3g} FLOPs, each trunk once, for {plan.total_flops:.3g}" in report
    assert "Trunks are left out of Approaches 1-3" in report


@pytest.mark.slow
def test_compare_schedules_puts_both_table2s_and_the_differences_side_by_side(tmp_path, capsys):
    cosine_dir = tmp_path / "cosine"
    reproduce(load_preset("synthetic"), cosine_dir, log=None)  # an existing cosine sweep is reused
    assert (
        cli.main(
            [
                "reproduce",
                "--preset",
                "synthetic",
                "--schedule",
                "wsd",
                "--out",
                str(tmp_path / "wsd"),
                "--compare-schedules",
                "--cosine-dir",
                str(cosine_dir),
                "--jobs",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    comparison = json.loads((tmp_path / "wsd" / "compare_schedules.json").read_text())
    assert comparison["delta"]["points"] == len(load_preset("synthetic").plan().runs)
    assert comparison["delta"]["median_abs"] == 0.0  # synthetic runs ignore the schedule
    assert comparison["approaches"]["approach2"]["total"]["wsd_a_inside_cosine_interval"] is True
    assert comparison["flops"]["spent_ratio"] == pytest.approx(
        with_schedule(load_preset("synthetic"), "wsd").plan().spent_flops / load_preset("synthetic").plan().total_flops
    )
    text = (tmp_path / "wsd" / "compare_schedules.md").read_text()
    assert "| 2. IsoFLOP profiles | all parameters |" in text and "## Per point: WSD loss - cosine loss" in text
    assert "skipped" in out  # the cosine sweep's runs were not trained again
    with pytest.raises(ValueError, match="is --out itself"):
        compare_schedules(
            with_schedule(load_preset("synthetic"), "wsd"), tmp_path / "wsd", cosine_dir=tmp_path / "wsd", log=None
        )
