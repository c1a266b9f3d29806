"""Training curves from a CSV file, for Approach 1 on anybody's data: one row per logged step of a run.

Columns: a run id (``run`` / ``run_id`` / ``id`` / ``name``, or ``run_col``), N, tokens seen or FLOPs spent so far
(either; the other is 6ND), and the loss, found by the same names and read with the same strictness as
:func:`chinchilla.fit.table.read_csv` (a ragged row, a NUL byte, a bad cell: a one-line error naming file, line and
column; a row with an empty loss is skipped and said). ``where`` filters rows as there. The rows of one run form its
curve, sorted by FLOPs; a run whose N changes, or with two rows at the same FLOPs, is an error naming the run and
the lines.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence

import numpy as np

from chinchilla.fit.envelope import Curve
from chinchilla.fit.table import _numeric_columns, _parse_csv, read_csv_text

RUN_COLUMN_NAMES: tuple[str, ...] = ("run", "run_id", "id", "run_name", "name")


@dataclasses.dataclass(frozen=True)
class CurveTable:
    """Curves read from a CSV, and how: ``source`` (file and columns), ``columns`` (quantity -> column),
    ``skipped_lines`` (rows without a loss)."""

    curves: list[Curve]
    source: str
    columns: dict[str, str]
    skipped_lines: tuple[int, ...] = ()


def read_curves_csv(
    path,
    *,
    run_col: str | None = None,
    n_col: str | None = None,
    tokens_col: str | None = None,
    flops_col: str | None = None,
    loss_col: str | None = None,
    where: str | Sequence[str] | None = None,
) -> CurveTable:
    """The training curves in a CSV file with one row per logged step (see the module docstring)."""
    text = read_csv_text(path)
    label = str(path)
    table = _parse_csv(text, label, n_col=n_col, loss_col=loss_col, tokens_col=tokens_col, flops_col=flops_col)
    columns = dict(table.columns)
    reader = csv.reader(text.splitlines())
    header = [cell.strip() for cell in next(reader)]
    if run_col is not None and run_col not in header:
        raise ValueError(f"{label}: run column {run_col!r} not found; the columns are {header}")
    run_col = run_col or next((h for name in RUN_COLUMN_NAMES for h in header if h.lower() == name), None)
    if run_col is None:
        raise ValueError(
            f"{label}: no run id column (name it with --run-col, or call it "
            f"{' / '.join(RUN_COLUMN_NAMES)}): the rows of one run form its training curve; the "
            f"columns are {header}"
        )
    loss_index, run_index = header.index(columns["loss"]), header.index(run_col)
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    for line_no, row in enumerate(reader, start=2):  # the rows _parse_csv kept, in its order
        if not any(cell.strip() for cell in row) or not row[loss_index].strip():
            continue
        if not row[run_index].strip():
            raise ValueError(f"{label} line {line_no}, column {run_col!r}: empty run id")
        rows.append(row)
        line_numbers.append(line_no)
    run_ids = np.array([row[run_index].strip() for row in rows], dtype=object)
    lines = np.array(line_numbers)
    keep = np.ones(len(rows), dtype=bool)
    label_where = ""
    if where is not None:
        from chinchilla.fit.rowfilter import row_mask

        expressions = [where] if isinstance(where, str) else list(where)
        filter_columns = {**_numeric_columns(header, rows), **table.filter_columns()}
        for expression in expressions:
            keep &= row_mask(expression, filter_columns)
        label_where = "; where " + " and ".join(f"({e})" if len(expressions) > 1 else e for e in expressions)
        if not keep.any():
            raise ValueError(f"--where keeps none of the {len(rows)} rows of {label}")
    curves = []
    for run in dict.fromkeys(run_ids[keep]):
        rows_of = np.flatnonzero(keep & (run_ids == run))
        n = table.n[rows_of]
        if not np.allclose(n, n[0], rtol=1e-9, atol=0):
            other = rows_of[np.flatnonzero(~np.isclose(n, n[0], rtol=1e-9, atol=0))[0]]
            raise ValueError(
                f"{label} line {lines[other]}, column {columns['n']!r}: run {run!r} has N = "
                f"{table.n[other]:g} here and {n[0]:g} on line {lines[rows_of[0]]}: one run, one N"
            )
        order = rows_of[np.argsort(table.flops[rows_of], kind="stable")]
        same = np.flatnonzero(np.diff(table.flops[order]) <= 0)
        if same.size:
            i, j = order[same[0]], order[same[0] + 1]
            raise ValueError(
                f"{label} lines {lines[i]} and {lines[j]}: run {run!r} has two rows at C = "
                f"{table.flops[i]:g} FLOPs (a curve's tokens or FLOPs must increase)"
            )
        if order.size < 2:
            raise ValueError(
                f"{label} line {lines[order[0]]}: run {run!r} has one row; Approach 1 needs each run's "
                "training curve (several logged steps); for final losses use fit approach2 or "
                "fit parametric"
            )
        curves.append(
            Curve(
                run=str(run),
                n_params=float(n[0]),
                tokens=table.d[order],
                flops=table.flops[order],
                loss=table.loss[order],
            )
        )
    return CurveTable(
        curves=curves,
        source=table.source.replace(" (columns ", f" (run={run_col!r}, ", 1) + label_where,
        columns={"run": run_col, **{k: v for k, v in columns.items()}},
        skipped_lines=tuple(table.skipped_lines),
    )
