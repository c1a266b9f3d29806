"""Bootstrap intervals (vectorised refits) and the held-out extrapolation check."""

from __future__ import annotations

import numpy as np
import pytest

from chinchilla.fit import fit_table
from chinchilla.fit.bootstrap import bootstrap_table, bootstrap_weights
from chinchilla.fit.holdout import holdout_check


def test_weights():
    resample = bootstrap_weights(240, 5, seed=1)
    assert resample.shape == (5, 240) and np.all(resample.sum(axis=1) == 240)
    subsample = bootstrap_weights(240, 5, seed=1, scheme="subsample", fraction=0.8)
    assert set(np.unique(subsample)) == {0.0, 1.0} and np.all(subsample.sum(axis=1) == 192)
    np.testing.assert_array_equal(bootstrap_weights(240, 5, seed=1), resample)
    assert not np.array_equal(bootstrap_weights(240, 5, seed=2), resample)
    with pytest.raises(ValueError, match="scheme"):
        bootstrap_weights(240, 5, seed=1, scheme="jackknife")
    with pytest.raises(ValueError, match="fraction"):
        bootstrap_weights(240, 5, seed=1, scheme="subsample", fraction=1.5)


def test_bootstrap_agrees_with_a_grid_fit_per_resample(table240, full_fit):
    """Warm start + 2 grid starts per resample reach the optimum of a fresh 128-start screened fit of the same
    weights (the benchmark checks more resamples)."""
    result = bootstrap_table(table240, n_resamples=4, seed=11, fit=full_fit)
    weights = bootstrap_weights(240, 4, seed=11)
    for r in range(4):
        grid_fit = fit_table(table240, weights=weights[r])
        assert result.objective[r] == pytest.approx(grid_fit.objective, rel=1e-8)
        assert result.samples["alpha"][r] == pytest.approx(grid_fit.alpha, abs=1e-4)
        assert result.samples["beta"][r] == pytest.approx(grid_fit.beta, abs=1e-4)


def test_bootstrap_summary_is_reproducible(table240, full_fit):
    first = bootstrap_table(table240, n_resamples=6, seed=3, scheme="subsample", fit=full_fit)
    again = bootstrap_table(table240, n_resamples=6, seed=3, scheme="subsample", fit=full_fit)
    np.testing.assert_array_equal(first.samples["alpha"], again.samples["alpha"])
    assert first.n_resamples == 6 and first.n_failed == 0 and first.fraction == 0.8
    s = first.samples
    np.testing.assert_allclose(s["a"] + s["b"], 1.0)
    np.testing.assert_allclose(s["a"], s["beta"] / (s["alpha"] + s["beta"]))
    summary = first.to_dict(percentiles=(10, 90))
    for name in ("E", "A", "B", "alpha", "beta", "a", "b", "tokens_per_param"):
        low, high = summary["intervals"][name]
        assert np.isfinite(low) and np.isfinite(high) and low <= high, name
    # Dropping runs moves the fit, but not far: every resample is near the full-data exponents.
    assert np.all(np.abs(s["alpha"] - full_fit.alpha) < 0.1)
    with pytest.raises(ValueError, match="unknown quantity"):
        first.interval("gamma")


def test_holdout_check(table240):
    result = holdout_check(table240, 1e21)
    assert (len(result.train), len(result.test)) == (217, 23)
    assert np.all(result.train.flops < 1e21) and np.all(result.test.flops >= 1e21)
    metrics = result.metrics()
    assert all(np.isfinite(v) for v in metrics.values())
    # The law extrapolates a decade in compute to within a few percent on these points.
    assert metrics["train_rmse_log"] < 0.01 and metrics["test_max_abs_rel_error"] < 0.05
    np.testing.assert_allclose(result.test_relative_error, result.test_predicted / result.test.loss - 1)
    with pytest.raises(ValueError, match="both must be non-empty"):
        holdout_check(table240, 1e30)


def test_bootstrap_vmap_strategy_matches_map(table240, full_fit):
    """The batched (GPU/TPU) strategy runs the same refits; on CPU it is only checked for equality."""
    by_map = bootstrap_table(table240, n_resamples=2, seed=5, fit=full_fit, strategy="map")
    by_vmap = bootstrap_table(table240, n_resamples=2, seed=5, fit=full_fit, strategy="vmap")
    np.testing.assert_allclose(by_vmap.objective, by_map.objective, rtol=1e-8)
