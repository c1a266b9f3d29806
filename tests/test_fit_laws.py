"""Laws, objective and solver of the parametric fitter."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chinchilla.fit import CHINCHILLA, DataConstrainedLaw, FixedLaw, ScalingTable, fit_table
from chinchilla.fit.laws import MUENNIGHOFF_THETA, get_law, lse3, paper_grid
from chinchilla.fit.objective import huber, objective
from chinchilla.fit.parametric import evaluate_objective
from chinchilla.fit.solver import REFINE_RTOL, STOP_REASONS, SolverConfig, minimize, refine

LAW = DataConstrainedLaw()


def predict(law, theta, **covariates) -> np.ndarray:
    """The law's loss at the covariates, in float64."""
    with jax.enable_x64(True):
        columns = {k: jnp.atleast_1d(jnp.asarray(v, dtype=jnp.float64)) for k, v in covariates.items()}
        return np.exp(np.asarray(law.log_predict(jnp.asarray(theta), law.features(columns))))


def dc_loss(n, d, u, theta=MUENNIGHOFF_THETA) -> np.ndarray:
    return predict(LAW, theta, n=n, d=d, u=u)


def test_paper_grid_is_the_papers():
    grid = paper_grid()
    assert grid.shape == (4500, 5)
    assert sorted(set(grid[:, 0])) == [0, 5, 10, 15, 20, 25] and sorted(set(grid[:, 2])) == [-1, -0.5, 0, 0.5, 1]
    assert sorted(set(grid[:, 3])) == [0, 0.5, 1, 1.5, 2] and len(np.unique(grid, axis=0)) == 4500


def test_lse3_is_log_sum_exp_without_overflow():
    t = np.array([[1.0, -2.0, 0.5], [800.0, 799.0, -5.0]])
    with jax.enable_x64(True):
        got = np.asarray(lse3(*jnp.asarray(t.T)))
    assert got[0] == pytest.approx(np.log(np.exp(t[0]).sum()), rel=1e-15)
    assert got[1] == pytest.approx(800 + np.log1p(np.exp(-1.0) + np.exp(-805.0)), rel=1e-15)


def test_chinchilla_law_is_e_plus_two_power_laws():
    theta = CHINCHILLA.raw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    n, d = np.array([1e8, 7e10]), np.array([2e9, 1.4e12])
    got = predict(CHINCHILLA, theta, n=n, d=d)
    np.testing.assert_allclose(got, 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28, rtol=1e-14)
    assert {k: float(v) for k, v in CHINCHILLA.natural(theta).items()} == pytest.approx(
        {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    )


def test_data_constrained_golden_values():
    """Muennighoff et al. 2023's README: their fit at the two models of their Figure 1 (right)."""
    assert dc_loss(6.34e9, 242e9, 25e9)[0] == pytest.approx(2.2256440889984477, rel=1e-12)
    assert dc_loss(8.67e9, 178e9, 25e9)[0] == pytest.approx(2.2269634075087867, rel=1e-12)


def test_data_constrained_without_repetition_is_chinchilla():
    n, d = np.array([1e8, 3e8]), np.array([5e10, 2e11])  # N below N_opt(U_D): no excess parameters
    expected = predict(CHINCHILLA, np.asarray(MUENNIGHOFF_THETA[:5]), n=n, d=d)
    np.testing.assert_allclose(dc_loss(n, d, d), expected, rtol=1e-13)
    assert dc_loss(1e8, 4e11, 5e10)[0] > dc_loss(1e8, 4e11, 4e11)[0]  # repeated tokens are worth less


def test_fixed_law_fits_the_free_parameters():
    """Synthetic data-constrained runs; with the Chinchilla part fixed, R_D* and R_N* come back exactly."""
    n, u, epochs = np.meshgrid(
        np.geomspace(1e7, 1e10, 8), np.geomspace(1e8, 1e10, 5), [1, 2, 4, 8, 16, 40], indexing="ij"
    )
    n, u = n.ravel(), u.ravel()
    d = u * epochs.ravel()
    table = ScalingTable.from_arrays(n, dc_loss(n, d, u), d=d, unique_tokens=u)
    names = LAW.param_names
    law = FixedLaw.of(LAW, **{k: v for k, v in zip(names[:5], MUENNIGHOFF_THETA[:5])})
    assert law.param_names == ("log_R_D", "log_R_N") and law.default_starts().shape == (49, 2)
    fit = fit_table(table, law=law, top_k=None)
    assert fit.R_D_star == pytest.approx(15.387756, rel=1e-4)
    assert fit.R_N_star == pytest.approx(5.309743, rel=1e-4)
    assert fit.alpha == pytest.approx(MUENNIGHOFF_THETA[3])
    assert evaluate_objective(table, fit.theta, law=law) == pytest.approx(fit.objective, rel=1e-12)


def test_fixed_law_rejects_unknown_or_all_parameters():
    with pytest.raises(ValueError, match="unknown parameter"):
        FixedLaw.of(CHINCHILLA, gamma=1.0)
    with pytest.raises(ValueError, match="leaves none to fit"):
        FixedLaw.of(CHINCHILLA, log_A=1.0, log_B=1.0, log_E=0.0, alpha=0.3, beta=0.3)
    with pytest.raises(ValueError, match="unknown law"):
        get_law("kaplan")


def test_huber_and_reductions():
    delta = 1e-3
    with jax.enable_x64(True):
        r = jnp.asarray([0.5e-3, -2e-3, 0.0])
        np.testing.assert_allclose(np.asarray(huber(r, delta)), [0.125e-6, 1.5e-6, 0.0], rtol=1e-12)
        theta = jnp.asarray(CHINCHILLA.raw(E=1.7, A=400.0, B=400.0, alpha=0.34, beta=0.28))
        cov = {"n": jnp.asarray([1e8, 1e9, 1e10]), "d": jnp.asarray([1e10, 2e10, 3e11])}
        log_loss = jnp.log(jnp.asarray([3.0, 2.5, 2.0]))
        w = jnp.asarray([2.0, 0.0, 1.0])
        features = CHINCHILLA.features(cov)
        total = objective(theta, CHINCHILLA, features, log_loss, w)
        mean = objective(theta, CHINCHILLA, features, log_loss, w, reduction="mean")
        rows = jnp.asarray([0, 0, 2])
        duplicated = objective(
            theta, CHINCHILLA, {k: v[rows] for k, v in features.items()}, log_loss[rows], jnp.ones(3)
        )
    assert float(mean) == pytest.approx(float(total) / 3.0, rel=1e-14)
    assert float(total) == pytest.approx(float(duplicated), rel=1e-14)  # a weight is a multiplicity


# Residuals on both sides of delta = 1e-3, at it, and just beyond it (Hoffmann et al. 2022, Section 3.3).
HUBER_RESIDUALS = (0.0, 1e-12, -1e-7, 3e-4, -5e-4, 1e-3, -1e-3, 1e-3 + 1e-12, -2e-3, 0.05, -0.7)


def numpy_huber(r: np.ndarray, delta: float) -> np.ndarray:
    """The Huber loss written out piecewise in numpy, independently of chinchilla.fit.objective."""
    r = np.asarray(r, dtype=np.float64)
    out = np.empty_like(r)
    inside = np.abs(r) <= delta
    out[inside] = 0.5 * r[inside] ** 2
    out[~inside] = delta * np.abs(r[~inside]) - 0.5 * delta**2
    return out


def test_objective_is_the_weighted_huber_of_log_residuals():
    """The Approach 3 objective against a numpy computation: residuals log L_hat - log L placed on both sides of
    delta and at it, each run's piecewise Huber weighted and summed (or divided by the total weight)."""
    delta = 1e-3
    r = np.asarray(HUBER_RESIDUALS)
    n = np.geomspace(1e8, 1e10, r.size)
    d = np.geomspace(1e10, 1e12, r.size)
    weights = np.arange(1.0, r.size + 1.0)
    theta = CHINCHILLA.raw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    with jax.enable_x64(True):
        features = CHINCHILLA.features({"n": jnp.asarray(n), "d": jnp.asarray(d)})
        log_hat = np.asarray(CHINCHILLA.log_predict(jnp.asarray(theta), features))
        log_loss = log_hat - r
        residual = log_hat - log_loss  # as the objective forms it (r to rounding)
        args = (jnp.asarray(theta), CHINCHILLA, features, jnp.asarray(log_loss), jnp.asarray(weights))
        total = float(objective(*args, delta=delta))
        mean = float(objective(*args, delta=delta, reduction="mean"))
        np.testing.assert_allclose(np.asarray(huber(jnp.asarray(r), delta)), numpy_huber(r, delta), rtol=1e-14)
    np.testing.assert_allclose(residual, r, atol=1e-15)
    expected = float(np.sum(weights * numpy_huber(residual, delta)))
    assert total == pytest.approx(expected, rel=1e-13)
    assert mean == pytest.approx(expected / weights.sum(), rel=1e-13)
    # The same function, and scale, as optax's huber_loss (kept out of the fit: see chinchilla.fit.objective.huber).
    import optax

    with jax.enable_x64(True):
        np.testing.assert_allclose(
            np.asarray(optax.losses.huber_loss(jnp.asarray(r), delta=delta)), numpy_huber(r, delta), rtol=1e-14
        )


def test_huber_derivatives_are_exact():
    """What L-BFGS and the curvature read: Huber's first derivative is r inside |r| <= delta (exactly, down to
    r = 1e-12: optax's form gives delta + (r - delta) there) and delta sign(r) outside; its second derivative is 1
    inside, at the boundary included, and 0 outside."""
    delta = 1e-3
    with jax.enable_x64(True):
        for r in HUBER_RESIDUALS:
            x = jnp.float64(r)
            grad = float(jax.grad(huber)(x, delta))
            second = float(jax.grad(jax.grad(huber))(x, delta))
            if abs(r) <= delta:
                assert grad == r and second == 1.0, r
            else:
                assert grad == float(np.sign(r)) * delta and second == 0.0, r


def run_minimize(fun, x0, **config):
    with jax.enable_x64(True):
        result = jax.jit(lambda x: minimize(fun, x, SolverConfig(**config)))(jnp.asarray(x0, dtype=jnp.float64))
        return jax.device_get(result)


def test_minimize_converges_on_a_quadratic():
    scales = jnp.asarray([1.0, 10.0, 100.0, 0.1, 3.0])
    result = run_minimize(lambda x: 1.0 + jnp.sum(scales * (x - 1.0) ** 2), np.zeros(5), gtol=1e-6, ftol=0.0)
    assert STOP_REASONS[int(result.stop_reason)] == "gtol"
    np.testing.assert_allclose(result.params, np.ones(5), atol=1e-5)
    assert result.rel_grad <= 1e-6 and result.n_evals >= result.iterations + 1


@pytest.mark.parametrize("scale", [1e-9, 1e-3, 1e6])
def test_stopping_rules_are_scale_free(scale):
    """Multiplying the objective by a constant changes neither where nor why L-BFGS stops: an
    absolute gtol=1e-5 would stop a 1e-9-scaled objective at its first point."""
    scales = jnp.asarray([1.0, 10.0, 100.0, 0.1, 3.0])

    def fun(x):
        return 2.0 + jnp.sum(scales * (x - 1.0) ** 2 + 0.1 * (x - 1.0) ** 4)

    scaled = run_minimize(lambda x: scale * fun(x), np.zeros(5))
    assert STOP_REASONS[int(scaled.stop_reason)] in ("gtol", "ftol", "no_decrease")
    np.testing.assert_allclose(scaled.params, np.ones(5), atol=1e-6)
    assert float(scaled.objective) / scale == pytest.approx(2.0, rel=1e-12)


def test_refine_reports_an_early_stop_and_finishes_it():
    """A start stopped early (iteration cap) is carried on by refine, which then checks itself converged."""

    def rosenbrock(x):
        return 1.0 + jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    with jax.enable_x64(True):
        x0 = jnp.asarray(-np.ones(4))
        early = jax.jit(lambda x: minimize(rosenbrock, x, SolverConfig(max_iter=5)))(x0)
        refined = jax.jit(lambda s: refine(rosenbrock, s, SolverConfig()))(early)
    assert STOP_REASONS[int(early.stop_reason)] == "max_iter"
    assert float(refined.result.objective) == pytest.approx(1.0, rel=1e-12)
    assert int(refined.restarts) >= 1 and float(refined.last_gain) <= REFINE_RTOL


def test_minimize_stops_at_the_iteration_cap():
    def rosenbrock(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    result = run_minimize(rosenbrock, -np.ones(4), max_iter=3)
    assert STOP_REASONS[int(result.stop_reason)] == "max_iter" and int(result.iterations) == 3
    assert result.objective < float(rosenbrock(-jnp.ones(4)))


def test_minimize_reports_a_nonfinite_start():
    result = run_minimize(lambda x: jnp.sum(jnp.log(x)), -np.ones(3))
    assert STOP_REASONS[int(result.stop_reason)] == "nonfinite" and int(result.iterations) == 0


def test_data_constrained_start_grid_finds_the_lowest_of_several_minima():
    """Two groups of repeated-data runs that prefer different R_D* (1 for runs of 2-8 epochs,
    100 for runs of 30 epochs) give the R_D* stage two local minima, ~1 (the lower) and ~90, with a ridge near 4.4.
    Muennighoff et al.'s starts (5, 15, 50) all lie beyond the ridge; the default grid (1 ... 1000 in half decades)
    finds the lower minimum, checked against a brute-force scan of 2,000 values of log R_D*."""
    epochs = np.array([2, 4, 8] * 2 + [30, 30], dtype=float)
    r_d_star = np.array([1.0] * 6 + [100.0] * 2)
    n, u = np.full(epochs.size, 3e8), np.full(epochs.size, 1e9)
    loss = np.array(
        [
            dc_loss(
                n[i], u[i] * epochs[i], u[i], theta=(*MUENNIGHOFF_THETA[:5], np.log(r_d_star[i]), MUENNIGHOFF_THETA[6])
            )[0]
            for i in range(epochs.size)
        ]
    )
    table = ScalingTable.from_arrays(n, loss, d=u * epochs, unique_tokens=u)
    names = LAW.param_names
    law = FixedLaw.of(LAW, **{k: v for k, v in zip(names, MUENNIGHOFF_THETA) if k != "log_R_D"})
    scan = np.linspace(np.log(0.05), np.log(1e5), 2000)[:, None]
    brute = np.array([evaluate_objective(table, t, law=law) for t in scan])
    best = int(np.argmin(brute))
    interior = [i for i in range(1, scan.size - 1) if brute[i] < brute[i - 1] and brute[i] <= brute[i + 1]]
    assert len(interior) >= 2  # several minima, as built

    paper_starts = np.log(np.array([[5.0], [15.0], [50.0]]))
    from_paper = fit_table(table, law=law, starts=paper_starts, top_k=None)
    fit = fit_table(table, law=law)
    assert fit.n_grid == 7
    assert fit.objective <= brute[best] * (1 + 1e-9)  # the lowest minimum, to the scan's resolution or better
    assert fit.R_D_star == pytest.approx(float(np.exp(scan[best, 0])), rel=0.02)
    assert from_paper.objective > 1.05 * fit.objective and from_paper.R_D_star > 20  # they end in the higher
