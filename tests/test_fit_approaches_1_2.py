"""Approaches 1 and 2 as trustworthy as Approach 3 on anybody's data (ties, 3-run budgets, thin budgets,
C spreads, unit rescaling, undetermined grids, strict CSVs), through ``chinchilla fit``."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest

from chinchilla import cli
from tests.test_approaches import SURFACE, tie_table


def run_json(capsys, *argv: str) -> dict:
    assert cli.main(list(argv)) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text  # strict JSON: null, never a bare NaN
    return json.loads(text)


def write_csv(path, header, rows) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


RATIOS = 1.5 ** np.arange(-4, 5)


def iso_rows(budgets=(1e18, 1e19, 1e20, 1e21), ratios=RATIOS):
    return [
        (
            c,
            SURFACE.n_opt(c) * r,
            c / (6 * SURFACE.n_opt(c) * r),
            SURFACE.loss(SURFACE.n_opt(c) * r, c / (6 * SURFACE.n_opt(c) * r)),
        )
        for c in budgets
        for r in ratios
    ]


# --------------------------------------------------------------------------------------------------------- ties
def test_cli_tie_case_gives_the_untied_answer(tmp_path, capsys):
    answers = []
    for offset in (0.0, 1e-9):
        c, n, d, loss = tie_table(offset)
        path = write_csv(tmp_path / f"tie{offset}.csv", ["budget", "N", "D", "loss"], zip(c, n, d, loss))
        answers.append(run_json(capsys, "fit", "approach2", path, "--resamples", "0", "--json"))
    tied, untied = answers
    assert all(b["interior"] for b in tied["budgets"])
    assert tied["a"] == pytest.approx(untied["a"], abs=1e-6)


# --------------------------------------------------------------------------------------- intervals and 3-run budgets
def test_cli_interval_survives_a_3_run_budget_and_says_what_it_did(tmp_path, capsys):
    from tests.test_approaches import budgets_with_a_small_one

    c, n, d, loss = budgets_with_a_small_one([0.5, 1.0, 2.0])
    path = write_csv(tmp_path / "small.csv", ["budget", "N", "D", "loss"], zip(c, n, d, loss))
    out = run_json(capsys, "fit", "approach2", path, "--resamples", "50", "--json")
    assert out["n_resamples"] == 50 and None not in out["a_interval"]
    assert any("kept whole" in w for w in out["warnings"])
    assert cli.main(["fit", "approach2", path, "--resamples", "50"]) == 0
    assert "warning: budget C = 3e+17 has 3 runs" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- one thin budget
def thin_budget_rows():
    """30 good runs in 4 budgets (7 or 8 sizes each) and a smallest budget down to 2 sizes."""
    rows = []
    for c, count in ((1e18, 7), (1e19, 7), (1e20, 8), (1e21, 8)):
        for r in np.geomspace(1 / 5, 5, count):
            n = SURFACE.n_opt(c) * r
            rows.append((c, n, c / (6 * n), SURFACE.loss(n, c / (6 * n))))
    for r in (0.7, 1.4):
        n = SURFACE.n_opt(3e17) * r
        rows.append((3e17, n, 3e17 / (6 * n), SURFACE.loss(n, 3e17 / (6 * n))))
    return rows


def test_cli_one_thin_budget_does_not_sink_the_fit(tmp_path, capsys):
    path = write_csv(tmp_path / "thin.csv", ["budget", "N", "D", "loss"], thin_budget_rows())
    out = run_json(capsys, "fit", "approach2", path, "--resamples", "20", "--json")
    assert len(out["budgets"]) == 4 and out["a"] == pytest.approx(SURFACE.a, abs=0.003)
    [left] = out["budgets_left_out"]
    assert left["budget"] == 3e17 and left["n_sizes"] == 2 and "needs at least 3" in left["reason"]
    assert any("left out" in w and "3e+17" in w for w in out["warnings"])
    assert cli.main(["fit", "approach2", path, "--resamples", "0"]) == 0
    text = capsys.readouterr().out
    assert "C = 3e+17: 2 runs, not fitted" in text and "warning: budget C = 3e+17 (2 runs) left out" in text


def test_report_fits_approach2_beside_a_thin_budget_and_names_it():
    from chinchilla.analysis.report import AnalysisSettings, _approach_dict, fit_approach2

    rows = [
        {
            "group": "isoflop",
            "budget": c,
            "n_params": n,
            "non_embedding_params": n,
            "tokens": d,
            "final_train_loss": loss,
            "flops": c,
        }
        for c, n, d, loss in thin_budget_rows()
    ]
    entry = _approach_dict(fit_approach2(rows, "total", AnalysisSettings(n_resamples=5)))
    assert entry["error"] is None and entry["a"] == pytest.approx(SURFACE.a, abs=0.003)
    assert entry["budgets_left_out"][0]["budget"] == 3e17 and entry["warnings"]


# ------------------------------------------------------------------------------------- identification from curvature
def undetermined_grid(seed: int = 0):
    """17 runs on a small published-style grid (6 sizes x 3 token counts, one missing), 2% noise: the bootstrap
    puts E, B and a almost anywhere."""
    rng = np.random.default_rng(seed)
    n = np.repeat([1e7, 3e7, 1e8, 3e8, 1e9, 3e9], 3)[:17]
    d = np.tile([2e8, 6e8, 2e9], 6)[:17]
    return n, d, SURFACE.loss(n, d) * np.exp(0.02 * rng.standard_normal(17))


def test_an_undetermined_grid_is_not_identified_and_says_so_first(tmp_path, capsys):
    from chinchilla.fit import fit_parametric

    fit = fit_parametric(*undetermined_grid())
    assert not fit.identified and fit.warnings[0].startswith("NOT IDENTIFIED")
    assert fit.identification["a_se"] > 0.1
    path = write_csv(tmp_path / "grid.csv", ["N", "D", "loss"], zip(*undetermined_grid()))
    out = run_json(capsys, "fit", "parametric", path, "--json")
    assert out["identified"] is False and out["allocation"]["identified"] is False
    assert cli.main(["fit", "parametric", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].strip().startswith("NOT IDENTIFIED")
    assert any(line.strip().startswith("[NOT IDENTIFIED] at C =") for line in lines)


@pytest.mark.parametrize("column", ["n", "d"])
def test_identified_agrees_with_every_data_warning(column):
    from chinchilla.fit import fit_parametric

    n, d, _ = undetermined_grid()
    n, d = np.geomspace(1e7, 1e9, 17), np.geomspace(1e9, 1e11, 17)[::-1]
    if column == "n":
        n = np.full(17, 3e8)
    else:
        d = np.full(17, 0.5)  # every run has D = 0.5 tokens
    fit = fit_parametric(n, d, SURFACE.loss(n, d))
    assert any("not determined" in w for w in fit.warnings)
    assert not fit.identified and fit.warnings[0].startswith("NOT IDENTIFIED")


def test_a_well_determined_fit_stays_identified():
    from chinchilla.fit import fit_table, reference_table

    fit = fit_table(reference_table().drop_highest_loss(5))
    assert fit.identified and fit.identification["a_se"] < 0.02
    assert fit.identification["condition_number"] < 1e10


@pytest.mark.parametrize("case", ["undetermined", "reference"])
def test_the_reports_approach3_uses_the_fits_identification(case):
    """The report's Approach 3 section says what `fit parametric` says: the same curvature rule, the same reasons
    (it had its own bootstrap-spread rule, which called the 17-run grid identified)."""
    from chinchilla.analysis.report import AnalysisSettings, fit_approach3
    from chinchilla.fit import fit_parametric, reference_table

    if case == "undetermined":
        n, d, loss = undetermined_grid()
    else:
        table = reference_table().drop_highest_loss(5)
        n, d, loss = table.n, table.d, table.loss
    rows = [{"n_params": a, "tokens": b, "final_train_loss": c} for a, b, c in zip(n, d, loss)]
    result = fit_approach3(rows, "total", AnalysisSettings(approach3_resamples=0))
    fit = fit_parametric(n, d, loss)
    assert result.identified == fit.identified == (case == "reference")
    assert list(result.warnings) == list(fit.identification["reasons"])


# ----------------------------------------------------------------------------------------- one sweep, one answer
@pytest.fixture(scope="module")
def synthetic_sweep(tmp_path_factory):
    from chinchilla import zoo
    from chinchilla.sweep import plan_isoflop, run_sweep
    from chinchilla.sweep.results import write_results_table
    from chinchilla.sweep.synthetic import SyntheticTrainer

    root = tmp_path_factory.mktemp("fit-sweep") / "sweep"
    plan = plan_isoflop((3e10, 1e11, 3e11), zoo.ladder("tiny")[1:15:2], hparams=lambda m, tokens: {"batch_size": 8})
    run_sweep(plan, root, train_fn=SyntheticTrainer(), log=None)
    write_results_table(root)
    return root


def test_a_sweep_directory_and_its_results_csv_give_one_answer(synthetic_sweep, capsys):
    from chinchilla.analysis.report import AnalysisSettings, fit_approach2
    from chinchilla.sweep.results import collect_results

    by_dir = run_json(capsys, "fit", "approach2", str(synthetic_sweep), "--resamples", "5", "--json")
    by_csv = run_json(capsys, "fit", "approach2", str(synthetic_sweep / "results.csv"), "--resamples", "5", "--json")
    assert by_dir["a"] == pytest.approx(by_csv["a"], rel=1e-12) and by_dir["b"] == pytest.approx(by_csv["b"], rel=1e-12)
    for out in (by_dir, by_csv):
        assert out["n_convention"] == "all parameters" and out["loss_column"] == "final_train_loss"
    settings = AnalysisSettings(n_resamples=5)
    rows = [r for r in collect_results(synthetic_sweep) if r["status"] == "finished"]
    assert by_dir["a"] == pytest.approx(fit_approach2(rows, settings.conventions[0], settings).a, rel=1e-12)
    other = run_json(
        capsys,
        "fit",
        "approach2",
        str(synthetic_sweep / "results.csv"),
        "--convention",
        "non_embedding",
        "--loss-col",
        "eval_loss",
        "--resamples",
        "0",
        "--json",
    )
    assert other["n_convention"] == "non-embedding parameters" and other["columns"]["N"] == "non_embedding_params"
    assert cli.main(["fit", "approach2", str(synthetic_sweep / "results.csv"), "--resamples", "0"]) == 0
    assert "N = all parameters, loss = column 'final_train_loss'" in capsys.readouterr().out


def test_fit_parametric_reads_a_sweep_directory_and_its_results_csv_as_the_report_does(synthetic_sweep, capsys):
    """Every finished run, as the report's Approach 3 (results.csv of a sweep with curve runs, whose budget cells are
    empty, failed: "column 'budget': '' is not a number")."""
    from chinchilla.analysis.report import AnalysisSettings, fit_approach3
    from chinchilla.sweep.results import collect_results

    by_dir = run_json(capsys, "fit", "parametric", str(synthetic_sweep), "--json")
    by_csv = run_json(capsys, "fit", "parametric", str(synthetic_sweep / "results.csv"), "--json")
    assert by_dir["alpha"] == pytest.approx(by_csv["alpha"], rel=1e-9) and by_dir["E"] == pytest.approx(by_csv["E"])
    settings = AnalysisSettings(approach3_resamples=0)
    rows = [r for r in collect_results(synthetic_sweep) if r["status"] == "finished"]
    assert by_dir["alpha"] == pytest.approx(fit_approach3(rows, "total", settings).alpha, rel=1e-6)


# -------------------------------------------------------------------------------- the grid check follows the units
@pytest.mark.parametrize("n_unit, d_unit", [(1e9, 1e12), (1e6, 1e9)])
def test_rescaled_units_give_the_same_fit_and_no_grid_warning(n_unit, d_unit):
    from chinchilla.fit import fit_parametric, reference_table
    from chinchilla.fit.laws import paper_grid, unit_shifts

    table = reference_table().drop_highest_loss(5)
    base = fit_parametric(table.n, table.d, table.loss)
    scaled = fit_parametric(table.n / n_unit, table.d / d_unit, table.loss)  # N in billions, D in trillions ...
    assert scaled.objective == pytest.approx(base.objective, rel=1e-9)
    assert scaled.a == pytest.approx(base.a, abs=1e-6) and scaled.E == pytest.approx(base.E, rel=1e-6)
    assert not [w for w in scaled.warnings if "grid" in w], scaled.warnings
    assert scaled.grid_units == {"n": -round(math.log10(n_unit)), "d": -round(math.log10(d_unit))}
    assert unit_shifts({"n": table.n, "d": table.d}) == {"n": 0, "d": 0}  # the paper's data keep the paper's grid
    assert base.best_start.tolist() in paper_grid().tolist()


# --------------------------------------------------------------------------------- strict CSVs and strict JSON
@pytest.mark.parametrize(
    "text, where",
    [
        ("N,N,C,loss\n1e8,1e8,1e19,2.5\n", "line 1, column 2: header name 'N' repeats column 1"),
        ("N,D,loss\n1e8,2e9,2.5\n1e8,2e9\n", "line 3: 2 fields where the header has 3"),
        ("N,D,loss\n1e8,2e9,2.5\n1e8,2e9,2.5,7\n", "line 3: 4 fields where the header has 3"),
        ("N,D,loss\n1e8,2e9,2.5\n1e8,2e9,\x002.4\n", "line 3, column 3: a NUL byte"),
        ("N,C,loss\n1e8,6e8,2.5\n1e8,3e8,2.6\n", "line 3, column 'C': D = C / 6N"),
    ],
)
def test_csv_strictness_errors_name_file_line_and_column(tmp_path, capsys, text, where):
    path = tmp_path / "bad.csv"
    path.write_bytes(text.encode())
    assert cli.main(["fit", "parametric", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and where in err, err


def test_skipped_rows_and_every_printed_warning_are_in_json(tmp_path, capsys):
    rows = [(n, d, SURFACE.loss(n, d)) for n in np.geomspace(1e7, 1e9, 5) for d in np.geomspace(1e9, 1e11, 5)]
    rows = [list(map(str, r)) for r in rows] + [["1e8", "1e10", ""]]
    path = write_csv(tmp_path / "runs.csv", ["N", "D", "loss"], rows)
    out = run_json(capsys, "fit", "parametric", path, "--json")
    assert out["skipped_rows"]["lines"] == [27]
    assert cli.main(["fit", "parametric", path]) == 0
    printed = [line.split("warning: ", 1)[1] for line in capsys.readouterr().out.splitlines() if "warning: " in line]
    assert printed and set(printed) <= set(out["all_warnings"])
    c, n, d, loss = tie_table()
    iso = write_csv(
        tmp_path / "iso.csv",
        ["budget", "N", "D", "loss"],
        [list(map(str, r)) for r in zip(c, n, d, loss)] + [["1e21", "1e9", "1e11", ""]],
    )
    out = run_json(capsys, "fit", "approach2", iso, "--resamples", "0", "--json")
    assert out["skipped_rows"]["lines"] == [30] and any("empty loss" in w for w in out["all_warnings"])


# ---------------------------------------------------------------------------------- which C each profile used
def test_a_spread_c_column_is_reported_and_warned(tmp_path, capsys):
    rows = []
    for c, n, d, loss in iso_rows():
        rows.append((c, n, d, 6 * n * d * (1 + 0.3 * (n / SURFACE.n_opt(c)) ** 0.1 - 0.3), loss))  # C per run
    path = write_csv(tmp_path / "spread.csv", ["budget", "N", "D", "C", "loss"], rows)
    out = run_json(capsys, "fit", "approach2", path, "--resamples", "0", "--json")
    assert all(b["c_source"] == "geometric mean of its runs' C" and b["c_spread"] > 0.05 for b in out["budgets"])
    assert sum("spread by" in w for w in out["warnings"]) == 4
    exact = write_csv(tmp_path / "exact.csv", ["budget", "N", "D", "loss"], iso_rows())
    out = run_json(capsys, "fit", "approach2", exact, "--resamples", "0", "--json")
    assert all(b["c_source"] == "budget label" and b["c_spread"] == 0 for b in out["budgets"])
    assert not any("spread by" in w for w in out["warnings"])


# --------------------------------------------------------------------------- grouping without a budget column
def spread_rows(spread: float = 0.35, seed: int = 0):
    """Budgets 3x apart whose runs' 6ND lies up to ``spread`` above the nominal budget (each run's tokens rounded
    up to whole batches and steps, or 6ND beside exact FLOPs)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in (1e18, 3e18, 1e19, 3e19, 1e20):
        for r in 1.5 ** np.arange(-4, 5):
            n = SURFACE.n_opt(c) * r
            d = c / (6 * n) * (1 + spread * rng.uniform(0, 1))
            rows.append((n, d, SURFACE.loss(n, d)))
    return rows


def test_grouping_survives_35_percent_spreads_and_states_the_gap(tmp_path, capsys):
    from chinchilla.fit.isoflop import cluster_flops

    path = write_csv(tmp_path / "spread.csv", ["N", "D", "loss"], spread_rows())
    out = run_json(capsys, "fit", "approach2", path, "--resamples", "0", "--json")
    assert len(out["budgets"]) == 5 and all(b["n_runs"] == 9 for b in out["budgets"])
    assert "log-C clustering: 5 groups" in out["grouping"] and "--budget-col" in out["grouping"]
    grouping = cluster_flops([6 * n * d for n, d, _ in spread_rows()])
    assert grouping.n_groups == 5 and grouping.gap_between > grouping.gap_within


def test_grouping_that_fails_says_how_many_groups_and_which_flag(tmp_path, capsys):
    rows = [(n, d, loss) for n, d, loss in spread_rows() if 6 * n * d < 2e18]  # one budget only
    path = write_csv(tmp_path / "one.csv", ["N", "D", "loss"], rows)
    assert cli.main(["fit", "approach2", path, "--resamples", "0"]) == 2
    err = capsys.readouterr().err
    assert "groups were found by log-C clustering" in err and "--budget-col" in err and "'budget'" not in err


# ------------------------------------------------------------------------------------ Approach 2's own bias
def centred_design(law, budgets=(1e18, 1e19, 1e20, 1e21), spread=16.0, points=9):
    """Each budget's N from N_opt / spread to N_opt x spread, log-spaced around the law's own optimum."""
    ratios = np.geomspace(1 / spread, spread, points)
    budget = np.repeat(budgets, points)
    n = np.concatenate([law.n_opt(c) * ratios for c in budgets])
    return budget, n, budget / (6 * n)


def closed_form_shift(alpha, beta, spread=16.0, points=9):
    """Vertex of the least-squares parabola through L - E = P e^(-alpha u) + Q e^(beta u) on the centred grid
    u = ln(N / N_opt), with alpha P = beta Q at the optimum: the same shift (in ln N) at every budget."""
    u = np.log(np.geomspace(1 / spread, spread, points))
    c2, c1, _ = np.polyfit(u, beta * np.exp(-alpha * u) + alpha * np.exp(beta * u), 2)
    return -c1 / (2 * c2)


def test_bias_check_is_zero_on_a_symmetric_surface():
    from chinchilla.fit.allocate import ChinchillaParams
    from chinchilla.fit.isoflop import isoflop_bias

    law = ChinchillaParams(E=1.7, A=400.0, B=900.0, alpha=0.3, beta=0.3)
    bias = isoflop_bias(law, *centred_design(law))
    assert closed_form_shift(0.3, 0.3) == pytest.approx(0.0, abs=1e-12)
    assert abs(bias.a_bias) < 1e-9 and abs(bias.b_bias) < 1e-9
    assert abs(bias.n_opt_rel_bias) < 1e-8 and abs(bias.d_opt_rel_bias) < 1e-8


@pytest.mark.parametrize("spread", [16.0, 4.0])
def test_bias_check_with_the_papers_exponents_is_the_closed_form(spread):
    """alpha = 0.339, beta = 0.285: the exponents stay exact (a constant shift at every budget), the intercept
    moves by e^shift: +5.3% in N_opt on a +-16x grid of 9 sizes (a public analysis: ~4%), +0.3% on +-4x."""
    from chinchilla.fit.allocate import PAPER_FIT
    from chinchilla.fit.isoflop import isoflop_bias

    bias = isoflop_bias(PAPER_FIT, *centred_design(PAPER_FIT, spread=spread))
    shift = closed_form_shift(PAPER_FIT.alpha, PAPER_FIT.beta, spread=spread)
    assert abs(bias.a_bias) < 1e-9 and abs(bias.b_bias) < 1e-9
    assert bias.n_opt_rel_bias == pytest.approx(np.expm1(shift), rel=1e-6)
    assert bias.d_opt_rel_bias == pytest.approx(np.expm1(-shift), rel=1e-6)
    if spread == 16.0:
        assert 0.03 < bias.n_opt_rel_bias < 0.06


def test_cli_bias_check_beside_the_approach2_result(tmp_path, capsys):
    from chinchilla.fit.allocate import PAPER_FIT

    budget, n, d = centred_design(PAPER_FIT)
    path = write_csv(tmp_path / "iso16.csv", ["budget", "N", "D", "loss"], zip(budget, n, d, PAPER_FIT.loss(n, d)))
    out = run_json(capsys, "fit", "approach2", path, "--bias-check", "paper", "--resamples", "0", "--json")
    bias = out["bias_check"]
    assert bias["surface"] == "the paper's Approach 3 fit" and bias["flops_max"] == 1e21
    # Noiseless losses of the same surface: Approach 2 is the simulation, and less its bias it is the truth.
    assert out["a"] == pytest.approx(bias["a_sim"], abs=1e-12)
    fixed = bias["approach2_corrected"]
    assert fixed["n_opt"] == pytest.approx(PAPER_FIT.n_opt(1e21), rel=1e-6)
    assert fixed["d_opt"] == pytest.approx(PAPER_FIT.d_opt(1e21), rel=1e-6)
    fitted = run_json(capsys, "fit", "approach2", path, "--bias-check", "--resamples", "0", "--json")
    assert fitted["bias_check"]["surface"] == "Approach 3 fitted to the same 36 runs"
    assert fitted["bias_check"]["n_opt_rel_bias"] == pytest.approx(bias["n_opt_rel_bias"], rel=1e-3)
    assert cli.main(["fit", "approach2", path, "--bias-check", "paper", "--resamples", "0"]) == 0
    text = capsys.readouterr().out
    assert "bias check: the IsoFLOP procedure on the paper's Approach 3 fit" in text and "(+5.3%)" in text


# ------------------------------------------------------------------------------------ Approach 1 on CSV curves
def test_approach1_defaults_to_all_parameters_and_says_so(synthetic_sweep, capsys):
    """All parameters by default, as in the report's headline, and the output names the convention."""
    default = run_json(capsys, "fit", "approach1", str(synthetic_sweep), "--resamples", "3", "--json")
    total = run_json(
        capsys, "fit", "approach1", str(synthetic_sweep), "--resamples", "3", "--json", "--convention", "total"
    )
    kaplan = run_json(
        capsys, "fit", "approach1", str(synthetic_sweep), "--resamples", "0", "--json", "--convention", "non_embedding"
    )
    assert default["a"] == total["a"] and default["a"] != kaplan["a"]
    assert default["n_convention"] == "all parameters" and kaplan["n_convention"] == "non-embedding parameters"
    assert cli.main(["fit", "approach1", str(synthetic_sweep), "--resamples", "0"]) == 0
    assert "; N = all parameters" in capsys.readouterr().out.splitlines()[0]


def curves_csv(path, curves, run_col="run"):
    rows = [(c.run, c.n_params, t, f, l) for c in curves for t, f, l in zip(c.tokens, c.flops, c.loss)]
    return write_csv(path, [run_col, "N", "tokens", "flops", "loss"], rows)


def test_approach1_on_a_csv_of_training_curves_equals_the_sweep(synthetic_sweep, tmp_path, capsys):
    from chinchilla.sweep.results import load_curves

    path = curves_csv(tmp_path / "curves.csv", load_curves(synthetic_sweep, convention="total"))
    by_dir = run_json(capsys, "fit", "approach1", str(synthetic_sweep), "--resamples", "20", "--json")
    by_csv = run_json(capsys, "fit", "approach1", path, "--resamples", "20", "--json")
    for key in ("a", "b", "a_interval", "b_interval", "late_fraction", "selected_runs", "n_curves"):
        assert by_csv[key] == by_dir[key], key
    assert by_csv["columns"] == {"run": "run", "N": "N", "D": "tokens", "C": "flops", "loss": "loss"}
    assert by_csv["n_convention"] == "as in column 'N'"
    half = run_json(capsys, "fit", "approach1", path, "--resamples", "0", "--json", "--where", "N < 1e5")
    assert half["n_curves"] < by_csv["n_curves"] and "where N < 1e5" in half["source"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda rows: [("r1", 1e6, 1e9, 6e15, 3.0), ("r1", 2e6, 2e9, 2.4e16, 2.9)] + rows,
            r"line 3, column 'N': run 'r1' has N = 2e\+06 here and 1e\+06 on line 2: one run, one N",
        ),
        (lambda rows: rows + [rows[-1]], r"lines \d+ and \d+: run 'b' has two rows at C = "),
        (
            lambda rows: rows + [("c", 1e6, 1e9, 6e15, 3.0)],
            r"run 'c' has one row; Approach 1 needs each run's training",
        ),
    ],
)
def test_approach1_csv_errors_name_the_run_and_line(tmp_path, capsys, edit, message):
    rows = [
        (run, n, d, 6 * n * d, 4.0 - 0.1 * k)
        for run, n in (("a", 1e6), ("b", 2e6))
        for k, d in enumerate((1e9, 2e9, 4e9))
    ]
    path = write_csv(tmp_path / "c.csv", ["run", "N", "tokens", "flops", "loss"], edit(rows))
    assert cli.main(["fit", "approach1", path, "--resamples", "0"]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_approach1_csv_without_a_run_column_names_the_flag(tmp_path, capsys):
    path = write_csv(tmp_path / "c.csv", ["N", "tokens", "loss"], [(1e6, 1e9, 3.0), (1e6, 2e9, 2.9)])
    assert cli.main(["fit", "approach1", path]) == 2
    assert "no run id column (name it with --run-col" in capsys.readouterr().err
    assert cli.main(["fit", "approach1", path, "--convention", "total"]) == 2
    assert "--convention would be ignored" in capsys.readouterr().err
