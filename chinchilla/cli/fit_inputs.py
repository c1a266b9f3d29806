"""The runs a ``fit`` verb reads: a CSV file, the shipped reference points, or a sweep (its directory or the
results.csv it writes, read with the analysis settings its report uses), as a
:class:`chinchilla.fit.table.ScalingTable`.

Every verb that reads a table takes the same flags (:func:`add_table_args`): ``--n-col --tokens-col --flops-col
--loss-col --unique-tokens-col --budget-col`` (default: the usual names, ``chinchilla.fit.table``) and ``--where``.
The output says which columns were used (:func:`columns_used`) and which rows were skipped (:func:`skipped_rows`,
:func:`skipped_warning`).
"""

from __future__ import annotations

import argparse

COLUMN_HELP = (
    "Columns not named are found by their usual names: N / params / parameters / n_params; D / tokens / "
    "n_tokens; C / flops / compute; loss / final_loss / eval_loss; U / unique_tokens; budget (exactly, "
    "then ignoring case). The output says which were used."
)


def add_table_args(parser: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """The one vocabulary for naming a table's columns and filtering its rows (every verb that reads runs)."""
    where = " (CSV; for a sweep directory, the results column)" if sweep else ""
    group = parser.add_argument_group("columns and rows", COLUMN_HELP)
    group.add_argument("--n-col", help="column with the parameter count N")
    group.add_argument("--tokens-col", help="column with training tokens D")
    group.add_argument("--flops-col", help="column with training FLOPs C (D = C / 6N when there is no D column)")
    group.add_argument(
        "--loss-col",
        help=f"column with the final loss{where}"
        + (
            " (a sweep's default: the loss its report uses, recorded in its preset.json; else final_train_loss)"
            if sweep
            else ""
        ),
    )
    if not sweep:
        group.add_argument("--unique-tokens-col", help="column with unique tokens U (for --law data_constrained)")
    group.add_argument(
        "--budget-col",
        help="column with the planned FLOP budget grouping IsoFLOP runs (default: "
        "'budget' if present, else runs are grouped by C)",
    )
    group.add_argument(
        "--where",
        metavar="EXPR",
        action="append",
        help="keep the rows for which EXPR holds, e.g. '(tokens_per_param <= 30 or N > 1e9) and "
        "loss < 3': comparisons (<=, <, >=, >, ==, !=) of + - * / expressions over N, D, C, "
        "loss, U, tokens_per_param, epochs, budget and the file's numeric columns, joined by "
        "and/or/not, grouped by brackets; a division by zero is an error. Repeat --where to "
        "combine filters with AND (each must hold)",
    )


# A sweep's data (its directory, or the results.csv it writes) are read the same way whichever is given, with the
# report's headline defaults (analysis.report.AnalysisSettings: N = all parameters, the paper's convention; loss =
# the smoothed final training loss, the paper's), so that one sweep gives one answer.
SWEEP_CONVENTION = "total"
SWEEP_LOSS = "final_train_loss"  # when the sweep recorded no analysis settings (preset.json's "analysis")
ALL_GROUPS = "*"
SWEEP_RESULT_KEYS = frozenset({"run_id", "group", "status", "n_params", "non_embedding_params", "tokens", "flops"})
N_CONVENTION_NAMES = {"total": "all parameters", "non_embedding": "non-embedding parameters"}


def load_table(args: argparse.Namespace):
    """The runs of ``--reference``, of a sweep (its directory or results.csv: every finished run but WSD trunks, as
    the report's Approach 3 fits them) or of a CSV file, filtered by ``--where``."""
    import os

    from chinchilla.fit.table import read_csv, reference_table

    if args.reference:
        if args.path:
            raise ValueError("give a CSV path or --reference, not both")
        table = reference_table(args.reference)
        return table.where(args.where) if args.where else table
    if not args.path:
        raise ValueError("give a CSV path or --reference epoch")
    if os.path.isdir(args.path) or is_sweep_results_csv(args.path):  # a sweep: every finished run, as the report's
        # Approach 3 fits them (the IsoFLOP points and the curve runs' ends; not WSD trunks)
        for flag, value in (
            ("--n-col", args.n_col),
            ("--tokens-col", args.tokens_col),
            ("--flops-col", args.flops_col),
            ("--budget-col", args.budget_col),
            ("--unique-tokens-col", getattr(args, "unique_tokens_col", None)),
        ):
            if value is not None:
                raise ValueError(
                    f"{flag} would be ignored: {args.path} is a sweep directory (its results name their columns)"
                )
        return sweep_table(argparse.Namespace(**{"convention": None, "group": ALL_GROUPS, **vars(args)}))
    return read_csv(
        args.path,
        n_col=args.n_col,
        loss_col=args.loss_col,
        tokens_col=args.tokens_col,
        flops_col=args.flops_col,
        unique_tokens_col=args.unique_tokens_col,
        budget_col=args.budget_col,
        where=args.where,
    )


def sweep_table(args: argparse.Namespace):
    """A sweep's finished IsoFLOP runs as a table (N by --convention, loss from --loss-col), read from its directory
    or from its results.csv: the same rows and columns either way."""
    import os

    from chinchilla.fit.table import ScalingTable
    from chinchilla.sweep.results import N_COLUMNS, check_sweep_dir, collect_results, read_results_table

    loss_col = args.loss_col or recorded_analysis(args.path).get("loss") or SWEEP_LOSS
    group = args.group or "isoflop"  # ALL_GROUPS: every finished run but WSD trunks (Approach 3, as the report)
    directory = os.path.isdir(args.path) or "://" in args.path
    if directory:
        check_sweep_dir(args.path)  # a directory that is not a sweep's is said so, before any column talk
        check_sweep_has_runs(args.path)
    all_rows = collect_results(args.path) if directory else read_results_table(args.path)
    if all_rows and loss_col not in all_rows[0]:
        raise ValueError(f"{args.path}: no loss column {loss_col!r}; --loss-col takes final_train_loss or eval_loss")
    in_group = [
        r
        for r in all_rows
        if (r.get("group") == group if group != ALL_GROUPS else "trunk" not in str(r.get("flags") or ""))
    ]
    rows = [r for r in in_group if r.get("status") == "finished" and r.get(loss_col) is not None]
    if not rows:
        raise ValueError(_no_finished_runs(args.path, all_rows, in_group, group, loss_col))
    n_col = N_COLUMNS[args.convention or SWEEP_CONVENTION]
    budgets = [r.get("budget") for r in rows]
    has_budgets = all(b is not None for b in budgets)  # curve runs have none: Approach 3 does not need them
    table = ScalingTable.from_arrays(
        [r[n_col] for r in rows],
        [r[loss_col] for r in rows],
        d=[r["tokens"] for r in rows],
        flops=[r["flops"] for r in rows],
        budget=budgets if has_budgets else None,
        source=str(args.path),
        columns=(("n", n_col), ("d", "tokens"), ("flops", "flops"), ("loss", loss_col))
        + ((("budget", "budget"),) if has_budgets else ()),
    )
    return table.where(args.where) if args.where else table


def check_sweep_has_runs(path: str) -> None:
    """A directory that has a ``runs/`` folder but nothing else of a sweep (no plan.json, no results.csv, no run
    folder holding a run.json) is not a sweep: a ValueError saying what it lacks and what ``fit`` reads instead."""
    from chinchilla import runfiles

    root = runfiles.as_path(path)
    if (root / runfiles.PLAN_FILE).exists() or (root / runfiles.RESULTS_FILE).exists():
        return
    folders = runfiles.run_dirs(root)
    if any((folder / runfiles.RUN_FILE).exists() for folder in folders):
        return
    runs = f"{runfiles.RUNS_DIR}/"
    if not folders:
        inside = f"its {runs} folder is empty"
    elif len(folders) == 1:
        inside = f"the one folder in its {runs} ({folders[0].name}) holds no {runfiles.RUN_FILE}"
    else:
        inside = f"none of the {len(folders)} folders in its {runs} holds a {runfiles.RUN_FILE}"
    raise ValueError(
        f"{path} is not a sweep directory: it has no {runfiles.PLAN_FILE} or {runfiles.RESULTS_FILE}, and {inside}; "
        "fit reads the --out directory of `chinchilla sweep`/`reproduce`, its results.csv, or a CSV of runs"
    )


def _no_finished_runs(path: str, all_rows: list[dict], in_group: list[dict], group: str, loss_col: str) -> str:
    """Why a sweep gave no runs to fit: none at all, none of the group asked for, none finished yet, or none
    with the loss asked for."""
    from collections import Counter

    from chinchilla.fit.table import counted

    what = "runs" if group == ALL_GROUPS else f"runs of group {group}"
    if not all_rows:
        return f"{path}: no runs recorded yet; fit it once some have finished"
    if not in_group:
        groups = sorted({str(r.get("group")) for r in all_rows})
        return f"{path}: no {what}; its groups are {', '.join(groups)} (choose one with --group)"
    statuses = Counter(str(r.get("status")) for r in in_group)
    finished = statuses.get("finished", 0)
    if finished:
        of_group = "" if group == ALL_GROUPS else f" of group {group}"
        return (
            f"{path}: {'its' if finished == 1 else 'none of its'} {counted(finished, 'finished run')}{of_group} "
            f"{'has no' if finished == 1 else 'has a'} {loss_col} loss; --loss-col takes final_train_loss or eval_loss"
        )
    shown = ", ".join(f"{count} {status}" for status, count in statuses.most_common())
    return f"{path}: no finished {what} yet ({shown}); fit it once some have finished"


def recorded_analysis(path: str) -> dict:
    """The analysis settings a sweep recorded for its report (``preset.json``'s "analysis": the loss column, Approach
    1's smoothing window, ...), for a sweep directory or its results.csv; {} when there are none. A fit of the sweep
    uses them as its defaults, so that it gives the report's answer."""
    import json
    import os

    if "://" in str(path):
        return {}
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    try:
        with open(os.path.join(directory, "preset.json"), encoding="utf-8") as handle:
            analysis = json.load(handle).get("analysis")
    except (OSError, ValueError, AttributeError):
        return {}
    return analysis if isinstance(analysis, dict) else {}


def is_sweep_results_csv(path: str) -> bool:
    """Whether a CSV file's header is a sweep's results table (``chinchilla sweep`` writes results.csv)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False  # read_csv gives the one-line error
    return SWEEP_RESULT_KEYS <= {cell.strip() for cell in header}


def columns_used(table) -> dict[str, str]:
    from chinchilla.fit.table import QUANTITY_NAMES

    return {QUANTITY_NAMES[key]: column for key, column in table.columns}


def skipped_rows(table) -> dict:
    """The CSV lines skipped for an empty loss, for --json (``skipped_rows``)."""
    return {
        "skipped_rows": {"lines": list(table.skipped_lines), "reason": "empty loss cell (a run without a result)"}
        if table.skipped_lines
        else None
    }


def skipped_warning(table) -> list[str]:
    lines = list(table.skipped_lines)
    if not lines:
        return []
    from chinchilla.fit.table import counted

    shown = ", ".join(map(str, lines[:10])) + (", ..." if len(lines) > 10 else "")
    return [
        f"skipped {counted(len(lines), 'row')} with an empty loss cell: "
        f"{'line' if len(lines) == 1 else 'lines'} {shown}"
    ]
