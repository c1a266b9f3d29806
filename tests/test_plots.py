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


def dashed_and_solid(ax):
    lines = [line for line in ax.get_lines() if line.get_linestyle() in ("-", "--")]
    solid = [line for line in lines if line.get_linestyle() == "-"]
    dashed = [line for line in lines if line.get_linestyle() == "--"]
    return solid, dashed


def assert_extrapolated_past(ax, largest, law):
    """The law is solid up to ``largest`` (the data's largest budget) and dashed from there on, labelled as such."""
    (solid,), (dashed,) = dashed_and_solid(ax)
    assert solid.get_label().startswith("fit: ")
    assert "extrapolated" in dashed.get_label()
    assert max(solid.get_xdata()) == pytest.approx(largest, rel=1e-12)
    assert dashed.get_xdata()[0] == pytest.approx(largest, rel=1e-12)
    assert dashed.get_xdata()[-1] == pytest.approx(largest * plots.EXTEND, rel=1e-9)
    for line in (solid, dashed):
        np.testing.assert_allclose(line.get_ydata(), law(np.asarray(line.get_xdata())), rtol=1e-12)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert dashed.get_label() in labels and solid.get_label() in labels


def assert_outside(fig, legend, ax):
    """The legend covers nothing of the axes it explains."""
    renderer = fig.canvas.get_renderer()
    box, frame = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert not box.overlaps(frame), (box, frame)


def contrast_on_white(color) -> float:
    """WCAG 2 contrast ratio of ``color`` against white (3:1: the minimum for graphics)."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(color))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return 1.05 / (float(linear @ [0.2126, 0.7152, 0.0722]) + 0.05)


def minima(ax):
    return [c for c in ax.collections if c.get_offset_transform() is not ax.transData and len(c.get_offsets())]


def assert_minima_above_their_points(fig, ax):
    """Each minimum's triangle hovers above the point it marks (its offsets are that point), tip clear of a run's
    dot drawn there, so both stay visible."""
    fig.canvas.draw()
    marks = minima(ax)
    assert marks
    for mark in marks:
        for xy in mark.get_offsets():
            shift = mark.get_offset_transform().transform(xy)[1] - ax.transData.transform(xy)[1]
            assert shift >= (plots.MINIMUM_SIZE / 2 + 2) * fig.dpi / 72


def test_figure2_colour_bar_names_the_parameter_count_and_marks_the_extrapolation(analysis):
    result = analysis.results[analysis.headline]["approach1"]
    fig = plots.draw_figure2(analysis.curves[analysis.headline], result, n_label="parameters (all)")
    (colorbar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert "parameters (all)" in colorbar.get_ylabel()
    env = result.envelope
    largest = env.flops[env.valid].max()
    assert_extrapolated_past(fig.axes[1], largest, result.n_law)
    assert_extrapolated_past(fig.axes[2], largest, result.d_law)


def test_figure3_legend_names_the_minima_and_the_laws_are_dashed_past_the_largest_budget(analysis):
    result = analysis.results[analysis.headline]["approach2"]
    fig = plots.draw_figure3(result.profiles, result, n_label="parameters (all)", loss_column="eval_loss")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "final eval loss (eval_loss)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("minimum" in label for label in labels)
    assert not any("not interior" in label for label in labels)  # every minimum here is interior
    assert_minima_above_their_points(fig, ax)
    np.testing.assert_allclose(
        np.concatenate([m.get_offsets() for m in minima(ax)]), [[p.n_opt, p.loss_opt] for p in result.profiles]
    )
    assert_outside(fig, ax.get_legend(), ax)
    largest = max(p.flops for p in result.profiles if p.interior)
    assert_extrapolated_past(fig.axes[1], largest, result.n_law)
    assert_extrapolated_past(fig.axes[2], largest, result.d_law)


def test_figure3_hollow_minima_have_their_legend_entry(analysis):
    import dataclasses

    result = analysis.results[analysis.headline]["approach2"]
    profiles = [dataclasses.replace(result.profiles[0], interior=False, reason="edge"), *result.profiles[1:]]
    fig = plots.draw_figure3(profiles, n_label="parameters (all)")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "final loss"  # the caller did not say which column
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "not interior" in labels and "fitted minimum (parabola's vertex)" in labels
    hollow = [m for m in minima(ax) if m.get_facecolor().size == 0 or m.get_facecolor()[0, 3] == 0]
    assert len(hollow) == 1


def test_write_figures_labels_the_loss_axes_with_the_fitted_column(analysis, tmp_path, monkeypatch):
    seen = {}

    def spy(name, draw):
        def wrapper(*args, **kwargs):
            fig = draw(*args, **kwargs)
            seen[name] = [ax.get_ylabel() for ax in fig.axes]
            return fig

        return wrapper

    monkeypatch.setattr(plots, "draw_figure3", spy("figure3", plots.draw_figure3))
    monkeypatch.setattr(plots, "draw_figure4", spy("figure4", plots.draw_figure4))
    written = plots.write_figures(analysis, tmp_path)
    assert [p.name for p in written] == ["figure2.png", "figure3.png", "figure4.png"]
    assert analysis.settings.loss == "final_train_loss"
    assert seen["figure3"][0] == "final training loss (final_train_loss)"
    assert seen["figure4"][1] == "final training loss (final_train_loss)"


def test_figure4_legend_and_contour_labels_are_readable(analysis):
    result = analysis.results[analysis.headline]["approach3"]
    rows = analysis.rows
    fig = plots.draw_figure4(result, rows, "n_params", "eval_loss", n_label="parameters (all)")
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert_outside(fig, ax.get_legend(), ax)
    (contours,) = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert all(contrast_on_white(color) >= 3 for color in contours.get_edgecolor())
    texts = contours.labelTexts
    assert len(texts) >= len(contours.levels) - 1
    frame = ax.get_window_extent(renderer)
    for text in texts:
        assert text.get_fontsize() >= 8
        box = text.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, "clipped"
        assert contrast_on_white(text.get_color()) >= 3, "too pale on white"
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]), "labels overlap"
    # The frontier: solid over our runs' 6ND range, dashed past the largest.
    largest = max(6 * r["n_params"] * r["tokens"] for r in rows)
    (frontier,) = [line for line in ax.get_lines() if line.get_label().startswith("efficient frontier")]
    (beyond,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert max(frontier.get_xdata()) == pytest.approx(largest, rel=1e-12)
    assert beyond.get_xdata()[0] == pytest.approx(largest, rel=1e-12)
    np.testing.assert_allclose(beyond.get_ydata(), result.n_opt(np.asarray(beyond.get_xdata())), rtol=1e-12)
    # The right panel: the loss column, the minima's legend entry, triangles clear of the runs.
    assert fig.axes[1].get_ylabel() == "final eval loss (eval_loss)"
    assert "minimum of the fit" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert_minima_above_their_points(fig, fig.axes[1])
