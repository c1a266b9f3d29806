"""``chinchilla fit parametric`` and ``chinchilla allocate``, in the forms a user types them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chinchilla import cli
from chinchilla.fit import reference_table

REQUIRED_FIT_KEYS = {"E", "A", "B", "alpha", "beta", "objective", "a", "b"}


def run_json(capsys, *argv: str) -> dict:
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_fit_reference_epoch(capsys):
    out = run_json(capsys, "fit", "parametric", "--reference", "epoch", "--json")
    assert REQUIRED_FIT_KEYS <= set(out)
    assert out["n_points"] == 240 and out["drop_highest_loss"] == 5
    assert (round(out["A"]), round(out["B"], -1), round(out["E"], 3)) == (478, 2140, 1.817)
    assert (round(out["alpha"], 3), round(out["beta"], 3)) == (0.347, 0.367)
    assert out["a"] == pytest.approx(out["beta"] / (out["alpha"] + out["beta"]))


def test_fit_csv_with_bootstrap(tmp_path, capsys):
    table = reference_table("epoch")
    path = tmp_path / "runs.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["params", "compute", "final_loss"])
        writer.writerows(zip(table.n, table.flops, table.loss))
    # Default column names (params, compute, final_loss) are recognised and reported; a filter that keeps every run
    # leaves the fit unchanged.
    out = run_json(
        capsys,
        "fit",
        "parametric",
        str(path),
        "--where",
        "tokens_per_param > 0 and loss < 100",
        "--drop-highest-loss",
        "5",
        "--reduction",
        "sum",
        "--resamples",
        "3",
        "--json",
    )
    assert out["columns"] == {"N": "params", "C": "compute", "loss": "final_loss"}
    assert "where tokens_per_param > 0 and loss < 100: 245 of 245 runs" in out["source"]
    assert REQUIRED_FIT_KEYS <= set(out) and out["n_points"] == 240
    assert f"{out['objective']:.7e}" == "1.0182740e-03"  # the replication's objective to 8 figures
    boot = out["bootstrap"]
    assert boot["n_resamples"] == 3 and set(boot["intervals"]) >= {"a", "b", "tokens_per_param"}


def test_fit_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e8,2e9,3.1\n")
    assert (
        cli.main(
            ["fit", "parametric", str(path), "--n-col", "N", "--tokens-col", "tokens", "--loss-col", "loss", "--json"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "column(s) ['N'] not found" in err and err.count("\n") == 1
    path.write_text("size,tokens,loss\n1e8,2e9,3.1\n")
    assert cli.main(["fit", "parametric", str(path), "--json"]) == 2
    assert "no column for N (name it with --n-col" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert cli.main(["fit", "parametric", str(empty), "--n-col", "N", "--tokens-col", "D", "--loss-col", "L"]) == 2
    assert "is empty" in capsys.readouterr().err


def test_allocate_as_written():
    """The console script with the paper's unrounded fit at Gopher's budget: ~40B parameters."""
    script = Path(sys.executable).with_name("chinchilla")
    command = [
        str(script),
        "allocate",
        "--flops",
        "5.76e23",
        "--E",
        "1.69337",
        "--A",
        "406.401",
        "--B",
        "410.723",
        "--alpha",
        "0.33917084",
        "--beta",
        "0.2849083",
        "--json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    out = json.loads(result.stdout)
    assert {"n_opt", "d_opt", "G", "a", "b"} <= set(out)
    assert round(out["n_opt"] / 1e9) == 40
    assert out["a"] == pytest.approx(0.4565, abs=1e-4) and out["G"] == pytest.approx(1.30005, rel=1e-5)


def test_allocate_defaults_to_the_paper_and_says_so(capsys):
    out = run_json(
        capsys, "allocate", "--flops", "5.76e23", "--params", "1e9", "--table", "--ladder", "chinchilla", "--json"
    )
    assert "Hoffmann et al. 2022" in out["law_source"]
    assert round(out["n_opt"] / 1e9) == 40
    assert out["inverse"]["flops"] == pytest.approx(1.748e20, rel=1e-3)
    assert len(out["projections"]) == 9 and out["exact_flops"]["at_boundary"] is True
    assert cli.main(["allocate", "--flops", "1e21", "--E", "1.7"]) == 2
    assert "give all five law flags or none" in capsys.readouterr().err


def test_fit_without_a_frontier_says_so(tmp_path, capsys):
    """Loss that rises with N: alpha comes out negative, and the output says there is no frontier."""
    n = [1e7, 3e7, 1e8, 3e8, 1e9, 3e9, 1e10, 3e10]
    path = tmp_path / "runs.csv"
    path.write_text("N,D,L\n" + "".join(f"{x},{2e10},{2.0 + 0.05 * i}\n" for i, x in enumerate(n)))
    out = run_json(
        capsys,
        "fit",
        "parametric",
        str(path),
        "--n-col",
        "N",
        "--tokens-col",
        "D",
        "--loss-col",
        "L",
        "--top-k",
        "16",
        "--json",
    )
    assert out["alpha"] < 0 and out["allocation"] is None and out["G"] is None
    assert "no compute-optimal frontier" in out["note"]


def isoflop_csv(path, *, budget_column: bool, flops_column: bool = True):
    """Synthetic IsoFLOP runs from the paper's surface: 6 budgets x 9 sizes around each optimum."""
    from chinchilla.fit.allocate import ChinchillaParams

    surface = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    header = ["params", "tokens", "loss"] + (["FLOPs"] if flops_column else []) + (["budget"] if budget_column else [])
    rows = []
    for c in np.geomspace(1e18, 1e21, 6):
        for ratio in 1.5 ** np.arange(-4, 5):
            n = surface.n_opt(c) * ratio
            d = c / (6 * n)
            rows.append(
                [n, d, surface.loss(n, d)]
                + ([c * (1 + 0.01 * ratio)] if flops_column else [])
                + ([c] if budget_column else [])
            )
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return surface


@pytest.mark.parametrize("budget_column, flops_column", [(True, False), (False, True), (False, False)])
def test_approach2_csv_needs_no_budget_column_when_c_is_known(tmp_path, capsys, budget_column, flops_column):
    path = tmp_path / "iso.csv"
    surface = isoflop_csv(path, budget_column=budget_column, flops_column=flops_column)
    out = run_json(capsys, "fit", "approach2", str(path), "--resamples", "3", "--json")
    assert len(out["budgets"]) == 6 and all(b["n_runs"] == 9 for b in out["budgets"])
    assert out["a"] == pytest.approx(surface.a, abs=0.002)
    assert out["columns"]["N"] == "params" and out["columns"]["loss"] == "loss"
    assert (out["grouping"] == "budget column") == budget_column
    assert out["grouping"].startswith("runs grouped by log-C clustering: 6 groups") != budget_column


def test_approach2_holdout_predicts_the_larger_budgets(tmp_path, capsys):
    path = tmp_path / "iso.csv"
    surface = isoflop_csv(path, budget_column=False)
    out = run_json(capsys, "fit", "approach2", str(path), "--resamples", "3", "--holdout-flops", "1e20", "--json")
    holdout = out["holdout"]
    assert holdout["n_train_budgets"] == 4 and holdout["n_test_budgets"] == 2
    for row in holdout["budgets"]:
        assert row["flops"] >= 1e20 and row["interior"]
        # The synthetic surface is an exact power law, so the extrapolation lands on the observed vertex.
        assert row["n_opt_predicted"] == pytest.approx(row["n_opt_observed"], rel=0.01)
        assert row["n_opt_predicted"] == pytest.approx(surface.n_opt(row["flops"]), rel=0.02)
    assert cli.main(["fit", "approach2", str(path), "--resamples", "3", "--holdout-flops", "1e22"]) == 2
    assert "holds out no budget" in capsys.readouterr().err
    assert cli.main(["fit", "approach2", str(path), "--resamples", "3", "--holdout-flops", "1e18"]) == 2
    assert "at least 2 budgets" in capsys.readouterr().err


def test_one_flag_vocabulary(tmp_path, capsys):
    path = tmp_path / "iso.csv"
    isoflop_csv(path, budget_column=True)
    new = run_json(
        capsys,
        "fit",
        "approach2",
        str(path),
        "--loss-col",
        "loss",
        "--n-col",
        "params",
        "--resamples",
        "3",
        "--where",
        "tokens_per_param <= 200",
        "--json",
    )
    assert "where tokens_per_param <= 200" in new["source"]
    parser = cli.build_parser()  # a FLOP budget is --flops in every verb; parametric's --budget alias still parses
    assert parser.parse_args(["fit", "parametric", "x.csv", "--budget", "1e22"]).budget == 1e22
    assert parser.parse_args(["fit", "parametric", "x.csv", "--flops", "1e22"]).budget == 1e22
    for verb in (["fit", "parametric"], ["fit", "approach2"], ["fit", "approach1"], ["allocate"], ["flops"]):
        assert cli.main([*verb, *(["x"] if verb[-1] in ("approach1", "approach2") else []), "--no-such-flag"]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"chinchilla {' '.join(verb)}: error: unrecognized arguments: --no-such-flag "
            f"(see `chinchilla {' '.join(verb)} --help`)\n"
        )


def test_bad_value_error_is_the_same_form_everywhere(tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text("params,tokens,loss,budget\n1e8,2e9,3.1,1e18\n2e8,2e9,nan,1e18\n")
    for verb in (["fit", "parametric"], ["fit", "approach2"]):
        assert cli.main([*verb, str(path)]) == 2
        assert f"{path} line 3, column 'loss': 'nan' is not a finite number" in capsys.readouterr().err


def test_data_constrained_fit_never_prints_an_unlabelled_frontier(tmp_path, capsys):
    """The data-constrained law's allocation uses the unique data, or says it assumes it unlimited."""
    from chinchilla.fit.allocate import MUENNIGHOFF_FIT

    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(1e8), np.log(9e9), 40))
    d = np.exp(rng.uniform(np.log(1e10), np.log(3e11), 40))
    u = np.minimum(d, np.exp(rng.uniform(np.log(5e9), np.log(1e11), 40)))
    loss = MUENNIGHOFF_FIT.loss(n, d, u)
    path = tmp_path / "dc.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["N", "D", "U", "loss"])
        writer.writerows(zip(n, d, u, loss))
    common = ["fit", "parametric", str(path), "--law", "data_constrained", "--top-k", "16", "--flops", "1e22"]
    out = run_json(capsys, *common, "--unique-tokens", "25e9", "--json")
    alloc = out["allocation"]
    assert alloc["kind"].startswith("data-constrained") and alloc["unique_tokens"] == 25e9
    assert alloc["n_opt"] < alloc["unconstrained_n_opt"]
    assert cli.main(common) == 0
    text = capsys.readouterr().out
    assert "6ND frontier (unlimited unique data" in text and "warning: " in text and "--unique-tokens U" in text
    assert cli.main(["fit", "parametric", str(path), "--unique-tokens", "1e9"]) == 2
    assert "--unique-tokens is for --law data_constrained" in capsys.readouterr().err


def test_allocate_data_constrained_and_inference_aware(capsys):
    out = run_json(
        capsys, "allocate", "--law", "data_constrained", "--flops", "1e22", "--unique-tokens", "25e9", "--json"
    )
    assert out["n_opt"] == pytest.approx(7.02e9, rel=2e-3) and out["d_opt"] == pytest.approx(2.37e11, rel=2e-3)
    assert "Muennighoff" in out["law_source"]
    out = run_json(capsys, "allocate", "--flops", "1e23", "--inference-tokens", "1e13", "--json")
    inf = out["inference_aware"]
    assert inf["without_inference"]["n_opt"] == pytest.approx(out["n_opt"], rel=1e-6)
    assert inf["n_opt"] < out["n_opt"] and inf["d_opt"] > out["d_opt"]
    assert cli.main(["allocate", "--law", "data_constrained", "--flops", "1e22"]) == 2
    assert "needs --flops C and --unique-tokens U" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "allocate",
                "--law",
                "data_constrained",
                "--flops",
                "1e22",
                "--unique-tokens",
                "25e9",
                "--table",
                "--inference-tokens",
                "1e12",
            ]
        )
        == 2
    )
    assert "--table, --inference-tokens use the 6ND frontier" in capsys.readouterr().err
    assert cli.main(["allocate", "--inference-tokens", "1e12"]) == 2
    assert "needs --target-loss" in capsys.readouterr().err
    capsys.readouterr()
    assert cli.main(["allocate", "--table"]) == 0
    text = capsys.readouterr().out
    assert "Table A3, Approach 3 (published)" in text and "+18.2%" in text


def test_data_constrained_law_without_unique_tokens_says_how_to_give_them(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["params", "tokens", "loss"])
        writer.writerows((n, d, 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28) for n in (1e7, 1e8, 1e9) for d in (1e9, 1e10))
    assert cli.main(["fit", "parametric", str(path), "--law", "data_constrained"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "['u']" not in line
    assert "has no column U, unique_tokens or U_D" in line and "--unique-tokens-col" in line
    assert cli.main(["fit", "parametric", "--reference", "epoch", "--law", "data_constrained"]) == 2
    assert "the reference points do not record" in capsys.readouterr().err


def test_counts_take_the_noun_in_the_right_number(tmp_path, capsys):
    from chinchilla.fit.table import counted

    assert (counted(1, "run"), counted(2, "run"), counted(0, "run")) == ("1 run", "2 runs", "0 runs")
    path = tmp_path / "grid.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["params", "tokens", "loss"])
        for n in np.geomspace(1e7, 1e9, 4):
            for d in np.geomspace(1e9, 1e11, 4):
                writer.writerow([n, d, 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28])
    argv = ["fit", "parametric", str(path), "--top-k", "4", "--drop-highest-loss", "1", "--holdout-flops", "5e20"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "15 runs" in out and "dropped the highest-loss run)" in out and "5e+20: 1 run," in out, out
    argv = ["allocate", "--law", "data_constrained", "--flops", "1e22", "--unique-tokens", "1e10", "--table"]
    assert cli.main(argv) == 2
    assert "--table uses the 6ND frontier" in capsys.readouterr().err
