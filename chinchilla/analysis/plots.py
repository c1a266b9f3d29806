"""Figures 2, 3 and 4 of Hoffmann et al. 2022 from our runs (matplotlib, Agg backend, PNG).

- Figure 2 (Approach 1): training curves against FLOPs with their lower envelope; N_opt and D_opt against C with the
  fitted power laws, extended 100x beyond the sweep. The curves are the envelope's own: the same cumulative FLOPs, the
  smoothing the fit used (``EnvelopeResult.window``), and every envelope point lies on one of them.
- Figure 3 (Approach 2): IsoFLOP profiles (final loss against N per budget, the fitted parabolas and their minima);
  N_opt and D_opt against C with the fitted laws (the profiles alone when too few minima are interior).
- Figure 4 (Approach 3): iso-loss contours of the fitted L(N, D = C / 6N) over (C, N) with the efficient frontier
  and our runs, all on one axis, C = 6ND (N under the figure's convention; the runs' exact FLOPs are larger, by the
  factor the legend gives); our IsoFLOP profiles with the fit evaluated along them.

``draw_figure2`` / ``draw_figure4`` return the matplotlib figure (what the tests read back); ``figure2`` / ``figure4``
draw and save it.
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


def _size_colors(sizes: Sequence[float]):
    plt = _pyplot()
    log_sizes = np.log(np.asarray(sizes, dtype=np.float64))
    span = np.ptp(log_sizes) or 1.0
    return plt.cm.viridis((log_sizes - log_sizes.min()) / span)


def _law_panel(ax, c, y, law, label: str, ylabel: str, title: str, color: str = "C0") -> None:
    ax.scatter(c, y, s=12, color="0.5", alpha=0.6, label="compute-optimal points", zorder=2)
    grid = np.geomspace(min(c) / 2, max(c) * EXTEND, 100)
    ax.plot(grid, law(grid), color=color, lw=2, label=label, zorder=3)
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
    fig.colorbar(sm, ax=axes[0], label="model size N")
    fig.get_layout_engine().set(wspace=0.08)
    c = env.flops[valid]
    _law_panel(axes[1], c, env.n_params[valid], result.n_law, f"N_opt ∝ C^{result.a:.3f}", n_label, N_OPT_TITLE)
    _law_panel(
        axes[2], c, env.tokens[valid], result.d_law, f"D_opt ∝ C^{result.b:.3f}", "tokens", D_OPT_TITLE, color="C1"
    )
    fig.suptitle("Figure 2 (Approach 1): lower envelope of training curves")
    return fig


def figure2(curves: Sequence[Any], result: EnvelopeResult, path, *, n_label: str = "parameters") -> epath.Path:
    """``draw_figure2``, saved as PNG at ``path``."""
    return _save(draw_figure2(curves, result, n_label=n_label), path)


def figure3(
    profiles: Sequence[Any], path, result: IsoFlopResult | None = None, *, n_label: str = "parameters"
) -> epath.Path:
    """Approach 2: IsoFLOP profiles with parabolas and minima; with a fitted ``result``, N_opt(C) and D_opt(C).
    ValueError when there is no profile to draw."""
    if not profiles:
        raise ValueError("no IsoFLOP profile to draw")
    plt = _pyplot()
    fig, axes = plt.subplots(
        1,
        3 if result is not None else 1,
        figsize=(15, 4.3) if result is not None else (6, 4.3),
        squeeze=False,
        layout="constrained",
    )
    axes = axes[0]
    colors = plt.cm.plasma(np.linspace(0.05, 0.85, len(profiles)))
    for profile, color in zip(profiles, colors):
        axes[0].scatter(profile.n, profile.loss, color=color, s=18, label=f"{profile.budget:.2g}")
        used = profile.n[profile.used]
        grid = np.geomspace(used.min(), used.max(), 60)
        axes[0].plot(grid, profile.parabola(grid), color=color, lw=1.2)
        axes[0].scatter(
            [profile.n_opt],
            [profile.loss_opt],
            marker="v",
            s=50,
            zorder=4,
            facecolor=color if profile.interior else "none",
            edgecolor="k",
        )
    axes[0].set(xscale="log", xlabel=n_label, ylabel="final loss", title="IsoFLOP profiles")
    axes[0].legend(title="FLOPs (▽ hollow: not interior)", fontsize=7, title_fontsize=7)
    if result is not None:
        chosen = [p for p in result.profiles if p.interior or not result.require_interior]
        c = np.array([p.flops for p in chosen])
        n_opt, d_opt = [p.n_opt for p in chosen], [p.d_opt for p in chosen]
        _law_panel(axes[1], c, n_opt, result.n_law, f"N_opt ∝ C^{result.a:.3f}", n_label, N_OPT_TITLE)
        _law_panel(axes[2], c, d_opt, result.d_law, f"D_opt ∝ C^{result.b:.3f}", "tokens", D_OPT_TITLE, color="C1")
    fig.suptitle(
        "Figure 3 (Approach 2): IsoFLOP profiles"
        + ("" if result is not None else " (too few interior minima for the laws)")
    )
    return _save(fig, path)


def draw_figure4(
    result: Any, rows: Sequence[dict[str, Any]], n_column: str, loss_column: str, *, n_label: str = "parameters"
):
    """Approach 3: iso-loss contours over (C, N) with the efficient frontier; the fit along our IsoFLOP profiles.

    ``result`` has ``loss(n, d)``, ``n_opt(c)`` and ``a`` (``analysis.report.ParametricResult``). The left panel's
    FLOP axis is C = 6ND, N being ``n_column``'s convention: the contours are L(N, D = C / 6N), the frontier is
    ``n_opt(C)`` (the paper's C = 6ND frontier) and our runs sit at (6 N D, N). Our runs' exact FLOPs (the ``flops``
    column, which their IsoFLOP budgets count) are larger than 6ND by a factor that varies with size; the legend
    gives its range, and placing the runs by exact FLOPs among contours drawn under 6ND would misplace them against
    the fit. The right panel needs no convention: each IsoFLOP budget's runs (final loss against N) and the fit
    evaluated at those runs' own (N, D), with D interpolated in log N between them."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
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
    contour = axes[0].contour(cc, nn, loss, levels=levels, cmap="viridis_r", linewidths=0.9)
    axes[0].clabel(contour, fontsize=6, fmt="%.2f")
    axes[0].plot(c_grid, result.n_opt(c_grid), color="C0", lw=2, label=f"efficient frontier, N_opt ∝ C^{result.a:.3f}")
    axes[0].scatter(run_c, run_n, s=8, color="k", label=runs_label, zorder=3)
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel=f"C = 6ND FLOPs (N: {n_label}, D: tokens)",
        ylabel=n_label,
        ylim=(n_grid[0], n_grid[-1]),
        title="Iso-loss contours of the fit",
    )
    axes[0].legend(fontsize=8)
    budgets = sorted({r["budget"] for r in rows if r.get("budget") is not None})
    colors = plt.cm.plasma(np.linspace(0.05, 0.85, max(len(budgets), 1)))
    for budget, color in zip(budgets, colors):
        mine = sorted((r for r in rows if r.get("budget") == budget), key=lambda r: r[n_column])
        n = np.array([r[n_column] for r in mine], dtype=np.float64)
        d = np.array([r["tokens"] for r in mine], dtype=np.float64)
        axes[1].scatter(n, [r[loss_column] for r in mine], color=color, s=16, label=f"{budget:.2g}")
        if n.size < 2:
            continue
        n_line = np.geomspace(n[0], n[-1], 80)
        d_line = np.exp(np.polyval(np.polyfit(np.log(n), np.log(d), 1), np.log(n_line)))
        fitted = result.loss(n_line, d_line)
        axes[1].plot(n_line, fitted, color=color, lw=1.3)
        best = int(np.argmin(fitted))
        axes[1].scatter([n_line[best]], [fitted[best]], marker="v", color=color, edgecolor="k", s=45, zorder=4)
    axes[1].set(
        xscale="log", xlabel=n_label, ylabel="final loss", title="IsoFLOP profiles: runs (dots) and the fit (lines)"
    )
    if budgets:
        axes[1].legend(title="budget (exact FLOPs)", fontsize=7, title_fontsize=7)
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
            figure3(results["approach2"].profiles, out / FIGURE_NAMES["approach2"], results["approach2"], n_label=label)
        )
    elif results.get("approach2_profiles") and not isinstance(results["approach2_profiles"], str):
        written.append(figure3(results["approach2_profiles"], out / FIGURE_NAMES["approach2"], n_label=label))
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
