"""``chinchilla fit``'s numeric flags are checked as they are parsed: a value out of range is one line naming the
flag and the range, with exit status 2, before any table is read or any fit run."""

from __future__ import annotations

import pytest

from chinchilla import cli

# No file is read: a flag's value is refused before PATH is looked at.
MISSING = "/nonexistent/runs.csv"


def _error(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["approach2", MISSING, "--neighbours", "0"], "argument --neighbours: 0 lies outside [1,"),
        (["approach2", MISSING, "--neighbours", "1.5"], "argument --neighbours: 1.5 is not a whole number"),
        (["approach2", MISSING, "--holdout-flops", "-1"], "argument --holdout-flops: -1 lies outside"),
        (["approach2", MISSING, "--seed", "-1"], "argument --seed: -1 lies outside [0,"),
        (["approach1", MISSING, "--points", "1"], "argument --points: 1 lies outside [2,"),
        (["approach1", MISSING, "--seed", "-3"], "argument --seed: -3 lies outside [0,"),
        (["parametric", MISSING, "--flops", "0"], "argument --flops/--budget: 0 lies outside"),
        (["parametric", MISSING, "--holdout-flops", "nan"], "argument --holdout-flops: 'nan' is not a finite"),
        (["parametric", MISSING, "--drop-highest-loss", "-1"], "argument --drop-highest-loss: -1 lies outside [0,"),
        (["parametric", MISSING, "--unique-tokens", "0"], "argument --unique-tokens: 0 lies outside [1,"),
        (["parametric", MISSING, "--top-k", "0"], "argument --top-k: 0 lies outside [1,"),
        (["parametric", MISSING, "--top-k", "some"], "give a positive whole number, 'all' or 'auto'"),
        (["parametric", MISSING, "--seed", "-1"], "argument --seed: -1 lies outside [0,"),
    ],
)
def test_numeric_flags_out_of_range_are_one_line_at_parse_time(capsys, argv, message):
    line = _error(capsys, "fit", *argv)
    assert message in line and len(line) < 250, line
    assert "No such file" not in line


@pytest.mark.parametrize(
    "values, message",
    [
        (("90", "10"), "argument --percentiles: LOW 90 must be below HIGH 10"),
        (("50", "50"), "argument --percentiles: LOW 50 must be below HIGH 50"),
        (("0", "200"), "argument --percentiles: 200 lies outside [0, 100]"),
        (("-5", "95"), "argument --percentiles: -5 lies outside [0, 100]"),
    ],
)
def test_percentiles_must_rise_within_0_and_100(capsys, values, message):
    line = _error(capsys, "fit", "parametric", MISSING, "--resamples", "5", "--percentiles", *values)
    assert message in line, line


def test_accepted_values_still_parse():
    parser = cli.build_parser()
    args = parser.parse_args(["fit", "parametric", "x.csv", "--top-k", "all", "--percentiles", "0", "100"])
    assert args.top_k is None and args.percentiles == (0.0, 100.0)
    assert parser.parse_args(["fit", "parametric", "x.csv"]).top_k == "auto"
    assert parser.parse_args(["fit", "parametric", "x.csv", "--top-k", "16"]).top_k == 16
    assert parser.parse_args(["fit", "approach2", "x.csv", "--neighbours", "2"]).neighbours == 2
