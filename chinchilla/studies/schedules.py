"""WSD trunks against cosine runs: a WSD preset's sweep beside its cosine twin's, compared point by point.

    chinchilla reproduce --preset tiny_cpu_wsd --compare-schedules --out DIR

``compare_schedules`` trains (or resumes) both sweeps and writes ``DIR/compare_schedules.md`` and ``.json``;
``schedule_comparison`` is the comparison itself (spent FLOPs, per-point loss differences beside seed noise, each
approach's exponents), ``format_schedule_comparison`` its markdown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from chinchilla import runfiles
from chinchilla.analysis.render import interval_cell
from chinchilla.preset import Preset, with_schedule
from chinchilla.reproduce import reproduce
from chinchilla.sweep.plan import TRUNK_FLAG

COMPARE_SCHEDULES_FILE = "compare_schedules"  # OUT/compare_schedules.md and .json


def compare_schedules(
    preset: Preset,
    out_dir,
    *,
    cosine_dir=None,
    worker: int = 0,
    num_workers: int = 1,
    retry_failed: bool = False,
    progress: bool = False,
    jobs: int | str | None = None,
    extend: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any] | None:
    """A WSD preset beside its cosine twin (``chinchilla reproduce --preset tiny_cpu_wsd --compare-schedules``):
    train (or resume, or reuse) both sweeps, the WSD one into ``out_dir`` and the cosine one into ``cosine_dir``
    (default ``<out_dir>_cosine``), report each, then compare them (``schedule_comparison``) into
    ``out_dir/compare_schedules.md`` and ``.json``. Returns the comparison, or None while runs of other workers
    are pending in either sweep."""
    if preset.schedule != "wsd":
        raise ValueError(
            f"--compare-schedules compares a wsd preset with its cosine twin; preset {preset.name!r} "
            "trains cosine schedules: give --preset tiny_cpu_wsd (or --schedule wsd)"
        )
    cosine = with_schedule(preset, "cosine")
    cosine_dir = str(cosine_dir or f"{str(out_dir).rstrip('/')}_cosine")
    if str(runfiles.as_path(cosine_dir)) == str(runfiles.as_path(out_dir)):
        raise ValueError(f"--cosine-dir {cosine_dir} is --out itself; the two schedules need two sweep directories")
    say = log or (lambda _: None)
    summaries = {}
    for name, which, directory in (("wsd", preset, out_dir), ("cosine", cosine, cosine_dir)):
        say(f"--compare-schedules: the {name} sweep ({which.name}) in {directory}")
        summaries[name] = reproduce(
            which,
            directory,
            worker=worker,
            num_workers=num_workers,
            retry_failed=retry_failed,
            progress=progress,
            jobs=jobs,
            extend=extend,
            log=log,
        )
    if any(summary is None for summary in summaries.values()):
        say("--compare-schedules: runs of other workers are still pending; the comparison waits for them")
        return None
    comparison = schedule_comparison(
        out_dir, cosine_dir, summaries["wsd"], summaries["cosine"], loss=preset.analysis.loss
    )
    out = runfiles.as_path(out_dir)
    runfiles.write_json_atomic(out / f"{COMPARE_SCHEDULES_FILE}.json", comparison)
    text = format_schedule_comparison(comparison)
    runfiles.write_text_atomic(out / f"{COMPARE_SCHEDULES_FILE}.md", text + "\n")
    say(text)
    say(f"comparison: {str(out_dir).rstrip('/')}/{COMPARE_SCHEDULES_FILE}.md")
    return comparison


def schedule_comparison(
    wsd_dir, cosine_dir, wsd_summary: Mapping[str, Any], cosine_summary: Mapping[str, Any], *, loss: str = "eval_loss"
) -> dict[str, Any]:
    """What changes when a sweep's runs are WSD branches of shared trunks instead of cosine runs of their own:

    - per point (the same run id: the same model, tokens and seed), ``loss`` of the WSD run - the cosine run's:
      count, mean, median, median |delta|, 90th percentile of |delta| and of delta, largest |delta|, overall and
      per group; beside the seed noise of one run in each sweep (pooled standard deviation between seeds);
    - each approach's a and b with intervals under every convention, both schedules, and whether the WSD value
      lies inside the cosine sweep's interval; Approach 3's parameters; Approach 2's N_opt per budget;
    - the FLOPs: the WSD plan's spent FLOPs over the cosine plan's (``Plan.spent_flops``), and the runs' summed
      training time in each sweep."""
    from chinchilla.sweep.identity import recorded
    from chinchilla.sweep.results import collect_results

    def finished(directory):
        return {
            r["run_id"]: r
            for r in collect_results(directory)
            if r["status"] == "finished"
            and TRUNK_FLAG not in (r.get("flags") or ())
            and isinstance(r.get(loss), (int, float))
        }

    wsd_rows, cosine_rows = finished(wsd_dir), finished(cosine_dir)
    common = sorted(set(wsd_rows) & set(cosine_rows))
    points = [
        {
            "run_id": i,
            "group": cosine_rows[i]["group"],
            "model": cosine_rows[i]["model"],
            "tokens": cosine_rows[i]["tokens"],
            "seed": cosine_rows[i]["seed"],
            "cosine": cosine_rows[i][loss],
            "wsd": wsd_rows[i][loss],
            "delta": wsd_rows[i][loss] - cosine_rows[i][loss],
        }
        for i in common
    ]

    def stats(selected):
        if not selected:
            return {"points": 0}
        delta = np.array([p["delta"] for p in selected])
        return {
            "points": len(selected),
            "mean": float(delta.mean()),
            "median": float(np.median(delta)),
            "median_abs": float(np.median(np.abs(delta))),
            "p90_abs": float(np.percentile(np.abs(delta), 90)),
            "p10": float(np.percentile(delta, 10)),
            "p90": float(np.percentile(delta, 90)),
            "max_abs": float(np.abs(delta).max()),
            "wsd_better": int((delta < 0).sum()),
        }

    groups = sorted({p["group"] for p in points})
    approaches = {}
    for approach in ("approach1", "approach2", "approach3"):
        entry = {}
        for convention in cosine_summary[approach].get("conventions") or {}:
            cos = cosine_summary[approach]["conventions"][convention]
            wsd = (wsd_summary[approach].get("conventions") or {}).get(convention, {})
            low, high = cos.get("a_interval") or (None, None)
            inside = (
                None
                if wsd.get("a") is None or low is None or high is None
                else bool(min(low, high) <= wsd["a"] <= max(low, high))
            )
            entry[convention] = {"cosine": cos, "wsd": wsd, "wsd_a_inside_cosine_interval": inside}
        approaches[approach] = entry
    parameters = {
        name: {k: s["approach3"].get(k) for k in ("E", "A", "B", "alpha", "beta", "parameter_intervals")}
        for name, s in (("cosine", cosine_summary), ("wsd", wsd_summary))
    }
    budgets = {
        name: [
            {k: b.get(k) for k in ("budget", "n_opt", "loss_opt", "interior")}
            for b in (s["approach2"].get("budgets") or [])
        ]
        for name, s in (("cosine", cosine_summary), ("wsd", wsd_summary))
    }
    wsd_plan, cosine_plan = recorded(wsd_dir)[0], recorded(cosine_dir)[0]
    flops_info = {
        "cosine_total_flops": cosine_plan.total_flops if cosine_plan else None,
        "wsd_nominal_flops": wsd_plan.total_flops if wsd_plan else None,
        "wsd_spent_flops": wsd_plan.spent_flops if wsd_plan else None,
    }
    if cosine_plan and wsd_plan:
        flops_info["spent_ratio"] = wsd_plan.spent_flops / cosine_plan.total_flops
    times = {
        "cosine_train_time_s": cosine_summary.get("train_time_s"),
        "wsd_train_time_s": wsd_summary.get("train_time_s"),
    }
    if times["cosine_train_time_s"] and times["wsd_train_time_s"]:
        times["train_time_ratio"] = times["wsd_train_time_s"] / times["cosine_train_time_s"]
    return {
        "wsd_dir": str(wsd_dir),
        "cosine_dir": str(cosine_dir),
        "loss": loss,
        "wsd_preset": wsd_summary.get("preset"),
        "cosine_preset": cosine_summary.get("preset"),
        "schedule": wsd_summary.get("schedule"),
        "convention": cosine_summary.get("convention", "total"),
        "points": points,
        "delta": stats(points),
        "delta_by_group": {g: stats([p for p in points if p["group"] == g]) for g in groups},
        "only_wsd": sorted(set(wsd_rows) - set(common)),
        "only_cosine": sorted(set(cosine_rows) - set(common)),
        "seed_noise": {"cosine": cosine_summary.get("seed_noise"), "wsd": wsd_summary.get("seed_noise")},
        "approaches": approaches,
        "approach3_parameters": parameters,
        "approach2_budgets": budgets,
        "flops": flops_info,
        "time": times,
    }


def format_schedule_comparison(comparison: Mapping[str, Any]) -> str:
    """The markdown of ``schedule_comparison``: Table 2 for both schedules side by side, then the per-point loss
    differences beside the seed noise, then the FLOPs."""
    names = {"total": "all parameters", "non_embedding": "non-embedding"}
    titles = {
        "approach1": "1. training-curve envelope",
        "approach2": "2. IsoFLOP profiles",
        "approach3": "3. parametric loss",
    }
    lines = [
        f"# WSD branches vs cosine runs: {comparison.get('wsd_preset')} vs {comparison.get('cosine_preset')}",
        "",
        f"WSD sweep `{comparison['wsd_dir']}`, cosine sweep `{comparison['cosine_dir']}`; loss "
        f"`{comparison['loss']}`; intervals: 10th-90th percentiles over bootstrap resamples.",
        "",
        "## Table 2, both schedules",
        "",
        "| approach | N | a, cosine | a, WSD | WSD a inside the cosine interval | b, cosine | b, WSD |",
        "|---|---|---|---|---|---|---|",
    ]
    for approach, entry in comparison["approaches"].items():
        order = sorted(entry, key=lambda c: c != comparison.get("convention", "total"))
        for convention in order:
            item = entry[convention]
            inside = {True: "yes", False: "no", None: "-"}[item["wsd_a_inside_cosine_interval"]]
            lines.append(
                f"| {titles[approach]} | {names.get(convention, convention)} | "
                f"{interval_cell(item['cosine'], 'a')} | {interval_cell(item['wsd'], 'a')} | {inside} | "
                f"{interval_cell(item['cosine'], 'b')} | {interval_cell(item['wsd'], 'b')} |"
            )
    delta = comparison["delta"]
    noise = comparison.get("seed_noise") or {}
    std = {k: (v or {}).get("std") for k, v in noise.items()}

    def fmt(v):
        return "-" if v is None else f"{v:.4f}"

    lines += ["", "## Per point: WSD loss - cosine loss (same model, tokens, seed)", ""]
    if not delta.get("points"):
        lines += ["No point finished in both sweeps.", ""]
    else:
        lines += [
            "| runs | points | median | median abs | 90th pct abs | 10th / 90th pct | largest abs | WSD lower |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = [("all", delta)] + list(comparison.get("delta_by_group", {}).items())
        for name, s in rows:
            if s.get("points"):
                lines.append(
                    f"| {name} | {s['points']} | {s['median']:+.4f} | {s['median_abs']:.4f} | "
                    f"{s['p90_abs']:.4f} | {s['p10']:+.4f} / {s['p90']:+.4f} | {s['max_abs']:.4f} | "
                    f"{s['wsd_better']} of {s['points']} |"
                )
        lines += [
            "",
            f"Seed noise (pooled standard deviation of one run's loss between seeds): cosine "
            f"{fmt(std.get('cosine'))}, WSD {fmt(std.get('wsd'))} nats; the difference of two runs varies "
            f"by about sqrt(2) times that.",
        ]
        if std.get("cosine"):
            verdict = "within" if delta["median_abs"] <= std["cosine"] else "above"
            lines[-1] += f" The median |delta| {delta['median_abs']:.4f} is {verdict} the cosine seed noise."
    budgets = comparison.get("approach2_budgets") or {}
    if budgets.get("cosine") and budgets.get("wsd"):
        by_budget = {b["budget"]: b for b in budgets["wsd"]}
        lines += [
            "",
            "## Approach 2: each budget's minimum",
            "",
            "| budget | N_opt, cosine | N_opt, WSD | loss at N_opt, cosine | loss at N_opt, WSD |",
            "|---|---|---|---|---|",
        ]
        for b in budgets["cosine"]:
            w = by_budget.get(b["budget"], {})

            def cell(x, f):
                return "-" if x is None else format(x, f)

            lines.append(
                f"| {b['budget']:.3g} | {cell(b.get('n_opt'), '.4g')} | {cell(w.get('n_opt'), '.4g')} | "
                f"{cell(b.get('loss_opt'), '.4f')} | {cell(w.get('loss_opt'), '.4f')} |"
            )
    params = comparison.get("approach3_parameters") or {}
    if all(params.get(k, {}).get("E") is not None for k in ("cosine", "wsd")):
        lines += [
            "",
            "## Approach 3's parameters",
            "",
            "| schedule | E | A | B | alpha | beta |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("cosine", "wsd"):
            p = params[name]
            intervals = p.get("parameter_intervals") or {}
            cells = [
                f"{p[k]:.4g}" + (f" ({intervals[k][0]:.3g}, {intervals[k][1]:.3g})" if k in intervals else "")
                for k in ("E", "A", "B", "alpha", "beta")
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    f, t = comparison.get("flops") or {}, comparison.get("time") or {}
    lines += ["", "## Compute", ""]
    if f.get("spent_ratio") is not None:
        lines.append(
            f"Spent FLOPs: WSD {f['wsd_spent_flops']:.3g} (each trunk once) vs cosine "
            f"{f['cosine_total_flops']:.3g}: {f['spent_ratio']:.3f}x; both sweeps' runs count "
            f"{f['wsd_nominal_flops']:.3g} nominal FLOPs."
        )
    if t.get("train_time_ratio") is not None:
        lines.append(
            f"Training time summed over runs: WSD {t['wsd_train_time_s'] / 60:.1f} min, cosine "
            f"{t['cosine_train_time_s'] / 60:.1f} min: {t['train_time_ratio']:.3f}x."
        )
    if comparison.get("only_wsd") or comparison.get("only_cosine"):
        lines.append(
            f"Points in one sweep only (left out of the differences): {len(comparison['only_wsd'])} WSD, "
            f"{len(comparison['only_cosine'])} cosine."
        )
    return "\n".join(lines)
