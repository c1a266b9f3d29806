"""The report's figures show what they say: Figure 2's envelope points lie on the training curves drawn beside them
(the same FLOPs, the fit's own smoothing, the lowest curve at each point, not hidden under the markers), and Figure
4's runs, frontier and contours sit on the FLOP axis its label names. Read back from the matplotlib figures that
``chinchilla.analysis.plots`` draws for a small synthetic sweep (27 runs drawn from a known loss surface)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.contour import ContourSet

from chinchilla import zoo
from chinchilla.analysis import plots
from chinchilla.analysis.report import AnalysisSettings, analyze
from chinchilla.fit.envelope import fit_envelope
from chinchilla.presets.synthetic import SURFACE
from chinchilla.sweep import plan_isoflop, run_sweep
from chinchilla.sweep.synthetic import SyntheticTrainer


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    plan = plan_isoflop((1e11, 3e11, 1e12), zoo.ladder("tiny")[:9], hparams=lambda m, t: {"batch_size": 8})
    sweep = tmp_path_factory.mktemp("sweep")
    trainer = SyntheticTrainer(surface=SURFACE, noise=0.003, log_points=60, convention="non_embedding")
    run_sweep(plan, sweep, train_fn=trainer, log=None)
    return analyze(sweep, AnalysisSettings(loss="final_train_loss", n_resamples=2, approach3_resamples=0))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plots._pyplot().close("all")


def envelope_and_curves(fig):
    ax = fig.axes[0]
    (envelope,) = [c for c in ax.collections if c.get_label() == "lower envelope"]
    return envelope, ax.get_lines()


def assert_envelope_on_curves(fig):
    """Each envelope marker is, at its FLOP value, the lowest of the plotted curves that reach it (interpolated as
    matplotlib draws them on a log axis: linearly in log C), and that curve is drawn above the marker."""
    envelope, lines = envelope_and_curves(fig)
    points = envelope.get_offsets()
    assert len(points) > 50 and len(lines) > 10
    for x, y in points:
        reached = []
        for line in lines:
            lx, ly = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
            if lx[0] * (1 - 1e-12) <= x <= lx[-1] * (1 + 1e-12):
                reached.append((float(np.interp(np.log(x), np.log(lx), ly)), line))
        lowest, line = min(reached, key=lambda pair: pair[0])
        assert y == pytest.approx(lowest, abs=1e-9), (x, y, lowest)
        assert line.get_zorder() > envelope.get_zorder(), "the curve is hidden under the envelope's markers"


def test_figure2_envelope_points_lie_on_the_plotted_curves(analysis):
    result = analysis.results[analysis.headline]["approach1"]
    assert_envelope_on_curves(plots.draw_figure2(analysis.curves[analysis.headline], result))


@pytest.mark.parametrize("window", [4, 25])
def test_figure2_smooths_the_curves_as_the_fit_did(analysis, window):
    """The figure takes its smoothing from the fit (it had its own window argument, defaulting to 10, which nothing
    tied to the fit's: any other window drew the curves off the envelope)."""
    curves = analysis.curves[analysis.headline]
    result = fit_envelope(curves, window=window, n_resamples=0)
    fig = plots.draw_figure2(curves, result)
    assert_envelope_on_curves(fig)
    assert f"smoothed over {window} logged steps" in fig.axes[0].get_ylabel()


def test_figure2_refuses_curves_the_envelope_was_not_fitted_to(analysis):
    curves = analysis.curves[analysis.headline]
    result = analysis.results[analysis.headline]["approach1"]
    with pytest.raises(ValueError, match="not the curves the envelope was fitted to"):
        plots.draw_figure2(curves[::-1], result)


def test_figure4_runs_frontier_and_contours_sit_on_the_axis_the_label_names(analysis):
    result = analysis.results[analysis.headline]["approach3"]
    rows = analysis.rows
    fig = plots.draw_figure4(result, rows, "n_params", analysis.settings.loss, n_label="parameters (all)")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "C = 6ND FLOPs (N: parameters (all), D: tokens)"
    assert ax.get_ylabel() == "parameters (all)"
    n = np.array([r["n_params"] for r in rows], dtype=float)
    d = np.array([r["tokens"] for r in rows], dtype=float)
    exact = np.array([r["flops"] for r in rows], dtype=float)
    # The runs: at x = 6 N D (what the label names), not at their exact FLOPs, which the legend relates to it.
    (runs,) = [c for c in ax.collections if c.get_label().startswith("our runs")]
    np.testing.assert_allclose(runs.get_offsets()[:, 0], 6 * n * d, rtol=1e-12)
    np.testing.assert_allclose(runs.get_offsets()[:, 1], n, rtol=1e-12)
    assert np.all(exact / (6 * n * d) > 1.2)  # exact FLOPs would put them visibly elsewhere
    low, high = map(float, re.search(r"exact FLOPs: ([\d.]+)-([\d.]+)x", runs.get_label()).groups())
    assert (low, high) == (round(min(exact / (6 * n * d)), 2), round(max(exact / (6 * n * d)), 2))
    # The frontier: N_opt(C) under C = 6ND.
    (frontier,) = [line for line in ax.get_lines() if line.get_label().startswith("efficient frontier")]
    c = np.asarray(frontier.get_xdata())
    np.testing.assert_allclose(frontier.get_ydata(), result.n_opt(c), rtol=1e-12)
    # The contours: at a point (C, N) of level L, L(N, D = C / 6N) = L (up to the contouring's interpolation).
    (contours,) = [c for c in ax.collections if isinstance(c, ContourSet)]
    checked = 0
    for level, segments in zip(contours.levels, contours.allsegs):
        for segment in segments:
            c, n_line = segment[:, 0], segment[:, 1]
            np.testing.assert_allclose(result.loss(n_line, c / (6 * n_line)), level, atol=0.003)
            checked += len(segment)
    assert checked > 100


def test_no_profile_means_no_figure3_and_no_matplotlib_warning(tmp_path):
    """An Approach 2 with no profile at all (every budget left out) writes no figure 3 instead of an empty one with
    matplotlib's "No artists with labels found to put in legend" warning."""
    import warnings

    from chinchilla.analysis import plots

    with pytest.raises(ValueError, match="no IsoFLOP profile"):
        plots.figure3([], tmp_path / "figure3.png")

    class Empty:
        headline = "total"
        results = {
            "total": {
                "approach1": "not fitted",
                "approach2": "not fitted",
                "approach2_profiles": (),
                "approach3": "not fitted",
            }
        }

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plots.write_figures(Empty(), tmp_path) == []
    assert not (tmp_path / "figure3.png").exists()
