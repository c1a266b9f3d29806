"""The main job and its commands: presets load and plan, `chinchilla reproduce` runs a sweep end to end (synthetic
runs in seconds; a tiny real sweep under the slow mark) into a report with all three approaches and Figures 2-4."""

from __future__ import annotations

import json
import math
import re

import pytest

from chinchilla import cli, zoo
from chinchilla.analysis.render import compare_table
from chinchilla.analysis.report import AnalysisSettings
from chinchilla.preset import Preset, load_preset, lr_check_plan, preset_names, with_dataset
from chinchilla.reproduce import reproduce
from chinchilla.sweep import collect_results as read_results

SUMMARY_KEYS = {"a", "b", "a_interval", "b_interval", "conventions", "projections"}


def check_summary(summary: dict, *, fitted: tuple[str, ...] = ("approach1", "approach2", "approach3")) -> None:
    for approach in ("approach1", "approach2", "approach3"):
        entry = summary[approach]
        assert SUMMARY_KEYS <= set(entry)
        assert set(entry["conventions"]) == {"non_embedding", "total"}
        if approach in fitted:
            assert entry["error"] is None, entry["error"]
            assert 0 < entry["a"] < 1.5 and 0 < entry["b"] < 1.5
            assert len(entry["a_interval"]) == 2 and len(entry["b_interval"]) == 2
    for budget in summary["approach2"].get("budgets", []):
        assert {"flops", "n_opt", "interior"} <= set(budget)


def test_every_preset_loads_and_plans():
    names = preset_names()
    assert {"tiny_cpu", "cpu_long", "gpu", "colab_tpu", "paper", "synthetic"} <= set(names)
    for name in names:
        preset = load_preset(name)
        plan = preset.plan()
        assert plan.runs, name
        for run in plan.runs:
            if run.budget is not None:
                assert abs(run.flops / run.budget - 1) < 0.01
    tiny = load_preset("tiny_cpu")
    assert tiny.plan().total_flops < 3.5e13  # the 15-minute preset stays small (2.2x the 4.7-minute 1.55e13)
    curves = [r for r in tiny.plan().runs if r.group == "curves"]
    for name in {r.model.name for r in curves}:  # Approach 1 as in the paper: 4 cycle lengths spanning 16x
        tokens = sorted(r.tokens for r in curves if r.model.name == name)
        assert len(tokens) == 4 and tokens[-1] / tokens[0] == pytest.approx(16, rel=0.05)
    assert not load_preset("paper").runnable
    with pytest.raises(ValueError, match="unknown preset"):
        load_preset("no_such_preset")


def test_lr_check_plan_brackets_the_rule():
    preset = load_preset("tiny_cpu")
    plan = lr_check_plan(preset)
    for name in preset.lr_check_models:
        model = zoo.get_model(name)
        rates = sorted(r.train["lr"] for r in plan.runs if r.model == model)
        rule = preset.hparams(
            model,
            plan.runs[0].tokens
            if plan.runs[0].model == model
            else next(r.tokens for r in plan.runs if r.model == model),
        )["lr"]
        assert rates[0] < rule < rates[-1] and rule in rates
        variants = [r.train for r in plan.runs if r.model == model and r.train["lr"] == rule]
        for key, value in (("warmup_fraction", 0.02), ("warmup_fraction", 0.1), ("adam_b2", 0.99)):
            assert any(v.get(key) == value for v in variants), (name, key, value)


def test_plan_only_commands(capsys):
    assert cli.main(["sweep", "--preset", "paper", "--plan-only"]) == 0
    out = capsys.readouterr().out
    assert "230 runs" in out and "chinchilla-" in out
    assert cli.main(["sweep", "--preset", "tiny_cpu", "--plan-only", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["runs"] and plan["total_flops"] > 0
    assert cli.main(["reproduce", "--preset", "paper", "--out", "/tmp/unused"]) == 2  # a plan only: clear error


@pytest.mark.slow
def test_reproduce_synthetic_preset_end_to_end(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert cli.main(["reproduce", "--preset", "synthetic", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "IsoFLOP profiles" in printed and "report:" in printed
    for name in ("report.md", "summary.json", "results.csv", "plan.json", "figure2.png", "figure3.png", "figure4.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    check_summary(summary)
    truth = load_preset("synthetic").trainer.surface.a
    # Runs drawn from a known surface: every approach recovers its exponent (N non-embedding, as the surface).
    for approach in ("approach1", "approach2", "approach3"):
        ours = summary[approach]["conventions"]["non_embedding"]["a"]
        assert ours == pytest.approx(truth, abs=0.05), approach
    assert all(b["interior"] for b in summary["approach2"]["budgets"])
    report = (out / "report.md").read_text()
    assert "Table 2" in report and "![figure3.png](figure3.png)" in report
    # A second call trains nothing and rewrites the report from the same runs.
    assert cli.main(["report", str(out), "--json", "--no-figures", "--resamples", "5"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["approach2"]["a"] == pytest.approx(summary["approach2"]["a"])
    assert again["settings"]["neighbours"] == 3  # the preset's analysis settings, recorded in preset.json
    # Resuming the finished sweep with --json: stdout is exactly one JSON document (progress goes to stderr), and
    # the report keeps the runs' training time although this invocation trained nothing.
    assert cli.main(["reproduce", "--preset", "synthetic", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["approach2"]["a"] == pytest.approx(summary["approach2"]["a"])
    assert "finished, skipped" in captured.err and "report:" in captured.err
    assert re.search(r"this invocation \d+\.\d s\)", captured.err), captured.err  # seconds, not "0.0 min"
    assert "Training time" in (out / "report.md").read_text()
    # The head-to-head at 10x the largest budget: on runs from the true surface, our law's pick must win.
    assert cli.main(["sweep", "--preset", "synthetic", "--out", str(out), "--head-to-head", "1e14"]) == 0
    h2h = json.loads((out / "headtohead" / "summary.json").read_text())
    assert {r["law"] for r in h2h["runs"]} == {"ours", "kaplan"}
    assert h2h["lower_loss"] == "ours"
    for run in h2h["runs"]:
        assert abs(run["flops"] / 1e14 - 1) < 0.01
        assert run["predicted_loss"] == pytest.approx(run["loss"], rel=0.02)  # the fit extrapolates 10x
    assert (out / "headtohead" / "report.md").exists()
    assert len(read_results(out)) == len(load_preset("synthetic").plan().runs)  # held out of the main fits


def test_dataset_override_and_comparison_table():
    preset = load_preset("tiny_cpu")
    kjv = with_dataset(preset, "embedded/kjv")
    run = kjv.plan().runs[0]
    assert run.train["dataset"] == "embedded/kjv" and kjv.name == "tiny_cpu@embedded/kjv"
    assert 3e6 < kjv.max_tokens < preset.max_tokens
    entry = {"a": 0.5, "b": 0.5, "a_interval": [0.4, 0.6], "b_interval": [0.4, 0.6]}
    table = compare_table({"x": {"preset": "p", "approach1": entry, "approach2": entry, "approach3": entry}})
    assert "| x | p | 0.500 (0.40, 0.60), 0.500 (0.40, 0.60) |" in table


@pytest.mark.slow
def test_tiny_real_sweep_end_to_end(tmp_path):
    """Real training (9 runs of 2-layer byte-level models, a few seconds each), then all three approaches, the
    report and the figures. At budgets this small the exponents are noise: only the pipeline is checked."""
    tiny = load_preset("tiny_cpu")

    def hparams(model, tokens):
        return {**tiny.hparams(model, tokens), "eval_batches": 4}

    preset = Preset(
        name="tiny_test",
        description="the smallest real sweep",
        ladder=zoo.ladder("tiny")[:6],
        budgets=(1.5e10, 3e10, 6e10),
        hparams=hparams,
        center=(3e10, 5e3, 0.7),
        sizes_per_budget=3,
        spacing=1.6,
        min_steps=40,
        analysis=AnalysisSettings(loss="eval_loss", window=20, n_resamples=10, approach3_resamples=5),
    )
    summary = reproduce(preset, tmp_path, log=None)
    assert summary["runs"] == {"finished": 9, "failed": 0, "pending": 0, "missing": 0}
    for approach in ("approach1", "approach2", "approach3"):
        entry = summary[approach]
        assert SUMMARY_KEYS <= set(entry)
        assert entry["error"] is None or approach == "approach2", entry["error"]  # 2 may lack interior minima
        assert entry["error"] is not None or math.isfinite(entry["a"])
    assert len(summary["approach2"]["budgets"]) == 3
    report = (tmp_path / "report.md").read_text()
    assert "## Approach 1" in report and "## Approach 2" in report and "## Approach 3" in report
    for name in ("figure2.png", "figure3.png", "figure4.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_report_headline_is_the_all_parameter_convention(tmp_path):
    """By default (AnalysisSettings' conventions) Table 2, summary.json's a / b and the printed table lead with
    N = all parameters (the paper's), the non-embedding convention beside it, each header naming its convention.
    (The synthetic preset itself leads with non-embedding, its surface's N.)"""
    import dataclasses

    from chinchilla.analysis.render import format_table
    from chinchilla.analysis.report import AnalysisSettings

    preset = load_preset("synthetic")
    default = AnalysisSettings().conventions
    preset = dataclasses.replace(
        preset,
        analysis=dataclasses.replace(preset.analysis, n_resamples=3, approach3_resamples=0, conventions=default),
    )
    summary = reproduce(preset, tmp_path, log=None)
    assert summary["convention"] == "total"
    for approach in ("approach1", "approach2", "approach3"):
        assert summary[approach]["a"] == summary[approach]["conventions"]["total"]["a"]
        assert summary[approach]["a"] != summary[approach]["conventions"]["non_embedding"]["a"]
    table = format_table(summary).splitlines()
    assert table[0].index("a (N = all params)") < table[0].index("a (N = non-embedding)")
    assert not any(line.startswith("not fitted") for line in table)  # every approach fitted: no reasons
    unfitted = {
        **summary,
        "approach2": {**summary["approach2"], "conventions": {**summary["approach2"]["conventions"]}},
    }
    unfitted["approach2"]["conventions"]["total"] = {"a": None, "b": None, "error": "ValueError: 1 budget\nmore"}
    lines = format_table(unfitted).splitlines()
    assert "not fitted" in next(line for line in lines if line.startswith("2. IsoFLOP"))
    assert lines[-1] == "not fitted: 2. IsoFLOP profiles (N = all params): ValueError: 1 budget"
    report = (tmp_path / "report.md").read_text()
    table2 = report[report.index("## Table 2") :]
    header = next(line for line in table2.splitlines() if line.startswith("| approach |"))
    assert header.index("a (N = all parameters)") < header.index("a (N = non-embedding parameters)")
    assert "the paper's convention" in table2.splitlines()[2]


def test_seed_noise_from_repeated_runs():
    from chinchilla.analysis.report import seed_noise

    rows = [{"group": "isoflop", "model": "m", "tokens": 10, "eval_loss": v} for v in (2.00, 2.02)]
    rows += [{"group": "isoflop", "model": "n", "tokens": 10, "eval_loss": v} for v in (1.90, 1.96)]
    rows += [{"group": "curves", "model": "m", "tokens": 20, "eval_loss": 1.8}]
    noise = seed_noise(rows, "eval_loss")
    assert noise["groups"] == 2 and noise["mean_spread"] == pytest.approx(0.04)
    assert noise["max_spread"] == pytest.approx(0.06)
    assert noise["std"] == pytest.approx(math.sqrt((2 * 0.01**2 + 2 * 0.03**2) / 2))
    assert seed_noise(rows[-1:], "eval_loss")["groups"] == 0


def test_a_directory_of_another_preset_is_refused(tmp_path):
    """`reproduce --preset tiny_cpu --out DIR` on a synthetic sweep's DIR is a one-line error before anything is
    written, not tiny_cpu's runs trained into it beside the synthetic ones (81 runs, preset.json overwritten)."""
    from chinchilla.preset import load_preset
    from chinchilla.reproduce import reproduce

    (tmp_path / "preset.json").write_text('{"name": "tiny_cpu"}\n')
    with pytest.raises(ValueError, match=r"holds a sweep of preset 'tiny_cpu', not 'synthetic'; give a new --out"):
        reproduce(load_preset("synthetic"), tmp_path, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preset.json"]
    assert (tmp_path / "preset.json").read_text() == '{"name": "tiny_cpu"}\n'
