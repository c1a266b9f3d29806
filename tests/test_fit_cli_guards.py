"""``chinchilla fit`` and ``allocate`` guard their user: long fits show progress and stop on Ctrl-C, allocations
outside a law's domain are refused or warned, ``--json`` is strict JSON and says errors on stdout, and ``--where``
filters that would mislead are refused or combined as written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from chinchilla import cli
from chinchilla.fit import fit_table, reference_table
from chinchilla.fit.bootstrap import bootstrap_table
from chinchilla.fit.progress import StderrProgress
from tests.test_fit_approaches_1_2 import iso_rows, run_json, write_csv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------ progress and Ctrl-C


def test_bootstrap_in_chunks_equals_one_call_and_reports_progress(table240, full_fit):
    calls = []
    whole = bootstrap_table(table240, n_resamples=10, seed=5, fit=full_fit, chunk=10)
    chunked = bootstrap_table(
        table240,
        n_resamples=10,
        seed=5,
        fit=full_fit,
        chunk=4,
        progress=lambda done, total: calls.append((done, total)),
    )
    for name in whole.samples:
        np.testing.assert_array_equal(chunked.samples[name], whole.samples[name])
    np.testing.assert_array_equal(chunked.objective, whole.objective)
    assert calls == [(0, 10), (4, 10), (8, 10), (10, 10)]


def test_a_fit_from_every_start_in_chunks_equals_the_unchunked_core(table240):
    import jax
    import jax.numpy as jnp

    from chinchilla.fit.parametric import _fit_core_jit, law_covariates, pad_runs, prepare_starts, solver_config

    calls = []
    fit = fit_table(table240, top_k=300, chunk=128, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 300), (128, 300), (256, 300), (300, 300)]
    covariates = law_covariates(fit.law, table240)
    grid = prepare_starts(fit.law, None, table240.loss, covariates)
    padded, loss, w = pad_runs(covariates, table240.loss, np.ones(len(table240)))
    with jax.enable_x64(True):
        state = _fit_core_jit(
            jnp.asarray(grid),
            {k: jnp.asarray(v) for k, v in padded.items()},
            jnp.asarray(loss),
            jnp.asarray(w),
            law=fit.law,
            config=solver_config("sum"),
            top_k=300,
            strategy="map",
        )
    np.testing.assert_array_equal(fit.theta, np.asarray(state.params))
    np.testing.assert_array_equal(fit.diagnostics.objective, np.asarray(state.starts.objective))


def test_ctrl_c_between_chunks_stops_the_bootstrap_at_once(table240, full_fit):
    """A KeyboardInterrupt that arrives during a chunk is raised when the chunk returns: no further chunk runs."""
    calls = []

    def progress(done, total):
        calls.append(done)
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bootstrap_table(table240, n_resamples=100_000, seed=0, fit=full_fit, chunk=4, progress=progress)
    assert calls == [0, 4]


def test_stderr_progress_lines(capsys):
    progress = StderrProgress("bootstrap", "resamples", interval=0.0)
    progress(0, 10)
    progress(5, 10)
    progress(10, 10)
    lines = capsys.readouterr().err.splitlines()
    assert (
        lines[1].startswith("chinchilla fit: bootstrap: 5/10 resamples (50.0%)") and "left (Ctrl-C stops)" in lines[1]
    )
    assert lines[-1].endswith("done")
    quiet = StderrProgress("bootstrap", "resamples", interval=60.0)
    quiet(0, 10), quiet(10, 10)
    assert capsys.readouterr().err == ""  # work over within the interval prints nothing


@pytest.mark.slow
def test_cli_bootstrap_shows_progress_and_stops_soon_after_ctrl_c():
    """A long bootstrap (`fit parametric --reference epoch --resamples 100000`) must not run silent for minutes nor
    ignore Ctrl-C: it prints progress, and SIGINT ends it with 'interrupted' (exit 130) long before the work could
    finish (the bound is generous: compilation and a loaded machine)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "CHINCHILLA_PROGRESS_INTERVAL": "0"}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "chinchilla.cli", "fit", "parametric"),
            *("--reference", "epoch", "--resamples", "100000", "--json"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stderr.readline()
        while first and "resamples (" not in first or first.startswith("chinchilla fit: bootstrap: 0/"):
            first = proc.stderr.readline()
        assert "bootstrap: " in first and "/100,000 resamples" in first, first
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)  # the 100,000 resamples would take far longer: it stopped at the signal
    finally:
        proc.kill()
    err = proc.stderr.read().splitlines()
    assert proc.returncode == 130 and err[-1] == "chinchilla fit: interrupted", err[-3:]  # no resume is promised
    error = json.loads(proc.stdout.read())  # --json: an interruption is one error object on stdout too
    assert error == {
        "error": "interrupted",
        "error_kind": "interrupted",
        "exit_status": 130,
        "command": "chinchilla fit parametric",
    }


# ------------------------------------------------------------------------------ outside the law's domain


def test_allocate_refuses_fewer_unique_tokens_than_a_sequence(capsys):
    """Refused in one line, not answered with 'N_opt = 10.31 parameters ... loss 1333.7' and exit 0."""
    assert cli.main(["allocate", "--flops", "1e22", "--law", "data_constrained", "--unique-tokens", "1"]) == 2
    err = capsys.readouterr().err
    assert "unique tokens U = 1 is fewer than one training sequence (128 tokens)" in err


def test_allocate_refuses_fewer_parameters_than_a_layer(capsys):
    assert cli.main(["allocate", "--flops", "1e4"]) == 2
    assert "N_opt = 38.44 parameters, fewer than one transformer layer" in capsys.readouterr().err


def test_allocate_warns_beyond_the_epochs_and_sizes_the_law_was_fitted_on(capsys):
    out = run_json(
        capsys, "allocate", "--flops", "1e22", "--law", "data_constrained", "--unique-tokens", "1e6", "--json"
    )
    assert out["epochs"] > 1e8
    assert any(
        "epochs of the unique data is beyond the 1500 epochs of Muennighoff et al. 2023's runs" in w
        for w in out["warnings"]
    )
    text = cli.main(["allocate", "--flops", "1e27"]) == 0 and capsys.readouterr().out
    assert "warning: C = 1e+27 is 76,923x the largest of the paper's Figure 4 runs (1.3e+22)" in text
    # Inside the fitted range: no warning (Muennighoff et al.'s own example; the paper's Gopher budget).
    assert (
        run_json(
            capsys, "allocate", "--flops", "1e22", "--law", "data_constrained", "--unique-tokens", "25e9", "--json"
        )["warnings"]
        == []
    )
    assert run_json(capsys, "allocate", "--flops", "5.76e23", "--json")["warnings"] == []


def test_paper_fit_range_is_the_reference_tables():
    from chinchilla.fit.allocate import PAPER_FIT_RANGE, FittedRange

    table = FittedRange.from_table(reference_table("epoch"))
    for key in ("n", "d", "flops"):
        np.testing.assert_allclose(getattr(PAPER_FIT_RANGE, key), getattr(table, key), rtol=5e-3)


def test_fit_parametric_flags_an_allocation_far_beyond_its_runs(tmp_path, capsys):
    rows = [(c, n, d, loss) for c, n, d, loss in iso_rows()]
    path = write_csv(tmp_path / "runs.csv", ["budget", "N", "D", "loss"], rows)
    out = run_json(capsys, "fit", "parametric", path, "--json")  # default budget 5.76e23, runs up to 1e21
    assert (
        any("C = 5.76e+23 is 576x the largest of the 36 runs fitted" in w for w in out["allocation"]["domain_warnings"])
        and out["allocation"]["domain_warnings"][0] in out["all_warnings"]
    )
    out = run_json(capsys, "fit", "parametric", path, "--json", "--flops", "1e20")
    assert "domain_warnings" not in out["allocation"]
    out = run_json(capsys, "fit", "parametric", path, "--json", "--flops", "1e4")
    assert out["allocation"] is None and "fewer than one transformer layer" in out["note"]
    assert out["note"] in out["all_warnings"]


# ------------------------------------------------------------------------------ strict JSON, errors too


def test_approach2_without_resamples_is_strict_json(tmp_path, capsys):
    path = write_csv(tmp_path / "iso.csv", ["budget", "N", "D", "loss"], iso_rows())
    out = run_json(capsys, "fit", "approach2", path, "--resamples", "0", "--json")
    assert out["a_interval"] == [None, None]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "approach2", "/nonexistent/runs.csv", "--json"], "No such file or directory"),
        (["fit", "parametric", "--json"], "give a CSV path or --reference epoch"),
        (["fit", "approach1", "/nonexistent", "--json"], "/nonexistent"),
        (
            ["allocate", "--flops", "1e22", "--law", "data_constrained", "--unique-tokens", "1", "--json"],
            "fewer than one training sequence",
        ),
    ],
)
def test_json_errors_print_an_error_object_on_stdout(capsys, argv, message):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)
    assert message in error["error"] and error["exit_status"] == 2 and error["command"].startswith("chinchilla ")
    assert message in captured.err  # the usual one line stays on stderr


# ------------------------------------------------------------------------------ --where filters


@pytest.fixture
def runs_csv(tmp_path):
    return write_csv(
        tmp_path / "w.csv", ["N", "D", "loss"], [(1e8, 2e9, 3.1), (2e8, 2e9, 3.0), (4e8, 1e10, 2.8), (1e9, 1e10, 2.7)]
    )


@pytest.mark.parametrize(
    "expression, message",
    [
        ("N / 0 > 1", r"division by zero at character 3 \(the divisor is 0 everywhere\)"),
        ("(N > 1 or D / (N - N) > 1)", r"division by zero at character 13 \(the divisor is 0 in 4 of 4 rows\)"),
        ("not (N > 1e8", "expected '\\)' at the end"),
        ("(N > 1e8 or D)", "expected a comparison .* at character 14"),
        ("(N > 1e8) + 1 > 2", "a filter in brackets \\(true or false per row\\) cannot take '\\+' at character 11"),
    ],
)
def test_where_errors(runs_csv, expression, message):
    from chinchilla.fit.table import read_csv

    with pytest.raises(ValueError, match=message):
        read_csv(runs_csv, where=expression)


@pytest.mark.parametrize(
    "expression, kept",
    [
        ("(N > 1e8 or D < 1e9) and loss < 3", [4e8, 1e9]),
        ("not (N > 2e8 and D > 5e9)", [1e8, 2e8]),
        ("(D / N) > 40 || loss >= 3.1", [1e8]),
        ("((D / N)) > 15 and not (not N < 1e9)", [1e8, 4e8]),
        ("(1e8 < N) and (loss < 3)", [4e8, 1e9]),
    ],
)
def test_where_brackets_around_and_or_not(runs_csv, expression, kept):
    from chinchilla.fit.table import read_csv

    np.testing.assert_array_equal(read_csv(runs_csv, where=expression).n, kept)


def test_repeated_where_flags_combine_with_and(tmp_path, capsys):
    """Every --where must hold: a second one does not replace the first."""
    path = write_csv(tmp_path / "iso.csv", ["budget", "N", "D", "loss"], iso_rows())
    out = run_json(
        capsys,
        "fit",
        "approach2",
        path,
        "--where",
        "budget >= 1e19",
        "--where",
        "budget <= 1e20",
        "--resamples",
        "0",
        "--json",
    )
    assert [b["flops"] for b in out["budgets"]] == [1e19, 1e20]
    assert "where (budget >= 1e19) and (budget <= 1e20): 18 of 36 runs" in out["source"]
    assert cli.main(["fit", "approach2", path, "--where", "budget > 1e20", "--where", "budget < 1e19"]) == 2
    err = capsys.readouterr().err
    assert "keeps none of the 36 runs" in err and "'budget > 1e20' alone keeps 9; 'budget < 1e19' alone keeps 9" in err
    assert cli.main(["fit", "parametric", "--help"]) == 0
    assert "Repeat --where to combine filters with AND" in " ".join(capsys.readouterr().out.split())
