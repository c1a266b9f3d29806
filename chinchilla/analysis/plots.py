"""Figures 2, 3 and 4 of Hoffmann et al. 2022 from our runs (matplotlib, Agg backend, PNG).

- Figure 2 (Approach 1): training curves against FLOPs with their lower envelope (coloured by N, the convention the
  colour bar names); N_opt and D_opt against C with the fitted power laws, solid over the envelope's FLOPs and dashed
  beyond them, up to 100x (extrapolation, so labelled). The curves are the envelope's own: the same cumulative FLOPs,
  the smoothing the fit used (``EnvelopeResult.window``), and every envelope point lies on one of them.
- Figure 3 (Approach 2): IsoFLOP profiles (the fitted loss column against N per budget, the fitted parabolas and
  their minima: triangles just above them, filled when interior, hollow when not, each with its legend entry);
  N_opt and D_opt against C with the fitted laws, dashed past the largest budget (the profiles alone when too few
  minima are interior).
- Figure 4 (Approach 3): iso-loss contours of the fitted L(N, D = C / 6N) over (C, N) with the efficient frontier
  (dashed past our largest run) and our runs, all on one axis, C = 6ND (N under the figure's convention; the runs'
  exact FLOPs are larger, by the factor the legend gives); our IsoFLOP profiles with the fit evaluated along them.
  The left panel's legend sits below it, hiding no contour.

``draw_figure2`` / ``draw_figure3`` / ``draw_figure4`` return the matplotlib figure (what the tests read back);
``figure2`` / ``figure3`` / ``figure4`` draw and save it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from etils import epath

from chinchilla.fit.envelope import EnvelopeResult, smooth_curve
from chinchilla.fit.isoflop import IsoFlopResult
from chinchilla.sweep.results import N_COLUMNS

FIGURE_NAMES = {"approach1": "figure2.png", "approach2": "figure3.png", "approach3": "figure4.png"}
EXTEND = 100.0  # laws are drawn up to this multiple of the largest budget
N_OPT_TITLE = "Compute-optimal model size N_opt"
D_OPT_TITLE = "Compute-optimal tokens D_opt"
LOSS_NAMES = {"final_train_loss": "final training loss", "eval_loss": "final eval loss"}
EXTRAPOLATED = f"extrapolated (up to {EXTEND:.0f}x the largest budget)"
MINIMUM_SIZE = 7.0  # points: the side of a minimum's triangle


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: epath.Path) -> epath.Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    path = epath.Path(path)
    path.write_bytes(buffer.getvalue())
    return path


def loss_label(loss_column: str | None) -> str:
    """The y label of a loss axis: the column the fit used (``None``: not known to the caller)."""
    if loss_column is None:
        return "final loss"
    return f"{LOSS_NAMES.get(loss_column, 'loss')} ({loss_column})"


def _minima(ax, x, y, facecolors, **kwargs):
    """Down-pointing triangles hovering just above (x, y), their tips pointing at it: the run or curve drawn there
    stays visible. ``get_offsets()`` gives (x, y) themselves; the shift is in points, in the offset transform."""
    from matplotlib.transforms import offset_copy

    shift = offset_copy(ax.transData, fig=ax.figure, y=MINIMUM_SIZE / 2 + 2.5, units="points")
    return ax.scatter(
        x,
        y,
        marker="v",
        s=MINIMUM_SIZE**2,
        facecolors=facecolors,
        edgecolors="k",
        linewidths=0.8,
        transform=shift,
        zorder=4,
        **kwargs,
    )


def _minimum_handle(label: str, filled: bool = True):
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        marker="v",
        markersize=MINIMUM_SIZE,
        linestyle="none",
        markerfacecolor="0.45" if filled else "none",
        markeredgecolor="k",
        label=label,
    )


def _size_colors(sizes: Sequence[float]):
    plt = _pyplot()
    log_sizes = np.log(np.asarray(sizes, dtype=np.float64))
    span = np.ptp(log_sizes) or 1.0
    return plt.cm.viridis((log_sizes - log_sizes.min()) / span)


def _law_panel(
    ax, c, y, law, label: str, ylabel: str, title: str, color: str = "C0", *, points: str, sparse: bool = False
) -> None:
    """The compute-optimal points (labelled ``points``), the law over their budgets (solid) and beyond the largest
    one (dashed, labelled ``EXTRAPOLATED``). ``sparse`` points (one per budget) are drawn hollow over the line, which
    would hide them; dense ones (an envelope's) as a band under it."""
    if sparse:
        ax.scatter(c, y, s=22, facecolors="white", edgecolors="0.2", linewidths=0.9, label=points, zorder=4)
    else:
        ax.scatter(c, y, s=12, color="0.5", alpha=0.6, label=points, zorder=2)
    low, high = float(np.min(c)), float(np.max(c))
    fitted = np.geomspace(low, high, 60)
    ax.plot(fitted, law(fitted), color=color, lw=2, label=f"fit: {label}", zorder=3)
    beyond = np.geomspace(high, high * EXTEND, 40)
    ax.plot(beyond, law(beyond), color=color, lw=2, ls="--", label=EXTRAPOLATED, zorder=3)
    ax.set(xscale="log", yscale="log", xlabel="FLOPs", ylabel=ylabel, title=title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)


def draw_figure2(curves: Sequence[Any], result: EnvelopeResult, *, n_label: str = "parameters"):
    """Approach 1: curves + envelope, N_opt(C), D_opt(C). ``curves``: the curves ``result`` was fitted to (in the
    same order: the envelope's run indices point into them); each is drawn as the envelope saw it, its loss smoothed
    over ``result.window`` logged steps against its cumulative FLOPs, so each envelope point lies on the curve it was
    taken from. The curves are drawn over the envelope's hollow markers, which would otherwise hide them."""
    env = result.envelope
    valid = env.valid
    if valid.any() and int(env.run_index[valid].max()) >= len(curves):
        raise ValueError(f"the envelope picks run {int(env.run_index[valid].max())} of {len(curves)} curves given")
    picked = {curves[i].run for i in np.unique(env.run_index[valid])}
    if picked != set(result.selected_runs):
        raise ValueError("these are not the curves the envelope was fitted to: its selected runs differ")
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), layout="constrained")
    colors = _size_colors([c.n_params for c in curves])
    smoothed = [smooth_curve(c.loss, result.window) for c in curves]
    for curve, loss, color in zip(curves, smoothed, colors):
        axes[0].plot(curve.flops, loss, color=color, lw=0.8, alpha=0.8, zorder=3)
    step = max(1, valid.sum() // 150)
    axes[0].scatter(
        env.flops[valid][::step],
        env.loss[valid][::step],
        s=14,
        facecolors="none",
        edgecolors="k",
        linewidths=0.6,
        zorder=2,
        label="lower envelope",
    )
    finals = [c.flops[-1] for c in curves]
    axes[0].set(
        xscale="log",
        xlabel="FLOPs",
        ylabel=f"training loss (smoothed over {result.window} logged steps)",
        title="Training curves",
        xlim=(min(finals) / 30, max(finals) * 1.5),
    )
    losses = np.concatenate(smoothed)
    axes[0].set_ylim(np.nanmin(losses) - 0.05, np.nanpercentile(losses, 90))
    axes[0].legend(fontsize=8)
    sm = plt.cm.ScalarMappable(
        cmap="viridis",
        norm=plt.matplotlib.colors.LogNorm(vmin=min(c.n_params for c in curves), vmax=max(c.n_params for c in curves)),
    )
    fig.colorbar(sm, ax=axes[0], label=f"model size N: {n_label}")
    fig.get_layout_engine().set(wspace=0.08)
    c = env.flops[valid]
    points = "lower-envelope points"
    n_law, d_law = f"N_opt ∝ C^{result.a:.3f}", f"D_opt ∝ C^{result.b:.3f}"
    _law_panel(axes[1], c, env.n_params[valid], result.n_law, n_law, n_label, N_OPT_TITLE, points=points)
    _law_panel(axes[2], c, env.tokens[valid], result.d_law, d_law, "tokens", D_OPT_TITLE, "C1", points=points)
    fig.suptitle("Figure 2 (Approach 1): lower envelope of training curves")
    return fig


def figure2(curves: Sequence[Any], result: EnvelopeResult, path, *, n_label: str = "parameters") -> epath.Path:
    """``draw_figure2``, saved as PNG at ``path``."""
    return _save(draw_figure2(curves, result, n_label=n_label), path)


def draw_figure3(
    profiles: Sequence[Any],
    result: IsoFlopResult | None = None,
    *,
    n_label: str = "parameters",
    loss_column: str | None = None,
):
    """Approach 2: IsoFLOP profiles with parabolas and minima; with a fitted ``result``, N_opt(C) and D_opt(C).
    ``loss_column``: the column the profiles' losses are (the y label names it). Each budget's minimum is a triangle
    just above it, pointing at it (filled: interior; hollow: not), so the run there stays visible. ValueError when
    there is no profile to draw."""
    if not profiles:
        raise ValueError("no IsoFLOP profile to draw")
    plt = _pyplot()
    fig, axes = plt.subplots(
        1,
        3 if result is not None else 1,
        figsize=(15, 4.8) if result is not None else (6, 4.8),
        squeeze=False,
        layout="constrained",
    )
    axes = axes[0]
    colors = plt.cm.plasma(np.linspace(0.05, 0.85, len(profiles)))
    for profile, color in zip(profiles, colors):
        axes[0].scatter(profile.n, profile.loss, color=color, s=18, label=f"{profile.budget:.2g}", zorder=3)
        used = profile.n[profile.used]
        grid = np.geomspace(used.min(), used.max(), 60)
        axes[0].plot(grid, profile.parabola(grid), color=color, lw=1.2, zorder=2)
        _minima(axes[0], [profile.n_opt], [profile.loss_opt], color if profile.interior else "none")
    axes[0].set(xscale="log", xlabel=n_label, ylabel=loss_label(loss_column), title="IsoFLOP profiles")
    handles, _ = axes[0].get_legend_handles_labels()
    handles.append(_minimum_handle("fitted minimum (parabola's vertex)"))
    if not all(p.interior for p in profiles):
        left_out = result is not None and result.require_interior
        handles.append(_minimum_handle("not interior" + (": left out of the laws" if left_out else ""), False))
    axes[0].legend(
        handles=handles,
        title="colour: budget (FLOPs); dots: runs, lines: parabolas",
        fontsize=7,
        title_fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        borderaxespad=0.0,
        ncol=3,
    )
    if result is not None:
        chosen = [p for p in result.profiles if p.interior or not result.require_interior]
        c = np.array([p.flops for p in chosen])
        n_opt, d_opt = [p.n_opt for p in chosen], [p.d_opt for p in chosen]
        points = "budget minima" + (" (interior)" if result.require_interior else "")
        n_law, d_law = f"N_opt ∝ C^{result.a:.3f}", f"D_opt ∝ C^{result.b:.3f}"
        _law_panel(axes[1], c, n_opt, result.n_law, n_law, n_label, N_OPT_TITLE, points=points, sparse=True)
        _law_panel(axes[2], c, d_opt, result.d_law, d_law, "tokens", D_OPT_TITLE, "C1", points=points, sparse=True)
    fig.suptitle(
        "Figure 3 (Approach 2): IsoFLOP profiles"
        + ("" if result is not None else " (too few interior minima for the laws)")
    )
    return fig


def figure3(
    profiles: Sequence[Any],
    path,
    result: IsoFlopResult | None = None,
    *,
    n_label: str = "parameters",
    loss_column: str | None = None,
) -> epath.Path:
    """``draw_figure3``, saved as PNG at ``path``."""
    return _save(draw_figure3(profiles, result, n_label=n_label, loss_column=loss_column), path)


def _label_spots(ax, contour, result) -> list[tuple[float, float]]:
    """Where each contour's label goes: on its upper branch (N well above the frontier, away from the runs), at
    alternating heights so that neighbouring labels do not collide, inside the axes so that none is clipped."""
    (x0, x1), (y0, y1) = np.log(ax.get_xlim()), np.log(ax.get_ylim())
    spots = []
    for i, path in enumerate(contour.get_paths()):
        if not len(path.vertices):
            continue
        c, n = path.vertices[:, 0], path.vertices[:, 1]
        fx, fy = (np.log(c) - x0) / (x1 - x0), (np.log(n) - y0) / (y1 - y0)
        inside = (fx > 0.05) & (fx < 0.95) & (fy > 0.08) & (fy < 0.92)
        upper = inside & (n > 2 * result.n_opt(c))
        pool = upper if upper.any() else inside
        if not pool.any():
            continue
        target = 0.84 if i % 2 else 0.7
        k = int(np.argmin(np.where(pool, np.abs(fy - target), np.inf)))
        spots.append((float(c[k]), float(n[k])))
    return spots


def draw_figure4(
    result: Any, rows: Sequence[dict[str, Any]], n_column: str, loss_column: str, *, n_label: str = "parameters"
):
    """Approach 3: iso-loss contours over (C, N) with the efficient frontier; the fit along our IsoFLOP profiles.

    ``result`` has ``loss(n, d)``, ``n_opt(c)`` and ``a`` (``analysis.report.ParametricResult``). The left panel's
    FLOP axis is C = 6ND, N being ``n_column``'s convention: the contours are L(N, D = C / 6N), the frontier is
    ``n_opt(C)`` (the paper's C = 6ND frontier) and our runs sit at (6 N D, N). Our runs' exact FLOPs (the ``flops``
    column, which their IsoFLOP budgets count) are larger than 6ND by a factor that varies with size; the legend
    gives its range, and placing the runs by exact FLOPs among contours drawn under 6ND would misplace them against
    the fit. The right panel needs no convention: each IsoFLOP budget's runs (``loss_column`` against N) and the fit
    evaluated at those runs' own (N, D), with D interpolated in log N between them."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    run_n = np.array([r[n_column] for r in rows], dtype=np.float64)
    run_d = np.array([r["tokens"] for r in rows], dtype=np.float64)
    run_c = 6 * run_n * run_d
    exact = np.array([r.get("flops") or np.nan for r in rows], dtype=np.float64)
    ratio = exact / run_c
    ratio = ratio[np.isfinite(ratio)]
    runs_label = "our runs, at 6ND"
    if ratio.size:
        low, high = ratio.min(), ratio.max()
        factor = f"{low:.2f}x" if np.isclose(low, high, rtol=5e-3) else f"{low:.2f}-{high:.2f}x"
        runs_label += f" (their exact FLOPs: {factor} that)"
    c_grid = np.geomspace(run_c.min() / 3, run_c.max() * EXTEND, 200)
    n_grid = np.geomspace(run_n.min() / 3, run_n.max() * 10, 200)
    cc, nn = np.meshgrid(c_grid, n_grid)
    loss = result.loss(nn, cc / (6 * nn))
    levels = np.unique(np.quantile(loss[np.isfinite(loss)], np.linspace(0.02, 0.9, 14)))
    ax = axes[0]
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=f"C = 6ND FLOPs (N: {n_label}, D: tokens)",
        ylabel=n_label,
        xlim=(c_grid[0], c_grid[-1]),
        ylim=(n_grid[0], n_grid[-1]),
        title="Iso-loss contours of the fit (labels: loss)",
    )
    # viridis up to 0.58 of its range: every contour and its label keeps a contrast of at least 3:1 on white.
    contour = ax.contour(
        cc, nn, loss, levels=levels, colors=plt.cm.viridis(np.linspace(0.58, 0.0, len(levels))), linewidths=1.0
    )
    ax.clabel(contour, fontsize=8.5, fmt="%.2f", inline_spacing=4, manual=_label_spots(ax, contour, result))
    largest = run_c.max()
    fitted = c_grid[c_grid <= largest]
    fitted = np.append(fitted, largest)
    ax.plot(fitted, result.n_opt(fitted), color="C0", lw=2, label=f"efficient frontier, N_opt ∝ C^{result.a:.3f}")
    beyond = np.geomspace(largest, c_grid[-1], 60)
    ax.plot(beyond, result.n_opt(beyond), color="C0", lw=2, ls="--", label=f"frontier {EXTRAPOLATED}")
    ax.scatter(run_c, run_n, s=8, color="k", label=runs_label, zorder=3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), borderaxespad=0.0)
    budgets = sorted({r["budget"] for r in rows if r.get("budget") is not None})
    colors = plt.cm.plasma(np.linspace(0.05, 0.85, max(len(budgets), 1)))
    drew_minimum = False
    for budget, color in zip(budgets, colors):
        mine = sorted((r for r in rows if r.get("budget") == budget), key=lambda r: r[n_column])
        n = np.array([r[n_column] for r in mine], dtype=np.float64)
        d = np.array([r["tokens"] for r in mine], dtype=np.float64)
        axes[1].scatter(n, [r[loss_column] for r in mine], color=color, s=16, label=f"{budget:.2g}", zorder=3)
        if n.size < 2:
            continue
        n_line = np.geomspace(n[0], n[-1], 80)
        d_line = np.exp(np.polyval(np.polyfit(np.log(n), np.log(d), 1), np.log(n_line)))
        fitted_loss = result.loss(n_line, d_line)
        axes[1].plot(n_line, fitted_loss, color=color, lw=1.3, zorder=2)
        best = int(np.argmin(fitted_loss))
        _minima(axes[1], [n_line[best]], [fitted_loss[best]], color)
        drew_minimum = True
    axes[1].set(
        xscale="log",
        xlabel=n_label,
        ylabel=loss_label(loss_column),
        title="IsoFLOP profiles: runs (dots) and the fit (lines)",
    )
    if budgets:
        handles, _ = axes[1].get_legend_handles_labels()
        if drew_minimum:
            handles.append(_minimum_handle("minimum of the fit"))
        axes[1].legend(handles=handles, title="budget (exact FLOPs)", fontsize=7, title_fontsize=7)
    fig.suptitle("Figure 4 (Approach 3): parametric fit L(N, D) = E + A/N^α + B/D^β")
    return fig


def figure4(
    result: Any, rows: Sequence[dict[str, Any]], n_column: str, loss_column: str, path, *, n_label: str = "parameters"
) -> epath.Path:
    """``draw_figure4``, saved as PNG at ``path``."""
    return _save(draw_figure4(result, rows, n_column, loss_column, n_label=n_label), path)


def write_figures(analysis: Any, out_dir) -> list[epath.Path]:
    """Figures 2-4 for the headline convention of an ``analysis.report.Analysis``; an approach that was not fitted
    gets no figure (except Approach 2's profiles, drawn alone when its laws could not be fitted). Returns the
    written paths."""
    out = epath.Path(out_dir)
    results = analysis.results[analysis.headline]
    label = {"total": "parameters (all)", "non_embedding": "non-embedding parameters"}[analysis.headline]
    written = []
    if not isinstance(results["approach1"], str):
        written.append(
            figure2(
                analysis.curves[analysis.headline],
                results["approach1"],
                out / FIGURE_NAMES["approach1"],
                n_label=label,
            )
        )
    if not isinstance(results["approach2"], str):
        written.append(
            figure3(
                results["approach2"].profiles,
                out / FIGURE_NAMES["approach2"],
                results["approach2"],
                n_label=label,
                loss_column=analysis.settings.loss,
            )
        )
    elif results.get("approach2_profiles") and not isinstance(results["approach2_profiles"], str):
        written.append(
            figure3(
                results["approach2_profiles"],
                out / FIGURE_NAMES["approach2"],
                n_label=label,
                loss_column=analysis.settings.loss,
            )
        )
    if not isinstance(results["approach3"], str):
        n_column = N_COLUMNS[analysis.headline]
        written.append(
            figure4(
                results["approach3"],
                analysis.rows,
                n_column,
                analysis.settings.loss,
                out / FIGURE_NAMES["approach3"],
                n_label=label,
            )
        )
    return written
