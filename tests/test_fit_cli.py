"""``chinchilla fit parametric`` and ``chinchilla allocate``, in the forms the issue gives."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

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
    out = run_json(capsys, "fit", "parametric", str(path), "--n-col", "params", "--flops-col", "compute",
                   "--loss-col", "final_loss", "--drop-highest-loss", "5", "--reduction", "sum", "--bootstrap", "3",
                   "--json")
    assert REQUIRED_FIT_KEYS <= set(out) and out["n_points"] == 240
    assert f"{out['objective']:.7e}" == "1.0182740e-03"  # the replication's objective to 8 figures
    boot = out["bootstrap"]
    assert boot["n_resamples"] == 3 and set(boot["intervals"]) >= {"a", "b", "tokens_per_param"}


def test_fit_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e8,2e9,3.1\n")
    assert cli.main(["fit", "parametric", str(path), "--n-col", "N", "--tokens-col", "tokens", "--loss-col",
                     "loss", "--json"]) == 2
    err = capsys.readouterr().err
    assert "column(s) ['N'] not found" in err and err.count("\n") == 1
    assert cli.main(["fit", "parametric", str(path), "--json"]) == 2
    assert "missing --n-col, --loss-col, --tokens-col or --flops-col" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert cli.main(["fit", "parametric", str(empty), "--n-col", "N", "--tokens-col", "D", "--loss-col", "L"]) == 2
    assert "is empty" in capsys.readouterr().err


def test_allocate_as_written():
    """The console script, in the exact form of the issue, with the paper's unrounded fit: ~40B parameters."""
    script = Path(sys.executable).with_name("chinchilla")
    command = [str(script), "allocate", "--flops", "5.76e23", "--E", "1.69337", "--A", "406.401", "--B", "410.723",
               "--alpha", "0.33917084", "--beta", "0.2849083", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    out = json.loads(result.stdout)
    assert {"n_opt", "d_opt", "G", "a", "b"} <= set(out)
    assert round(out["n_opt"] / 1e9) == 40
    assert out["a"] == pytest.approx(0.4565, abs=1e-4) and out["G"] == pytest.approx(1.30005, rel=1e-5)


def test_allocate_defaults_to_the_paper_and_says_so(capsys):
    out = run_json(capsys, "allocate", "--flops", "5.76e23", "--params", "1e9", "--table", "--ladder", "chinchilla",
                   "--json")
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
    out = run_json(capsys, "fit", "parametric", str(path), "--n-col", "N", "--tokens-col", "D", "--loss-col", "L",
                   "--top-k", "16", "--json")
    assert out["alpha"] < 0 and out["allocation"] is None and out["G"] is None
    assert "no compute-optimal frontier" in out["note"]
