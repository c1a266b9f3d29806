"""Parameters the data do not determine are reported (API, JSON, CLI), and data that cannot
determine the law at all get an error that says why."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chinchilla.cli import main
from chinchilla.fit import CHINCHILLA, DataConstrainedLaw, ScalingTable, fit_table
from chinchilla.fit.diagnostics import check_data, interval_flags, parameter_status
from chinchilla.fit.laws import paper_grid

STARTS = paper_grid()[::50]  # 90 starts keep these quick


def grid_table(E=1.7, A=400.0, B=400.0, alpha=0.34, beta=0.28, noise=0.0, seed=0, sizes=5, tokens=6):
    n, d = np.meshgrid(np.geomspace(1e8, 1e10, sizes), np.geomspace(2e9, 2e11, tokens), indexing="ij")
    n, d = n.ravel(), d.ravel()
    loss = (E + A / n**alpha + B / d**beta) * np.exp(noise * np.random.default_rng(seed).standard_normal(n.size))
    return ScalingTable.from_arrays(n, loss, d=d)


def test_identified_fit_is_all_ok():
    fit = fit_table(grid_table(noise=0.003), starts=STARTS)
    assert fit.identified and {p["status"] for p in fit.parameters.values()} == {"ok"}
    assert fit.to_dict()["identified"] is True and fit.to_dict()["warnings"] == []


def test_vanishing_E_is_at_its_lower_bound():
    """Data made with E = 0: the fit runs E towards 0, and says the data do not determine it."""
    fit = fit_table(grid_table(E=0.0, noise=0.003, seed=1), starts=STARTS)
    assert fit.parameters["E"]["status"] == "at_lower_bound", fit.parameters["E"]
    assert fit.parameters["alpha"]["status"] == "ok" and not fit.identified
    assert any("E=" in w and "lower bound 0" in w for w in fit.warnings)


def test_parameter_status_probes_each_direction():
    """A stand-in objective flat in log E below the fit and in log B above it, steep elsewhere."""
    theta = np.array([5.0, 6.0, -20.0, 0.3, 0.0005])

    def objective_at(thetas):
        return np.array(
            [
                1.0
                + (0.0 if t[2] < theta[2] else 1e-3 * abs(t[2] - theta[2]))
                + (0.0 if t[1] > theta[1] else abs(t[1] - theta[1]))
                + abs(t[0] - theta[0])
                for t in thetas
            ]
        )

    status = parameter_status(CHINCHILLA, theta, 1.0, objective_at)
    assert status["E"]["status"] == "at_lower_bound"
    assert status["B"]["status"] == "unbounded_above" and "infinity" in status["B"]["note"]
    assert status["A"]["status"] == "ok" and status["alpha"]["status"] == "ok"
    assert status["beta"]["status"] == "at_lower_bound"  # an exponent at 0


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda n, d, l: (np.full_like(n, n[0]), np.full_like(d, d[0]), np.full_like(l, l[0])), "the same run"),
        (lambda n, d, l: (n, d, np.full_like(l, 3.0)), "same loss 3"),
    ],
)
def test_undeterminable_data_raise(change, message):
    table = grid_table(noise=0.003)
    n, d, loss = change(table.n, table.d, table.loss)
    with pytest.raises(ValueError, match=message):
        fit_table(ScalingTable.from_arrays(n, loss, d=d), starts=STARTS)


@pytest.mark.parametrize(
    "column, message, names", [("n", "same model size", {"A", "alpha"}), ("d", "same token count", {"B", "beta"})]
)
def test_one_size_or_one_token_count_warns_and_flags(column, message, names):
    """One model size (or token count) determines only the other term: a warning, and the lost term's parameters
    (or E) are not reported as determined."""
    table = grid_table(noise=0.003, sizes=1 if column == "n" else 8, tokens=1 if column == "d" else 8)
    checked = check_data(CHINCHILLA.param_names, {"n": table.n, "d": table.d}, table.loss, np.ones(len(table)))
    assert len(checked) == 1 and message in checked[0]
    fit = fit_table(table, starts=STARTS)
    assert any(message in w for w in fit.warnings)


def test_loss_rising_with_n_is_a_warning_and_alpha_at_its_bound():
    table = grid_table(A=1e-9, noise=0.002)  # no N term: loss = E + B / D^beta, times a rise with N
    rising = ScalingTable.from_arrays(table.n, table.loss * (table.n / 1e8) ** 0.02, d=table.d)
    fit = fit_table(rising, starts=STARTS)
    assert any(w.startswith("loss does not fall with N") for w in fit.warnings)
    assert fit.parameters["alpha"]["status"] == "at_lower_bound" or fit.parameters["A"]["status"] != "ok"


def test_data_constrained_without_excess_parameters_flags_r_n_star():
    """No run has more parameters than its unique data support: R_N* is not determined."""
    n, u, epochs = np.meshgrid(np.geomspace(1e7, 1e8, 4), np.geomspace(1e10, 1e11, 3), [1, 2, 4, 8], indexing="ij")
    n, u = n.ravel(), u.ravel()
    d = u * epochs.ravel()
    law = DataConstrainedLaw()
    truth = law.raw(E=1.7, A=400.0, B=400.0, alpha=0.34, beta=0.34, R_D_star=15.0, R_N_star=5.0)
    from chinchilla.fit import FixedLaw

    fixed = FixedLaw.of(law, **dict(zip(law.param_names[:5], truth[:5])))
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        features = law.features({"n": jnp.asarray(n), "d": jnp.asarray(d), "u": jnp.asarray(u)})
        loss = np.exp(np.asarray(law.log_predict(jnp.asarray(truth), features)))
    fit = fit_table(ScalingTable.from_arrays(n, loss, d=d, unique_tokens=u), law=fixed)
    assert fit.parameters["R_N_star"]["status"] in ("unbounded_above", "at_lower_bound")
    assert fit.parameters["R_D_star"]["status"] == "ok"
    assert fit.parameters["E"]["status"] == "fixed"


def test_interval_flags():
    flags = interval_flags(
        {
            "A": (15.0, 5e36),
            "B": (1000.0, 5000.0),
            "alpha": (-0.01, 0.4),
            "beta": (0.3, 0.4),
            "E": (0.0, 1.8),
            "a": (0.4, 0.6),
        }
    )
    assert set(flags) == {"A", "alpha", "E"} and "decades" in flags["A"] and "bound 0" in flags["alpha"]


def test_cli_prints_a_warning_per_problem(tmp_path, capsys):
    table = grid_table(E=0.0, noise=0.003, seed=1)
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss\n" + "".join(f"{n},{d},{l}\n" for n, d, l in zip(table.n, table.d, table.loss)))
    args = ["fit", "parametric", str(path), "--n-col", "N", "--tokens-col", "D", "--loss-col", "loss"]
    assert main(args + ["--top-k", "16"]) == 0
    text = capsys.readouterr().out
    assert "(at_lower_bound)" in text and "warning: E=" in text
    assert main(args + ["--top-k", "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameter_status"]["E"] == "at_lower_bound" and out["status"] == "converged"
    assert any("lower bound 0" in w for w in out["warnings"])


def test_bootstrap_flags_an_undetermined_interval():
    """E -> 0 in every resample: its interval spans many decades and is flagged (JSON and CLI), not reported as a
    plain interval; the determined exponents are not flagged."""
    from chinchilla.fit.bootstrap import bootstrap_table

    table = grid_table(E=0.0, noise=0.003, seed=1)
    fit = fit_table(table, starts=STARTS)
    boot = bootstrap_table(table, n_resamples=8, seed=0, fit=fit)
    flags = boot.to_dict()["interval_flags"]
    assert "E" in flags and "alpha" not in flags and "beta" not in flags
    assert boot.n_not_converged == 0
