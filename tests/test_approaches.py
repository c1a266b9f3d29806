"""Approaches 1 and 2 (and the shared power-law fit) on synthetic runs from a known loss surface.

With L(N, D) = E + A/N^alpha + B/D^beta and C = 6ND the compute-optimal exponents are a = beta/(alpha+beta),
b = alpha/(alpha+beta) (Hoffmann et al. 2022, eq. 4); each approach must recover them from runs alone.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from chinchilla.fit.allocate import ChinchillaParams
from chinchilla.fit.envelope import (
    Curve,
    default_flops_range,
    fit_envelope,
    late_by_threshold,
    late_margins,
    late_shares,
    loss_matrix,
    lower_envelope,
    smooth_curve,
    subset_envelope,
)
from chinchilla.fit.isoflop import fit_isoflop, fit_profile, group_by_flops, isoflop_holdout
from chinchilla.fit.powerlaw import fit_power_law, percentile_interval
from chinchilla.sweep.synthetic import synthetic_curve

SURFACE = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # the paper's fit: a = 0.28 / 0.62 = 0.4516


def isoflop_table(surface: ChinchillaParams, budgets, ratios, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        for ratio in ratios:
            n = surface.n_opt(c) * ratio
            d = c / (6 * n)
            rows.append((c, n, d, surface.loss(n, d) + noise * rng.standard_normal()))
    return [np.array(column) for column in zip(*rows)]


def ratio_curves(
    surface: ChinchillaParams, ladder, tokens_per_param: float, kappa: float, noise: float = 0.0, points=100
):
    """Approach 1's design: each size trained for 4 cycles spanning 16x, the shortest tokens_per_param x N."""
    rng = np.random.default_rng(1)
    curves = []
    for n in ladder:
        for i in range(4):
            cycle = tokens_per_param * n * 16 ** (i / 3)
            t = np.linspace(cycle / points, cycle, points)
            loss = synthetic_curve(surface, n, t, cycle, kappa) + noise * rng.standard_normal(points)
            curves.append(Curve(run=f"{n:.4g}-{i}", n_params=n, tokens=t, flops=6 * n * t, loss=loss))
    return curves


# ----------------------------------------------------------------------------------------------- power laws
def test_power_law_recovers_exact_law_and_inverse():
    x = np.geomspace(1e18, 1e22, 7)
    law = fit_power_law(x, 3.5 * x**0.47)
    assert law.exponent == pytest.approx(0.47, abs=1e-12)
    assert law.coefficient == pytest.approx(3.5, rel=1e-9)
    assert law.exponent_stderr == pytest.approx(0.0, abs=1e-12)
    assert law.inverse(law(5e20)) == pytest.approx(5e20, rel=1e-9)


def test_power_law_interval_covers_truth_under_noise():
    rng = np.random.default_rng(3)
    x = np.geomspace(1e10, 1e14, 40)
    y = 2.0 * x**0.6 * np.exp(0.05 * rng.standard_normal(x.size))
    law = fit_power_law(x, y)
    low, high = law.exponent_interval(0.95)
    assert low < 0.6 < high
    assert high - low < 0.05


@pytest.mark.parametrize(
    "x, y, message", [([1, 2], [1, -1], "positive"), ([1, 1, 1], [1, 2, 3], "distinct"), ([1, 2], [1], "values")]
)
def test_power_law_rejects_bad_input(x, y, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(x, y)


def test_percentile_interval_ignores_non_finite():
    assert percentile_interval([np.nan, 0.0, 1.0, 2.0, np.inf], (0, 100)) == (0.0, 2.0)
    assert all(math.isnan(v) for v in percentile_interval([]))


# ----------------------------------------------------------------------------------------------- smoothing
def test_smoothing_keeps_lines_exact_and_reduces_noise():
    x = np.arange(50.0)
    line = 4.0 - 0.03 * x
    np.testing.assert_allclose(smooth_curve(line, 10), line, atol=1e-12)  # ends included: no edge bias
    noise = np.random.default_rng(0).standard_normal(2000)
    assert smooth_curve(noise, 10).std() < 0.5 * noise.std()
    np.testing.assert_array_equal(smooth_curve(noise[:10], 1), noise[:10])
    assert smooth_curve(noise[:7], 400).shape == (7,)  # a window longer than the curve
    np.testing.assert_allclose(smooth_curve(line[:7], 400), line[:7], atol=1e-12)


# ----------------------------------------------------------------------------------------------- Approach 2
def test_approach2_recovers_exponents_from_synthetic_isoflops():
    budgets = np.geomspace(1e18, 1e21, 6)
    table = isoflop_table(SURFACE, budgets, 1.5 ** np.arange(-4, 5))
    result = fit_isoflop(*table, n_resamples=20)
    assert result.a == pytest.approx(SURFACE.a, abs=0.005)
    assert result.b == pytest.approx(1 - SURFACE.a, abs=0.005)
    assert all(p.interior for p in result.profiles)
    for profile in result.profiles:
        assert profile.n_opt == pytest.approx(SURFACE.n_opt(profile.flops), rel=0.05)
        assert profile.flops * 1.0 == pytest.approx(profile.budget)


def test_approach2_with_noise_and_asymmetric_windows():
    budgets = np.geomspace(1e18, 1e21, 5)
    # Sizes placed asymmetrically around the optimum (more on the large side), with loss noise.
    table = isoflop_table(SURFACE, budgets, 1.3 ** np.arange(-3, 8), noise=0.002)
    result = fit_isoflop(*table, neighbours=3, n_resamples=50)
    assert result.a == pytest.approx(SURFACE.a, abs=0.03)
    low, high = result.a_interval
    assert low < high and low - 0.01 <= SURFACE.a <= high + 0.01
    assert result.n_resamples > 40
    summary = result.to_dict()
    assert {"flops", "n_opt", "interior"} <= set(summary["budgets"][0])


def test_approach2_flags_and_excludes_edge_minima():
    budgets = np.geomspace(1e18, 1e21, 4)
    c, n, d, loss = isoflop_table(SURFACE, budgets, 1.5 ** np.arange(-3, 4))
    # The largest budget only sampled to the left of its optimum: its lowest loss is its largest size.
    keep = ~((c == budgets[-1]) & (n > SURFACE.n_opt(budgets[-1]) * 0.9))
    result = fit_isoflop(c[keep], n[keep], d[keep], loss[keep], n_resamples=10)
    flagged = [p for p in result.profiles if not p.interior]
    assert [p.budget for p in flagged] == [budgets[-1]]
    assert "largest size" in flagged[0].reason
    assert result.a == pytest.approx(SURFACE.a, abs=0.01)  # fitted on the three interior budgets
    with pytest.raises(ValueError, match="interior"):
        keep_two = c >= budgets[2]
        fit_isoflop(c[keep_two & keep], n[keep_two & keep], d[keep_two & keep], loss[keep_two & keep], n_resamples=0)


def test_profile_window_uses_neighbours_of_the_minimum():
    c, n, d, loss = isoflop_table(SURFACE, [1e19], 1.4 ** np.arange(-6, 7))
    profile = fit_profile(1e19, n, d, loss, neighbours=2)
    assert profile.used.sum() == 5
    assert profile.used[np.argmin(profile.loss)]
    with pytest.raises(ValueError, match="distinct sizes"):
        fit_profile(1e19, n[:2], d[:2], loss[:2])


# ----------------------------------------------------------------------------------------------- Approach 1
def test_approach1_recovers_exponent_from_synthetic_training_curves():
    curves = ratio_curves(SURFACE, np.geomspace(3e7, 3e9, 16), tokens_per_param=4, kappa=0.1, noise=0.002)
    result = fit_envelope(curves, flops_range=(1e17, 1e20), n_resamples=30)
    assert result.a == pytest.approx(SURFACE.a, abs=0.03)
    assert result.b == pytest.approx(1 - SURFACE.a, abs=0.03)
    assert 0.0 <= result.late_fraction <= result.late_possible <= 1.0
    assert result.n_resamples == 30
    assert result.a_interval[0] < result.a_interval[1]
    envelope = result.envelope
    assert envelope.valid.all() and envelope.flops.size == 1500


def test_approach1_on_isoflop_runs_as_curves():
    """The IsoFLOP grid doubles as Approach 1's curves: every size trained at several budgets."""
    budgets = np.geomspace(1e17, 1e20, 7)
    curves = []
    for n in np.geomspace(3e7, 3e9, 16):
        for k, c in enumerate(budgets):
            if 0.25 < n / SURFACE.n_opt(c) < 4:
                cycle = c / (6 * n)
                t = np.linspace(cycle / 100, cycle, 100)
                curves.append(
                    Curve(
                        run=f"{n:.4g}-{k}",
                        n_params=n,
                        tokens=t,
                        flops=6 * n * t,
                        loss=synthetic_curve(SURFACE, n, t, cycle, kappa=0.1),
                    )
                )
    result = fit_envelope(curves, flops_range=(1e17, 1e20), n_resamples=10)
    assert result.a == pytest.approx(SURFACE.a, abs=0.02)
    # Runs end only at budgets sqrt(10) apart: a run is in its last 15% on ln(1/0.85) / ln(10^0.5) of log C.
    assert result.late_possible == pytest.approx(np.log(1 / 0.85) / np.log(10**0.5), abs=0.01)
    assert result.late_fraction <= result.late_possible


def test_envelope_picks_lowest_loss_and_marks_uncovered_points():
    t = np.linspace(1, 100, 50)
    low = Curve("low", 10.0, t, 6 * 10.0 * t, 2.0 + 1 / t)
    high = Curve("high", 20.0, t, 6 * 20.0 * t, 3.0 + 1 / t)
    envelope = lower_envelope([low, high], n_points=20, window=1, flops_range=(100.0, 20_000.0), min_runs=1)
    covered_by_low = envelope.flops <= low.flops[-1]
    assert np.all(envelope.run_index[covered_by_low] == 0)
    covered_by_high = ~covered_by_low & (envelope.flops <= high.flops[-1])
    assert covered_by_high.any() and np.all(envelope.run_index[covered_by_high] == 1)
    beyond = envelope.flops > high.flops[-1]
    assert beyond.any() and np.all(envelope.run_index[beyond] == -1) and np.isnan(envelope.n_params[beyond]).all()
    contested = lower_envelope([low, high], n_points=20, window=1, flops_range=(100.0, 20_000.0))  # min_runs=2
    both = (envelope.flops >= high.flops[0]) & (envelope.flops <= low.flops[-1])
    assert both.any() and np.array_equal(contested.valid, both)
    with pytest.raises(ValueError, match="strictly increasing"):
        Curve("bad", 1.0, t, np.ones_like(t), t)


def test_fit_modules_import_light():
    code = (
        "import sys, chinchilla.fit.envelope, chinchilla.fit.isoflop, chinchilla.fit.powerlaw; "
        "print([m for m in ('flax', 'orbax', 'tensorflow_datasets', 'tensorflow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_group_by_flops_labels_each_budget_by_its_geometric_mean():
    flops = np.array([1.02e19, 0.98e19, 1.0e19, 3.05e19, 2.95e19, 1e20])
    labels = group_by_flops(flops)
    np.testing.assert_allclose(labels[:3], np.exp(np.mean(np.log(flops[:3]))))
    np.testing.assert_allclose(labels[3:5], np.exp(np.mean(np.log(flops[3:5]))))
    assert labels[5] == pytest.approx(1e20, rel=1e-15) and np.unique(labels).size == 3
    with pytest.raises(ValueError, match="positive finite"):
        group_by_flops([1e19, -1.0])


def test_isoflop_holdout_extrapolates_an_exact_power_law():
    budgets = np.geomspace(1e18, 1e21, 6)
    table = isoflop_table(SURFACE, budgets, 1.5 ** np.arange(-4, 5))
    result = isoflop_holdout(*table, flops_threshold=2e20)
    assert [p.flops for p in result.test] == pytest.approx(budgets[4:])
    for row in result.rows():
        assert row["n_opt_rel_error"] == pytest.approx(0.0, abs=0.01)  # the surface's N_opt is a power law of C
        assert row["n_opt_observed"] == pytest.approx(SURFACE.n_opt(row["flops"]), rel=0.02)
    # A wrong law would show: flatten the larger budgets' losses so that their vertices move.
    c, n, d, loss = table
    bent = np.where(c > 2e20, loss + 0.02 * np.log(n / SURFACE.n_opt(c)), loss)
    rows = isoflop_holdout(c, n, d, bent, flops_threshold=2e20).rows()
    assert all(abs(r["n_opt_rel_error"]) > 0.05 for r in rows)


def _flat_curve(name: str, n: float, final_flops: float, loss, points: int = 4000) -> Curve:
    flops = np.geomspace(1.0, final_flops, points)
    values = loss(flops) if callable(loss) else np.full(points, float(loss))
    return Curve(name, n, flops / (6 * n), flops, values)


def _late(curves, flops_range, n_points=3000):
    envelope = lower_envelope(curves, n_points=n_points, window=1, flops_range=flops_range)
    return late_shares(curves, envelope, window=1)


def test_late_fraction_on_a_sweep_with_a_known_answer():
    """Approach 1's check that selected points lie in the last 15% of their run (Hoffmann et al.: all of them),
    where the answer is known in closed form: on a log grid over [10, 100], a run ending at 100 that wins everywhere
    is late only on [85, 100], a share ln(100/85) / ln(10) = 0.0706; a winner ending at 1000 never is."""
    share = math.log(100 / 85) / math.log(10)
    late, possible = _late(
        [_flat_curve("ends-100", 10.0, 100.0, 1.0), _flat_curve("ends-1000", 20.0, 1000.0, 2.0)], (10.0, 100.0)
    )
    assert late == pytest.approx(share, abs=0.003)
    assert possible == pytest.approx(share, abs=0.003)  # only the run ending at 100 is ever late
    late, possible = _late(
        [_flat_curve("ends-100", 10.0, 100.0, 2.0), _flat_curve("ends-1000", 20.0, 1000.0, 1.0)], (10.0, 100.0)
    )
    assert late == 0.0 and possible == pytest.approx(share, abs=0.003)
    # The winner switches at C = 50: below it a run ending at 60 (late only on [51, 60], where it no longer wins),
    # above it a run ending at 55 (late on [50, 55] since 50 / 55 >= 0.85): share ln(55/50) / ln(55/10).
    late, _ = _late(
        [
            _flat_curve("a", 10.0, 60.0, lambda c: np.where(c < 50, 1.0, 3.0)),
            _flat_curve("b", 20.0, 55.0, lambda c: np.where(c < 50, 2.0, 1.0)),
        ],
        (10.0, 55.0),
        4000,
    )
    assert late == pytest.approx(math.log(55 / 50) / math.log(55 / 10), abs=0.003)


def test_fit_envelope_reports_the_same_late_share():
    curves = ratio_curves(SURFACE, [1e7, 2e7, 4e7, 8e7], tokens_per_param=5, kappa=0.3)
    result = fit_envelope(curves, n_points=500, window=1, n_resamples=0)
    assert (result.late_fraction, result.late_possible) == late_shares(curves, result.envelope, window=1)
    assert 0 < result.late_fraction <= result.late_possible <= 1


def test_late_shares_at_looser_thresholds_have_closed_forms():
    """A run ending at 100 that wins everywhere on a log grid over [10, 100] has seen >= t of its tokens on
    [100 t, 100]: shares ln(1/t) / ln(10) for t = 0.85, 0.8, 0.7 (tokens are proportional to FLOPs here)."""
    curves = [_flat_curve("ends-100", 10.0, 100.0, 1.0), _flat_curve("ends-1000", 20.0, 1000.0, 2.0)]
    envelope = lower_envelope(curves, n_points=3000, window=1, flops_range=(10.0, 100.0))
    shares = late_by_threshold(envelope)
    assert set(shares) == {"0.85", "0.8", "0.7"}
    for t, share in shares.items():
        assert share == pytest.approx(math.log(1 / float(t)) / math.log(10), abs=0.003)
    assert shares["0.85"] == late_shares(curves, envelope, window=1)[0]


def test_late_margin_measures_how_far_the_late_run_lost():
    # Run "mid" (ends at 1000) wins everywhere by 0.05 nats over run "end" (ends at 100): on [85, 100] a late run
    # existed and lost by exactly 0.05.
    curves = [_flat_curve("end", 10.0, 100.0, 1.05), _flat_curve("mid", 20.0, 1000.0, 1.0)]
    envelope = lower_envelope(curves, n_points=2000, window=1, flops_range=(10.0, 100.0))
    losses, tokens = loss_matrix(curves, envelope.flops, 1)
    margin = late_margins(curves, envelope, losses, tokens)
    finite = margin[np.isfinite(margin)]
    assert finite.size and np.allclose(finite, 0.05)
    assert np.isfinite(margin).mean() == pytest.approx(math.log(100 / 85) / math.log(10), abs=0.003)


def drifting_isoflop_table(budgets, ratios, drift: float, noise: float = 0.0, seed: int = 0):
    """Like ``isoflop_table``, but each larger budget's ladder sits further right of its optimum (by (C/C0)^drift),
    as a real sweep's fixed sizes do: the parabola's misfit then differs between budgets and between windows."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        for ratio in ratios:
            n = SURFACE.n_opt(c) * ratio * (c / budgets[0]) ** drift
            d = c / (6 * n)
            rows.append((c, n, d, SURFACE.loss(n, d) + noise * rng.standard_normal()))
    return [np.array(column) for column in zip(*rows)]


@pytest.mark.parametrize("neighbours", [3, None])
@pytest.mark.parametrize("noise", [0.0, 0.001])
def test_approach2_interval_contains_its_point_estimate(neighbours, noise):
    # 9 sizes; 80% subsamples keep 7. A resample's "3 neighbours" must be the point estimate's sizes, not 3 each
    # side among the sizes it kept (all 7 of them: the resamples would fit the whole profile while the point estimate
    # fits 7 adjacent sizes, a = 0.4514 with interval [0.4491, 0.4510] at noise 0).
    table = drifting_isoflop_table(np.geomspace(1e18, 1e21, 5), 1.6 ** np.arange(-4, 5), drift=0.1, noise=noise)
    result = fit_isoflop(*table, neighbours=neighbours, n_resamples=100)
    for estimate, (low, high) in ((result.a, result.a_interval), (result.b, result.b_interval)):
        assert low < estimate < high
    assert result.n_resamples > 90


def test_approach2_interval_shrinks_with_less_noise():
    budgets, ratios = np.geomspace(1e18, 1e21, 5), 1.6 ** np.arange(-4, 5)
    widths = []
    for noise in (0.004, 0.0005):
        result = fit_isoflop(*drifting_isoflop_table(budgets, ratios, 0.1, noise=noise), neighbours=3, n_resamples=100)
        widths.append(result.a_interval[1] - result.a_interval[0])
    assert widths[1] < 0.5 * widths[0]


def test_profile_window_counts_positions_on_the_full_ladder():
    c, n, d, loss = isoflop_table(SURFACE, [1e19], 1.4 ** np.arange(-6, 7))  # 13 sizes, optimum in the middle
    keep = np.array([0, 2, 3, 5, 6, 7, 9, 10, 12])  # a resample that dropped 4 of them
    full = fit_profile(1e19, n, d, loss, neighbours=2)
    sample = fit_profile(1e19, n[keep], d[keep], loss[keep], neighbours=2, ladder=n)
    # The same 5 ladder positions around the minimum (4..8); the resample fits the ones it kept among them.
    assert set(np.flatnonzero(full.used)) == {4, 5, 6, 7, 8}
    assert set(keep[sample.used]) == {5, 6, 7}
    # Without the ladder, "2 neighbours" would reach out to ladder positions 3..9.
    assert set(keep[fit_profile(1e19, n[keep], d[keep], loss[keep], neighbours=2).used]) == {3, 5, 6, 7, 9}
    with pytest.raises(ValueError, match="distinct sizes"):
        fit_profile(1e19, n[[0, 6, 12]], d[[0, 6, 12]], loss[[0, 6, 12]], neighbours=2, ladder=n)


def test_approach1_resample_uses_the_point_estimates_flops_range_rule():
    # fit_envelope's point estimate spans the FLOPs from the first run's end to the last's; a resample must apply
    # that rule to its own runs: a resample without the run ending first must not keep the full grid and read its
    # envelope there off runs still mid-cycle (kappa: un-annealed excess), which the point estimate never does.
    curves = ratio_curves(SURFACE, np.geomspace(1e6, 1e8, 4), 5, kappa=0.3, points=60)
    grid = np.geomspace(*default_flops_range(curves), 400)
    losses, tokens = loss_matrix(curves, grid, window=1)
    rows = np.flatnonzero(np.arange(len(curves)) != np.argmin([c.flops[-1] for c in curves]))
    low, high = default_flops_range([curves[i] for i in rows])
    sample = subset_envelope(curves, grid, losses, tokens, rows)
    inside = (grid >= low * (1 - 1e-12)) & (grid <= high * (1 + 1e-12))
    assert low > grid[0] and not inside.all()
    competed = np.isfinite(losses[rows]).sum(axis=0) >= 2
    assert (competed & ~inside).any()  # points a resample on the full grid would wrongly use
    np.testing.assert_array_equal(sample.valid, inside & competed)
    full = subset_envelope(curves, grid, losses, tokens, np.arange(len(curves)))
    np.testing.assert_array_equal(full.run_index, lower_envelope(curves, n_points=400, window=1).run_index)


def test_approach2_counts_the_resamples_its_procedure_cannot_fit():
    # neighbours=1 fits a 3-size window; an 80% subsample that drops one of the 3 cannot be fitted by the same rule,
    # so it is left out, counted and explained, rather than silently refitted over a wider window.
    table = drifting_isoflop_table(np.geomspace(1e18, 1e21, 5), 1.6 ** np.arange(-4, 5), drift=0.1, noise=0.001)
    result = fit_isoflop(*table, neighbours=1, n_resamples=50)
    assert result.resamples_skipped + result.n_resamples == 50 and result.resamples_skipped > 40
    assert "distinct sizes" in result.skip_reason
    assert fit_isoflop(*table, neighbours=3, n_resamples=50).resamples_skipped == 0


# ----------------------------------------------------------------------------------------------- trustworthy Approach 2
TIE_BUDGETS = (1e18, 1e19, 1e20, 1e21)


def tie_table(offset: float = 0.0):
    """Four IsoFLOP budgets on the paper's surface; the largest sampled lopsidedly and digitised to 0.05 nats, so
    that its smallest size and interior sizes share the lowest loss (as on a digitisation of Figure 3) while the
    parabola's vertex sits well inside. ``offset`` is added to the smallest size's loss (1e-9 breaks the tie)."""
    rows = []
    for c in TIE_BUDGETS:
        ratios = np.array([0.4, 0.6, 1.0, 1.6, 3, 6, 12]) if c == TIE_BUDGETS[-1] else np.geomspace(1 / 8, 8, 7)
        for i, ratio in enumerate(ratios):
            n = SURFACE.n_opt(c) * ratio
            loss = SURFACE.loss(n, c / (6 * n))
            if c == TIE_BUDGETS[-1]:
                loss = round(loss / 0.05) * 0.05 + (offset if i == 0 else 0.0)
            rows.append((c, n, c / (6 * n), loss))
    return [np.array(column) for column in zip(*rows)]


def test_approach2_a_tie_at_an_end_is_not_an_edge_minimum():
    tied, untied = fit_isoflop(*tie_table(), n_resamples=0), fit_isoflop(*tie_table(1e-9), n_resamples=0)
    last = tied.profiles[-1]
    assert last.loss[0] == last.loss.min() and np.sum(last.loss == last.loss.min()) >= 3  # the tie is there
    assert last.interior, last.reason
    assert tied.a == pytest.approx(untied.a, abs=1e-6)
    assert tied.n_law.n_points == 4


def test_approach2_a_clear_end_minimum_is_still_flagged():
    c, n, d, loss = tie_table()
    last = c == TIE_BUDGETS[-1]
    loss = np.where(last & (n == n[last].min()), loss - 0.1, loss)  # the smallest size is now clearly the lowest
    profile = fit_isoflop(c, n, d, loss, n_resamples=0).profiles[-1]
    assert not profile.interior and "smallest size" in profile.reason


def budgets_with_a_small_one(small_ratios, small_budget=3e17):
    """Four good budgets of 9 runs on the paper's surface, plus one of the few sizes ``small_ratios`` x N_opt."""
    c, n, d, loss = isoflop_table(SURFACE, np.geomspace(1e18, 1e21, 4), 1.5 ** np.arange(-4, 5), noise=0.002)
    sc, sn, sd, sl = isoflop_table(SURFACE, [small_budget], small_ratios, noise=0.002, seed=5)
    return [np.concatenate(pair) for pair in ((c, sc), (n, sn), (d, sd), (loss, sl))]


def test_approach2_a_3_run_budget_outside_the_laws_leaves_the_interval_intact():
    table = budgets_with_a_small_one([0.05, 0.1, 0.2])  # all left of the optimum: not interior, never in the laws
    result = fit_isoflop(*table, n_resamples=100)
    assert not result.profiles[0].interior and result.n_law.n_points == 4
    assert result.n_resamples == 100 and result.resamples_skipped == 0
    low, high = result.a_interval
    assert low <= result.a <= high and high - low < 0.05


def test_approach2_a_3_run_budget_in_the_laws_is_kept_whole_and_said():
    table = budgets_with_a_small_one([0.5, 1.0, 2.0])  # interior: it enters the laws
    result = fit_isoflop(*table, n_resamples=100)
    assert result.profiles[0].interior and result.n_law.n_points == 5
    assert result.n_resamples == 100 and math.isfinite(result.a_interval[0])
    assert len(result.resample_notes) == 1 and "kept whole" in result.resample_notes[0]
    assert any("kept whole" in w for w in result.warnings)
