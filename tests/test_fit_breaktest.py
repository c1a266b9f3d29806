"""A fresh-clone break test of ``chinchilla fit``: log-C grouping under rounding noise and repeated C, inconsistent
units, sweep directories for every approach, intervals from too few resamples, the sweep's analysis settings."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_approaches import SURFACE
from tests.test_fit_approaches_1_2 import run_json, write_csv

BUDGETS = (1e18, 3e18, 1e19, 3e19, 1e20)
RATIOS = 1.5 ** np.arange(-3, 4)  # 7 sizes per budget


def sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits - 1}e}")


def grid_rows():
    """(N, D, C, loss) at 5 budgets x 7 sizes, C = 6ND exactly."""
    rows = []
    for c in BUDGETS:
        for r in RATIOS:
            n = SURFACE.n_opt(c) * r
            d = c / (6 * n)
            rows.append((n, d, c, SURFACE.loss(n, d)))
    return rows


# ------------------------------------------------------------------ 1: grouping by log C under tiny noise
def test_six_significant_figures_without_c_give_five_budgets(tmp_path, capsys):
    rows = [(sig(n), sig(d), sig(loss)) for n, d, _, loss in grid_rows()]
    path = write_csv(tmp_path / "noC.csv", ["N", "D", "loss"], rows)
    out = run_json(capsys, "fit", "approach2", path, "--resamples", "0", "--json")
    assert len(out["budgets"]) == 5 and all(b["n_runs"] == 7 for b in out["budgets"])
    assert "5 groups" in out["grouping"] and "gap between groups x3" in out["grouping"]


def test_one_c_a_tenth_of_a_percent_off_stays_in_its_budget(tmp_path, capsys):
    rows = [(n, c, loss) for n, _, c, loss in grid_rows()]
    rows[3] = (rows[3][0], rows[3][1] * 1.001, rows[3][2])
    path = write_csv(tmp_path / "nc.csv", ["N", "C", "loss"], rows)
    out = run_json(capsys, "fit", "approach2", path, "--resamples", "0", "--json")
    assert len(out["budgets"]) == 5 and sum(b["n_runs"] for b in out["budgets"]) == len(rows)


def test_cluster_flops_jitter_and_a_second_seed_give_five_budgets():
    from chinchilla.fit.isoflop import cluster_flops

    rng = np.random.default_rng(0)
    c = np.concatenate([np.full(7, b) * (1 + rng.uniform(-1e-3, 1e-3, 7)) for b in BUDGETS])
    grouping = cluster_flops(np.concatenate([c, c]))
    assert grouping.n_groups == 5
    assert np.allclose(np.unique(np.round(np.log10(grouping.labels), 3)), np.log10(BUDGETS), atol=1e-3)
    assert cluster_flops(np.full(6, 1e19)).n_groups == 1


# ------------------------------------------------------------------ 2: N, D and C in inconsistent units
def test_c_in_the_wrong_unit_is_refused_by_approach2_and_parametric(tmp_path, capsys):
    from chinchilla import cli

    rows = [(n, d, c * 1e6, loss) for n, d, c, loss in grid_rows()]  # N written in millions: C = 1e6 x 6ND
    path = write_csv(tmp_path / "mega.csv", ["N", "D", "C", "loss"], rows)
    for argv in (["approach2", path, "--resamples", "0"], ["parametric", path]):
        assert cli.main(["fit", *argv]) == 2
        err = capsys.readouterr().err
        assert "median C / 6ND is 1e+06" in err and "millions" in err and err.count("\n") == 1
    rows = [(n, d * 10, c, loss) for n, d, c, loss in grid_rows()]  # D 10x C / 6N
    path = write_csv(tmp_path / "d10.csv", ["N", "D", "C", "loss"], rows)
    assert cli.main(["fit", "approach2", path, "--resamples", "0"]) == 2
    assert "median C / 6ND is 0.1" in capsys.readouterr().err


def test_one_row_in_another_unit_is_named_by_its_line(tmp_path, capsys):
    from chinchilla import cli

    rows = [(n, d, c * 1.2, loss) for n, d, c, loss in grid_rows()]  # exact FLOPs 20% above 6ND: fine
    path = write_csv(tmp_path / "ok.csv", ["N", "D", "C", "loss"], rows)
    assert cli.main(["fit", "approach2", path, "--resamples", "0"]) == 0
    capsys.readouterr()
    rows[4] = (rows[4][0], rows[4][1] * 10, rows[4][2], rows[4][3])
    path = write_csv(tmp_path / "row.csv", ["N", "D", "C", "loss"], rows)
    assert cli.main(["fit", "approach2", path, "--resamples", "0"]) == 2
    assert "line 6: C / 6ND = 0.12" in capsys.readouterr().err


# ------------------------------------------------------------------ 3: parametric takes a sweep directory
def test_parametric_reads_a_sweep_directory_as_approach2_does(tmp_path, capsys):
    from chinchilla import cli, zoo
    from chinchilla.sweep import plan_isoflop, run_sweep
    from chinchilla.sweep.results import write_results_table
    from chinchilla.sweep.synthetic import SyntheticTrainer

    root = tmp_path / "sweep"
    plan = plan_isoflop((3e10, 1e11, 3e11), zoo.ladder("tiny")[1:15:2], hparams=lambda m, tokens: {"batch_size": 8})
    run_sweep(plan, root, train_fn=SyntheticTrainer(), log=None)
    write_results_table(root)
    out = run_json(capsys, "fit", "parametric", str(root), "--top-k", "8", "--json")
    assert out["columns"]["N"] == "n_params" and out["columns"]["loss"] == "final_train_loss"
    assert cli.main(["fit", "parametric", str(root), "--n-col", "params"]) == 2
    assert "sweep directory" in capsys.readouterr().err


# ------------------------------------------------------------------ 4: intervals from too few resamples
def test_intervals_from_fewer_than_half_the_resamples_are_not_reported(capsys):
    import math

    from chinchilla.cli.fit_powerlaws import interval_warning, print_laws
    from chinchilla.fit.powerlaw import resample_interval

    assert all(math.isnan(v) for v in resample_interval([1.49] * 18, 100))
    assert resample_interval([1.0, 2.0] * 30, 100) == pytest.approx((1.0, 2.0))

    class Result:
        a_interval, n_resamples = (math.nan, math.nan), 18

    assert "only 18 of 100 resamples" in interval_warning(Result, 100)[0]
    law = {"coefficient": 1.0}
    print_laws(
        {
            "a": 0.539,
            "b": 0.461,
            "a_interval": [None, None],
            "b_interval": [None, None],
            "n_resamples": 18,
            "n_law": law,
            "d_law": law,
        }
    )
    assert "a = 0.5390   interval not available" in capsys.readouterr().out


def test_a_sweeps_fits_default_to_the_analysis_settings_its_report_uses(tmp_path):
    """A sweep records its report's settings (preset.json "analysis": loss column, Approach 1's window); `fit
    approach1|approach2 DIR` (or DIR/results.csv) use them as defaults, so they print the report's a (a tiny_cpu
    sweep's report fits eval_loss with a 100-step window: the fit's defaults, final_train_loss and 10, gave 0.774
    with an interval of [0.12, 0.81] where the report said 0.589)."""
    import json as json_lib

    from chinchilla.cli import fit_inputs

    (tmp_path / "preset.json").write_text(json_lib.dumps({"analysis": {"loss": "eval_loss", "window": 100}}))
    assert fit_inputs.recorded_analysis(str(tmp_path)) == {"loss": "eval_loss", "window": 100}
    assert fit_inputs.recorded_analysis(str(tmp_path / "results.csv"))["loss"] == "eval_loss"
    assert fit_inputs.recorded_analysis(str(tmp_path / "elsewhere" / "x.csv")) == {}
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "preset.json").write_text("[1, 2")
    assert fit_inputs.recorded_analysis(str(tmp_path / "bad")) == {}
