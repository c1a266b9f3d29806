"""The compute-optimal frontier, its inverse, projections and the exact-FLOPs optimum over a shape family."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from chinchilla import flops, zoo
from chinchilla.fit import GOPHER_FLOPS, PAPER_FIT, ChinchillaParams, exact_flops_optimum, projections
from chinchilla.fit.allocate import (
    MUENNIGHOFF_FIT,
    DataConstrainedParams,
    allocation,
    compare_table_a3,
    data_constrained_allocation,
    inference_aware_allocation,
)
from chinchilla.fit.laws import MUENNIGHOFF_THETA
from chinchilla.paper import TABLE3_PARAMS, TABLE_A3_APPROACH3


def numeric_n_opt(params: ChinchillaParams, budget: float) -> float:
    """argmin over N of L(N, C / 6N), found numerically in log N (independent of the closed form)."""
    result = minimize_scalar(
        lambda log_n: params.loss(math.exp(log_n), budget / (6 * math.exp(log_n))),
        bounds=(math.log(1e6), math.log(1e15)),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return math.exp(result.x)


def test_paper_exponents_and_gopher_allocation():
    assert PAPER_FIT.a == pytest.approx(0.46, abs=0.005) and PAPER_FIT.b == pytest.approx(0.54, abs=0.005)
    assert PAPER_FIT.a + PAPER_FIT.b == pytest.approx(1.0)
    n_opt = PAPER_FIT.n_opt(GOPHER_FLOPS)
    assert round(n_opt / 1e9) == 40  # Figure 4: ~40B parameters at Gopher's budget
    assert 6 * n_opt * PAPER_FIT.d_opt(GOPHER_FLOPS) == pytest.approx(GOPHER_FLOPS, rel=1e-12)


@pytest.mark.parametrize("budget", [1e19, 5.76e23, 1e26])
def test_closed_form_frontier_is_the_numeric_minimum(budget):
    assert PAPER_FIT.n_opt(budget) == pytest.approx(numeric_n_opt(PAPER_FIT, budget), rel=1e-6)


def test_inverse_round_trips():
    sizes = np.array(TABLE3_PARAMS)
    budgets = PAPER_FIT.flops_for_params(sizes)
    np.testing.assert_allclose(PAPER_FIT.n_opt(budgets), sizes, rtol=1e-12)
    np.testing.assert_allclose(PAPER_FIT.tokens_for_params(sizes), PAPER_FIT.d_opt(budgets), rtol=1e-12)


def test_projections_are_near_table_a3():
    """The published coefficients give Table A3's Approach 3 column to within 2-18% (the printed table is not
    reproduced exactly by the printed coefficients; the deviation grows with size)."""
    rows = projections(PAPER_FIT)
    for row, (table_flops, table_tokens) in zip(rows, TABLE_A3_APPROACH3):
        assert 1.0 < row["flops"] / table_flops < 1.2
        assert 1.0 < row["tokens"] / table_tokens < 1.2


def test_allocation_summary():
    out = allocation(PAPER_FIT, GOPHER_FLOPS)
    assert out["n_opt"] == pytest.approx(PAPER_FIT.n_opt(GOPHER_FLOPS))
    assert out["tokens_per_param"] == pytest.approx(out["d_opt"] / out["n_opt"])
    assert out["loss_opt"] == pytest.approx(PAPER_FIT.loss(out["n_opt"], out["d_opt"]))


def test_exact_flops_optimum_on_the_paper_ladder():
    ladder = zoo.ladder("chinchilla")
    budget = 1e21
    result = exact_flops_optimum(PAPER_FIT, budget, ladder)
    assert not result.at_boundary
    assert result.best.loss == min(s.loss for s in result.shapes)
    config = zoo.get_model(result.best.name)
    assert flops.training_flops(config, result.best.tokens) == pytest.approx(budget, rel=1e-12)
    # The best shape brackets the 6ND optimum within the ladder's spacing.
    sizes = sorted(s.params for s in result.shapes)
    i = sizes.index(result.best.params)
    assert sizes[i - 1] < PAPER_FIT.n_opt(budget) * 1.5 and sizes[i + 1] > PAPER_FIT.n_opt(budget) / 1.5
    # Gopher's budget wants ~40B parameters: beyond the ladder's 16B, so the optimum is at its edge.
    assert exact_flops_optimum(PAPER_FIT, GOPHER_FLOPS, ladder).at_boundary


def test_bad_values_raise():
    with pytest.raises(ValueError, match="alpha"):
        ChinchillaParams(E=1.7, A=400.0, B=400.0, alpha=-0.1, beta=0.3)
    with pytest.raises(ValueError, match="flops"):
        PAPER_FIT.n_opt(0.0)
    with pytest.raises(ValueError, match="empty"):
        exact_flops_optimum(PAPER_FIT, 1e21, [])


def test_table_a3_comparison_prints_published_beside_ours():
    rows = compare_table_a3(projections(PAPER_FIT))
    assert [r["published_flops"] for r in rows] == [f for f, _ in TABLE_A3_APPROACH3]
    for row in rows:
        assert row["flops_rel_diff"] == pytest.approx(row["flops"] / row["published_flops"] - 1)
        assert 0.02 < row["flops_rel_diff"] < 0.19 and 0.06 < row["tokens_rel_diff"] < 0.19
    with pytest.raises(ValueError, match="paper's sizes"):
        compare_table_a3(projections(PAPER_FIT, sizes=(1e9,)))


def muennighoff_loss(n, d, u):
    """Their released scaling_law (datablations README), transcribed independently: a, b, e, alpha, beta, R_D*, R_N*."""
    a, b, e, alpha, beta, rd_star, rn_star = MUENNIGHOFF_THETA[:5] + tuple(np.exp(MUENNIGHOFF_THETA[5:]))
    A, B, E = np.exp(a), np.exp(b), np.exp(e)
    G = ((alpha * A) / (beta * B)) ** (1 / (alpha + beta))
    rd = np.maximum(d / u - 1, 0)
    un = np.minimum(n, (u * G) ** (beta / alpha) * G)
    rn = np.maximum(n / un - 1, 0)
    return (
        E
        + A / (un + un * rn_star * (1 - np.exp(-rn / rn_star))) ** alpha
        + B / (u + u * rd_star * (1 - np.exp(-rd / rd_star))) ** beta
    )


def test_data_constrained_params_match_the_released_law():
    n, d = np.array([6.34e9, 8.67e9, 1e8]), np.array([242e9, 178e9, 3e10])
    np.testing.assert_allclose(MUENNIGHOFF_FIT.loss(n, d, 25e9), muennighoff_loss(n, d, 25e9), rtol=1e-12)
    assert MUENNIGHOFF_FIT.loss(6.34e9, 242e9, 25e9) == pytest.approx(2.2256440889984477, rel=1e-9)
    fit_like = dict(
        zip(
            ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star"),
            (
                MUENNIGHOFF_FIT.E,
                MUENNIGHOFF_FIT.A,
                MUENNIGHOFF_FIT.B,
                MUENNIGHOFF_FIT.alpha,
                MUENNIGHOFF_FIT.beta,
                MUENNIGHOFF_FIT.R_D_star,
                MUENNIGHOFF_FIT.R_N_star,
            ),
        )
    )
    assert DataConstrainedParams.from_mapping(fit_like) == DataConstrainedParams(**fit_like)
    with pytest.raises(ValueError, match="missing"):
        DataConstrainedParams.from_mapping({"E": 1.0})


def test_data_constrained_allocation_is_muennighoffs_published_example():
    """optimal_allocation(1e22, 25e9): about 7.02e9 parameters and 2.37e11 tokens (Muennighoff et al. 2023)."""
    out = data_constrained_allocation(MUENNIGHOFF_FIT, 1e22, 25e9)
    assert out["n_opt"] == pytest.approx(7.02e9, rel=2e-3) and out["d_opt"] == pytest.approx(2.37e11, rel=2e-3)
    assert 6 * out["n_opt"] * out["d_opt"] == pytest.approx(1e22, rel=1e-12)
    # An independent dense grid over N on the transcribed law agrees to the grid's spacing.
    n = np.exp(np.linspace(np.log(1e9), np.log(5e10), 400_001))
    best = n[np.argmin(muennighoff_loss(n, 1e22 / (6 * n), 25e9))]
    assert out["n_opt"] == pytest.approx(best, rel=1e-5)
    # Scarce unique data pushes the optimum away from the unconstrained frontier (fewer parameters, more epochs).
    assert out["n_opt"] < 0.8 * out["unconstrained_n_opt"] and out["epochs"] > 9
    # With unique data to spare the law is Chinchilla's, and so is the allocation.
    plenty = data_constrained_allocation(MUENNIGHOFF_FIT, 1e22, 1e14)
    assert plenty["n_opt"] == pytest.approx(plenty["unconstrained_n_opt"], rel=1e-6)


def test_inference_aware_allocation():
    """Sardana et al. 2024: with no inference it is the compute-optimal point reaching the target loss; the
    optimal N falls (and D rises) as inference demand grows; the loss stays the target."""
    budget = 1e23
    target = PAPER_FIT.loss_opt(budget)
    free = inference_aware_allocation(PAPER_FIT, target, 0.0)
    assert free["n_opt"] == pytest.approx(PAPER_FIT.n_opt(budget), rel=1e-6)
    assert free["d_opt"] == pytest.approx(PAPER_FIT.d_opt(budget), rel=1e-6)
    assert free["total_flops"] == pytest.approx(budget, rel=1e-9)
    previous = free
    for inference in (1e11, 1e12, 1e13, 1e14):
        out = inference_aware_allocation(PAPER_FIT, target, inference)
        assert out["n_opt"] < previous["n_opt"] and out["d_opt"] > previous["d_opt"]
        assert PAPER_FIT.loss(out["n_opt"], out["d_opt"]) == pytest.approx(target, rel=1e-10)
        # No other point on the iso-loss curve is cheaper: perturb N both ways.
        for factor in (0.97, 1.03):
            n = out["n_opt"] * factor
            d = (PAPER_FIT.B / (target - PAPER_FIT.E - PAPER_FIT.A / n**PAPER_FIT.alpha)) ** (1 / PAPER_FIT.beta)
            assert 6 * n * d + 2 * n * inference > out["total_flops"]
        previous = out
    with pytest.raises(ValueError, match="irreducible"):
        inference_aware_allocation(PAPER_FIT, 1.5, 1e12)
    with pytest.raises(ValueError, match="non-negative"):
        inference_aware_allocation(PAPER_FIT, 2.0, -1.0)


def test_a_law_whose_E_ran_to_zero_is_still_a_law():
    """A fit can end with E at its lower bound (exp underflows to 0.0): its frontier and losses must still work
    (the tiny real sweep of tests/test_reproduce.py once failed its report on exactly this)."""
    law = ChinchillaParams(E=0.0, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    reference = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    assert law.n_opt(1e21) == pytest.approx(reference.n_opt(1e21), rel=1e-12)  # E does not move the frontier
    assert law.loss(1e9, 2e10) == pytest.approx(reference.loss(1e9, 2e10) - 1.69, rel=1e-12)
    with pytest.raises(ValueError, match="E=-0.1 must be finite and non-negative"):
        ChinchillaParams(E=-0.1, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    with pytest.raises(ValueError, match="alpha=0.0 must be finite and positive"):
        ChinchillaParams(E=1.0, A=406.4, B=410.7, alpha=0.0, beta=0.28)
