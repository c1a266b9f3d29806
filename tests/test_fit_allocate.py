"""The compute-optimal frontier, its inverse, projections and the exact-FLOPs optimum over a shape family."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from chinchilla import flops, zoo
from chinchilla.fit import GOPHER_FLOPS, PAPER_FIT, ChinchillaParams, exact_flops_optimum, projections
from chinchilla.fit.allocate import PAPER_PROJECTION_PARAMS, allocation

# Table A3, Approach 3 (FLOPs, tokens) per model size; 175B's FLOPs printed as 1.26e24, an evident typo.
TABLE_A3_APPROACH3 = [(2.21e19, 9.2e9), (1.62e20, 27.1e9), (2.46e22, 410.1e9), (1.71e24, 4.1e12),
                      (1.26e25, 12.0e12), (3.52e25, 20.1e12), (1.36e26, 43.5e12), (5.65e26, 94.1e12),
                      (8.55e28, 1425.5e12)]


def numeric_n_opt(params: ChinchillaParams, budget: float) -> float:
    """argmin over N of L(N, C / 6N), found numerically in log N (independent of the closed form)."""
    result = minimize_scalar(lambda log_n: params.loss(math.exp(log_n), budget / (6 * math.exp(log_n))),
                             bounds=(math.log(1e6), math.log(1e15)), method="bounded",
                             options={"xatol": 1e-10})
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
    sizes = np.array(PAPER_PROJECTION_PARAMS)
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
