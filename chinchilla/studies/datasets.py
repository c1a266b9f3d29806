"""The paper's Table A2: do the scaling exponents depend on the data? One preset's sweep on several data sets (the
paper: MassiveText vs GitHub code, a = 0.50 / 0.53 and b = 0.50 / 0.47 by Approach 2 on C4 and GitHub), each
reported on its own, then their a and b side by side with intervals.

    chinchilla reproduce --preset code_vs_text --compare-datasets embedded embedded/code --out DIR

trains ``DIR/<data set>/`` for each data set (``/`` in a name becomes ``__``; resumable like any sweep) and writes
``DIR/table_a2.md`` and ``DIR/table_a2.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chinchilla import runfiles
from chinchilla.analysis.render import interval_cell
from chinchilla.paper import APPROACHES, TABLE_A2
from chinchilla.preset import Preset, with_dataset
from chinchilla.reproduce import reproduce
from chinchilla.sweep.pool import resolve_jobs

TITLES = {"approach1": "1. training curves", "approach2": "2. IsoFLOP profiles", "approach3": "3. parametric loss"}


def dataset_dir(dataset: str) -> str:
    """The sub-directory of a comparison holding one data set's sweep."""
    return dataset.replace("/", "__")


def compare_datasets(
    preset: Preset,
    datasets: Sequence[str],
    out_dir,
    *,
    progress: bool = False,
    jobs: int | str | None = None,
    retry_failed: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any] | None:
    """Train and report ``preset`` on each of ``datasets`` into ``out_dir/<data set>``, then write Table A2.
    ``jobs`` and ``retry_failed`` as in ``chinchilla.reproduce.reproduce`` (each data set's runs ``jobs`` at a time).
    Returns {data set: summary} and the table, or None while some sweep's runs are pending (other workers)."""
    if len(datasets) < 2 or len(set(datasets)) != len(datasets):
        raise ValueError(f"--compare-datasets needs at least two different data sets; got {list(datasets)}")
    resolve_jobs(jobs)  # a bad value is an error before anything is built or written
    out = runfiles.as_path(out_dir)
    presets = {dataset: with_dataset(preset, dataset) for dataset in datasets}  # a bad name fails before training
    summaries = {}
    for dataset in datasets:
        summary = reproduce(
            presets[dataset],
            out / dataset_dir(dataset),
            progress=progress,
            jobs=jobs,
            retry_failed=retry_failed,
            log=log,
        )
        if summary is None:
            return None
        summaries[dataset] = summary
    table = table_a2(summaries)
    runfiles.write_text_atomic(out / "table_a2.md", table + "\n")
    runfiles.write_json_atomic(
        out / "table_a2.json",
        {
            "preset": preset.name,
            "datasets": list(datasets),
            "rows": {
                d: {a: {k: s[a].get(k) for k in ("a", "a_interval", "b", "b_interval", "error")} for a in APPROACHES}
                for d, s in summaries.items()
            },
            "convention": next(iter(summaries.values())).get("convention"),
            "paper": TABLE_A2,
        },
    )
    if log:
        log(table)
    return {"summaries": summaries, "table": table}


def table_a2(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: one row per data set, a and b (10th-90th percentile intervals) per approach, the headline parameter
    convention named; the paper's Table A2 below."""
    convention = next(iter(summaries.values())).get("convention", "total")
    n_name = {"total": "all parameters", "non_embedding": "non-embedding parameters"}.get(convention, convention)
    lines = [
        f"Table A2: N_opt ∝ C^a, D_opt ∝ C^b per data set (N = {n_name}, C = exact FLOPs; intervals: 10th-90th "
        "percentiles over bootstrap resamples of the runs)",
        "",
        "| data set | " + " | ".join(f"{TITLES[a]}: a | {TITLES[a]}: b" for a in APPROACHES) + " |",
        "|---|" + "---|---|" * len(APPROACHES),
    ]
    for dataset, summary in summaries.items():
        cells = []
        for approach in APPROACHES:
            entry = summary[approach]
            cells += [interval_cell(entry, "a"), interval_cell(entry, "b")]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    for name, (a, b) in TABLE_A2.items():
        lines.append(f"| paper: {name} (Approach 2, all parameters) | | | {a:.2f} | {b:.2f} | | |")
    return "\n".join(lines)
