"""Issue 20: Approaches 1 and 2 as trustworthy as Approach 3 on anybody's data (ties, 3-run budgets, thin budgets,
C spreads, unit rescaling, undetermined grids, strict CSVs), through ``chinchilla fit``."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from chinchilla import cli
from tests.test_approaches import SURFACE, TIE_BUDGETS, tie_table


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


def iso_rows(budgets=(1e18, 1e19, 1e20, 1e21), ratios=1.5 ** np.arange(-4, 5)):
    return [(c, SURFACE.n_opt(c) * r, c / (6 * SURFACE.n_opt(c) * r),
             SURFACE.loss(SURFACE.n_opt(c) * r, c / (6 * SURFACE.n_opt(c) * r))) for c in budgets for r in ratios]


# ------------------------------------------------------------------------------------------------ fault 1: ties
def test_cli_tie_case_gives_the_untied_answer(tmp_path, capsys):
    answers = []
    for offset in (0.0, 1e-9):
        c, n, d, loss = tie_table(offset)
        path = write_csv(tmp_path / f"tie{offset}.csv", ["budget", "N", "D", "loss"], zip(c, n, d, loss))
        answers.append(run_json(capsys, "fit", "approach2", path, "--resamples", "0", "--json"))
    tied, untied = answers
    assert all(b["interior"] for b in tied["budgets"])
    assert tied["a"] == pytest.approx(untied["a"], abs=1e-6)


# ------------------------------------------------------------------------------ fault 2: intervals and 3-run budgets
def test_cli_interval_survives_a_3_run_budget_and_says_what_it_did(tmp_path, capsys):
    from tests.test_approaches import budgets_with_a_small_one

    c, n, d, loss = budgets_with_a_small_one([0.5, 1.0, 2.0])
    path = write_csv(tmp_path / "small.csv", ["budget", "N", "D", "loss"], zip(c, n, d, loss))
    out = run_json(capsys, "fit", "approach2", path, "--resamples", "50", "--json")
    assert out["n_resamples"] == 50 and None not in out["a_interval"]
    assert any("kept whole" in w for w in out["warnings"])
    assert cli.main(["fit", "approach2", path, "--resamples", "50"]) == 0
    assert "warning: budget C = 3e+17 has 3 runs" in capsys.readouterr().out
