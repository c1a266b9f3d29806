"""A table of training runs for the fitters: parameters N, tokens D, FLOPs C, final loss L (and, for the
data-constrained law, unique tokens U), from arrays, a CSV file or the shipped reference data.

Give tokens or FLOPs (or both): D = C / (6 N) when only C is known (the replication's processing of the paper's
points), and C = 6 N D when only D is. Every column is validated (finite, positive, same length); a CSV's errors
name the file, the line and the column the same way (``data.csv line 3, column 'loss': 'nan' is not a finite
number``), arrays' errors the column and the index.

Column names need not be given when the CSV uses a usual one (:data:`DEFAULT_COLUMN_NAMES`: N / params /
parameters / n_params, D / tokens / n_tokens, C / flops / compute, loss / final_loss / eval_loss, U /
unique_tokens, budget; matched exactly, then ignoring case); the table records which were used (``columns``).
``where`` keeps the rows a filter expression (:mod:`chinchilla.fit.rowfilter`) holds for, over the CSV's numeric
columns and the derived N, D, C, loss, U and tokens_per_param = D / N.

The reference data ``epoch`` is the 245 runs read off the paper's Figure 4 by Besiroglu et al. 2024 (see
``reference/README.md``); :func:`reference_table` returns it with the replication's processing available as
``.drop_highest_loss(5)``.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.resources
import os
from collections.abc import Mapping, Sequence

import numpy as np

REFERENCE_DATA: dict[str, dict[str, str]] = {
    "epoch": {"file": "epoch_chinchilla.csv", "n_col": "Model Size", "flops_col": "Training FLOP", "loss_col": "loss"},
}
# The replication drops the 5 highest-loss runs of the reference data before fitting.
REFERENCE_DROP_HIGHEST_LOSS = 5
# Usual column names per quantity, in order of preference; the first found (exactly, then ignoring case) is used.
DEFAULT_COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "n": ("N", "params", "parameters", "n_params"),
    "d": ("D", "tokens", "n_tokens"),
    "flops": ("C", "flops", "compute"),
    "loss": ("loss", "final_loss", "eval_loss"),
    "unique_tokens": ("U", "unique_tokens", "U_D"),
    "budget": ("budget",),
}


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """A count with its noun in the right number for messages: ``1 run``, ``2 runs`` (``plural`` where the plural is
    not the noun + s: ``counted(1, "was", "were")``-style verbs too)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


# How each quantity is called in filters and messages.
QUANTITY_NAMES: dict[str, str] = {
    "n": "N",
    "d": "D",
    "flops": "C",
    "loss": "loss",
    "unique_tokens": "U",
    "budget": "budget",
}


@dataclasses.dataclass(frozen=True)
class ScalingTable:
    """Runs as float64 arrays of equal length: ``n`` parameters, ``d`` tokens, ``flops``, ``loss``, optional
    ``unique_tokens`` and ``budget`` (the planned FLOP budget grouping IsoFLOP runs). ``source`` says where they came
    from and what was done to them; ``columns`` which file column gave each quantity (``(("n", "params"), ...)``)."""

    n: np.ndarray
    d: np.ndarray
    flops: np.ndarray
    loss: np.ndarray
    unique_tokens: np.ndarray | None = None
    source: str = "arrays"
    budget: np.ndarray | None = None
    columns: tuple[tuple[str, str], ...] = ()
    skipped_lines: tuple[int, ...] = ()

    def __post_init__(self):
        columns = {"n": self.n, "d": self.d, "flops": self.flops, "loss": self.loss}
        for optional in ("unique_tokens", "budget"):
            if getattr(self, optional) is not None:
                columns[optional] = getattr(self, optional)
        for name, values in validate_columns(columns).items():
            object.__setattr__(self, name, values)
        if self.unique_tokens is not None:
            bad = np.flatnonzero(self.unique_tokens > self.d * (1 + 1e-12))
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"unique_tokens[{i}]={float(self.unique_tokens[i])!r} exceeds "
                    f"d[{i}]={float(self.d[i])!r}: a run cannot see more unique tokens than tokens"
                )

    @classmethod
    def from_arrays(
        cls,
        n,
        loss,
        *,
        d=None,
        flops=None,
        unique_tokens=None,
        budget=None,
        source: str = "arrays",
        columns: tuple[tuple[str, str], ...] = (),
    ) -> ScalingTable:
        """From N, loss and tokens ``d`` or ``flops`` or both (a missing one is derived with C = 6 N D)."""
        if d is None and flops is None:
            raise ValueError("give d (tokens) or flops (or both); a missing one follows from C = 6 N D")
        given = {"n": n, "loss": loss}
        for name, values in (("d", d), ("flops", flops), ("unique_tokens", unique_tokens), ("budget", budget)):
            if values is not None:
                given[name] = values
        arrays = validate_columns(given)
        if flops is None:
            arrays["flops"] = 6.0 * arrays["n"] * arrays["d"]
        elif d is None:
            arrays["d"] = arrays["flops"] / (6.0 * arrays["n"])
            source += " (D = C / 6N)"
        return cls(
            n=arrays["n"],
            d=arrays["d"],
            flops=arrays["flops"],
            loss=arrays["loss"],
            unique_tokens=arrays.get("unique_tokens"),
            budget=arrays.get("budget"),
            source=source,
            columns=columns,
        )

    def __len__(self) -> int:
        return int(self.n.size)

    def covariates(self) -> dict[str, np.ndarray]:
        """Columns by the names laws use: ``n``, ``d`` and, when present, ``u`` (unique tokens)."""
        out = {"n": self.n, "d": self.d}
        if self.unique_tokens is not None:
            out["u"] = self.unique_tokens
        return out

    def select(self, rows: np.ndarray, note: str) -> ScalingTable:
        """The runs picked by an index array or boolean mask; ``note`` is appended to ``source``."""
        unique = None if self.unique_tokens is None else self.unique_tokens[rows]
        budget = None if self.budget is None else self.budget[rows]
        return ScalingTable(
            n=self.n[rows],
            d=self.d[rows],
            flops=self.flops[rows],
            loss=self.loss[rows],
            unique_tokens=unique,
            budget=budget,
            source=f"{self.source}; {note}",
            columns=self.columns,
            skipped_lines=self.skipped_lines,
        )

    def filter_columns(self) -> dict[str, np.ndarray]:
        """The quantities a ``where`` filter can name: N, D, C, loss, tokens_per_param = D / N, and U, epochs =
        D / U, budget when present."""
        out = {"N": self.n, "D": self.d, "C": self.flops, "loss": self.loss, "tokens_per_param": self.d / self.n}
        if self.unique_tokens is not None:
            out.update({"U": self.unique_tokens, "epochs": self.d / self.unique_tokens})
        if self.budget is not None:
            out["budget"] = self.budget
        return out

    def where(self, expression: str | Sequence[str], extra: Mapping[str, np.ndarray] | None = None) -> ScalingTable:
        """The runs for which the filter ``expression`` holds (e.g. ``"tokens_per_param <= 30 and N > 1e8"``,
        grammar in :mod:`chinchilla.fit.rowfilter`), over :meth:`filter_columns` and ``extra`` named columns; a
        sequence of filters keeps the runs for which all hold (AND: what repeated ``--where`` flags mean). A
        ValueError when they keep no run, saying how many runs each filter keeps."""
        from chinchilla.fit.rowfilter import row_mask

        expressions = [expression] if isinstance(expression, str) else list(expression)
        if not expressions:
            raise ValueError("--where: no filter expression given")
        columns = {**(extra or {}), **self.filter_columns()}
        masks = [row_mask(e, columns) for e in expressions]
        mask = np.logical_and.reduce(masks)
        label = " and ".join(f"({e})" if len(expressions) > 1 else e for e in expressions)
        if not mask.any():
            each = (
                ""
                if len(expressions) == 1
                else " (" + "; ".join(f"{e!r} alone keeps {int(m.sum())}" for e, m in zip(expressions, masks)) + ")"
            )
            raise ValueError(f"--where {label!r} keeps none of the {counted(len(self), 'run')} ({self.source}){each}")
        return self.select(np.flatnonzero(mask), f"where {label}: {int(mask.sum())} of {counted(len(self), 'run')}")

    def drop_highest_loss(self, k: int) -> ScalingTable:
        """Without the ``k`` runs of highest loss (ties broken by row order), the replication's outlier rule."""
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"drop_highest_loss={k!r} must be a non-negative integer")
        if k == 0:
            return self
        if k >= len(self):
            raise ValueError(f"drop_highest_loss={k} would drop all {counted(len(self), 'run')}")
        keep = np.sort(np.argsort(self.loss, kind="stable")[: len(self) - k])
        return self.select(keep, "dropped the highest-loss run" if k == 1 else f"dropped the {k} highest-loss runs")


def read_csv_text(path) -> str:
    """A CSV file's text (UTF-8, a byte-order mark dropped); a file that is not UTF-8 is a one-line ValueError."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not a UTF-8 text file (byte {error.start}: {error.reason}); give a CSV file with a header row"
        ) from None


def read_csv(
    path: str | os.PathLike,
    *,
    n_col: str | None = None,
    loss_col: str | None = None,
    tokens_col: str | None = None,
    flops_col: str | None = None,
    unique_tokens_col: str | None = None,
    budget_col: str | None = None,
    where: str | Sequence[str] | None = None,
) -> ScalingTable:
    """A :class:`ScalingTable` from a CSV file with a header row. Columns not named are looked up among
    :data:`DEFAULT_COLUMN_NAMES` (N and loss are required, and tokens or FLOPs or both; unique tokens and budget are
    read when present); ``where`` keeps the rows a filter expression holds for. A row with an empty loss (a run
    without a result) is skipped and the skip recorded in ``source`` and ``skipped_lines``; any other bad cell, a
    ragged row, a NUL byte, a repeated header name or a D = C / 6N below one token is a ValueError naming file,
    line and column."""
    return _parse_csv(
        read_csv_text(path),
        str(path),
        n_col=n_col,
        loss_col=loss_col,
        tokens_col=tokens_col,
        flops_col=flops_col,
        unique_tokens_col=unique_tokens_col,
        budget_col=budget_col,
        where=where,
    )


def reference_table(name: str = "epoch") -> ScalingTable:
    """The shipped reference runs, unprocessed (``.drop_highest_loss(5)`` gives the replication's 240)."""
    if name not in REFERENCE_DATA:
        raise ValueError(f"unknown reference data {name!r}; known: {', '.join(sorted(REFERENCE_DATA))}")
    spec = REFERENCE_DATA[name]
    resource = importlib.resources.files("chinchilla.fit").joinpath("reference", spec["file"])
    text = resource.read_text(encoding="utf-8")
    return _parse_csv(
        text,
        f"reference:{name}",
        n_col=spec["n_col"],
        loss_col=spec["loss_col"],
        flops_col=spec["flops_col"],
        defaults=False,
    )


def resolve_columns(
    header: Sequence[str], label: str, given: Mapping[str, str | None], *, defaults: bool = True
) -> dict[str, str]:
    """Which header column holds each quantity (``n``, ``d``, ``flops``, ``loss``, ``unique_tokens``, ``budget``):
    the named ones (a ValueError if absent), else the first usual name found (:data:`DEFAULT_COLUMN_NAMES`, exactly,
    then ignoring case). N, loss and one of D or C are required."""
    absent = [col for col in given.values() if col is not None and col not in header]
    if absent:
        # tests/test_fit_table.py pins this message's wording (a list repr): left as it is
        raise ValueError(f"{label}: column(s) {absent} not found; the columns are {list(header)}")
    chosen = {key: col for key, col in given.items() if col is not None}
    if defaults:
        lower = {h.lower(): h for h in reversed(header)}
        sized = any(given.get(k) for k in ("d", "flops"))  # D or C named: the other is derived, not looked up
        for key, names in DEFAULT_COLUMN_NAMES.items():
            if key in chosen or (sized and key in ("d", "flops")):
                continue
            found = next((n for n in names if n in header), None) or next(
                (lower[n.lower()] for n in names if n.lower() in lower), None
            )
            if found is not None and found not in chosen.values():
                chosen[key] = found
    missing = [QUANTITY_NAMES[k] for k in ("n", "loss") if k not in chosen]
    if "d" not in chosen and "flops" not in chosen:
        missing.append("D or C")
    if missing:
        flags = {"N": "--n-col", "loss": "--loss-col", "D or C": "--tokens-col or --flops-col"}
        raise ValueError(
            f"{label}: no column for {', '.join(missing)} (name it with "
            f"{', '.join(flags[m] for m in missing)}, or call it "
            + "; ".join(
                " / ".join(DEFAULT_COLUMN_NAMES[k])
                for k in ("n", "d", "flops", "loss")
                if QUANTITY_NAMES[k] in missing or (k in ("d", "flops") and "D or C" in missing)
            )
            + f"); the columns are {_names(header)}"
        )
    return chosen


def _parse_csv(
    text: str,
    label: str,
    *,
    n_col: str | None = None,
    loss_col: str | None = None,
    tokens_col: str | None = None,
    flops_col: str | None = None,
    unique_tokens_col: str | None = None,
    budget_col: str | None = None,
    where: str | Sequence[str] | None = None,
    defaults: bool = True,
) -> ScalingTable:
    if "\x00" in text:
        line_no = text.count("\n", 0, text.index("\x00")) + 1
        line = text.splitlines()[line_no - 1]
        column = line[: line.index("\x00")].count(",") + 1
        raise ValueError(
            f"{label} line {line_no}, column {column}: a NUL byte (\\x00): not a text CSV, or a damaged one"
        )
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise ValueError(f"{label} is empty: expected a header row and at least one run")
    header = [cell.strip() for cell in header]
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if name in seen:
            raise ValueError(
                f"{label} line 1, column {i}: header name {name!r} repeats column {seen[name]}; "
                "every column needs its own name"
            )
        seen[name] = i
    given = {
        "n": n_col,
        "d": tokens_col,
        "flops": flops_col,
        "loss": loss_col,
        "unique_tokens": unique_tokens_col,
        "budget": budget_col,
    }
    wanted = resolve_columns(header, label, given, defaults=defaults)
    index = {key: header.index(col) for key, col in wanted.items()}
    values: dict[str, list[float]] = {key: [] for key in wanted}
    raw_rows: list[list[str]] = []
    data_lines: list[int] = []
    no_loss: list[int] = []  # runs without a result yet (e.g. failed or unfinished rows of a sweep's results.csv)
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{label} line {line_no}: {len(row)} fields where the header has {len(header)} "
                f"({'a missing' if len(row) < len(header) else 'an extra'} comma or cell?)"
            )
        if index["loss"] >= len(row) or not row[index["loss"]].strip():
            no_loss.append(line_no)
            continue
        for key, i in index.items():
            values[key].append(_cell(row, i, label, line_no, wanted[key]))
        if "unique_tokens" in values and "d" in values and values["unique_tokens"][-1] > values["d"][-1] * (1 + 1e-12):
            raise ValueError(
                f"{label} line {line_no}, column {wanted['unique_tokens']!r}: "
                f"{values['unique_tokens'][-1]:g} unique tokens exceed the {values['d'][-1]:g} tokens "
                f"of column {wanted['d']!r}"
            )
        raw_rows.append(row)
        data_lines.append(line_no)
    if not values["n"]:
        raise ValueError(
            f"{label} has a header but no runs"
            + (
                f" with a loss ({counted(len(no_loss), 'row has', 'rows have')} an empty {wanted['loss']!r})"
                if no_loss
                else ""
            )
        )
    used = ", ".join(f"{QUANTITY_NAMES[k]}={c!r}" for k, c in wanted.items())
    if no_loss:
        shown = ", ".join(map(str, no_loss[:5])) + (", ..." if len(no_loss) > 5 else "")
        # tests/test_fit_table.py pins this wording ("skipped 1 row(s) ... line(s) 3"): left as it is
        used += f"; skipped {len(no_loss)} row(s) with an empty {wanted['loss']!r}: line(s) {shown}"
    if "d" not in values:  # D = C / 6N: below one token, C and N cannot be FLOPs and parameters
        for i, (n_value, c_value) in enumerate(zip(values["n"], values["flops"])):
            if c_value / (6.0 * n_value) < 1.0:
                raise ValueError(
                    f"{label} line {data_lines[i]}, column {wanted['flops']!r}: D = C / 6N = "
                    f"{c_value:g} / (6 x {n_value:g}) = {c_value / (6.0 * n_value):.3g} tokens, below one "
                    f"token (is column {wanted['flops']!r} in FLOPs and {wanted['n']!r} in parameters?)"
                )
    if "d" in values and "flops" in values:
        _check_units(values["n"], values["d"], values["flops"], data_lines, label, wanted)
    table = ScalingTable.from_arrays(
        values["n"],
        values["loss"],
        d=values.get("d"),
        flops=values.get("flops"),
        unique_tokens=values.get("unique_tokens"),
        budget=values.get("budget"),
        source=f"{label} (columns {used})",
        columns=tuple(wanted.items()),
    )
    table = dataclasses.replace(table, skipped_lines=tuple(no_loss))
    if where is not None:
        table = table.where(where, extra=_numeric_columns(header, raw_rows))
    return table


#: The range of the median C / 6ND that N, D and C in parameters, tokens and FLOPs give: exact FLOPs (Appendix F, with
#: attention and embeddings) differ from 6ND by well under 3x; a ratio outside is a unit slip (N in millions, ...).
UNITS_RATIO_RANGE = (0.5, 3.0)
#: How far (as a factor) one row's C / 6ND may lie from the median before its line is named as inconsistent.
UNITS_ROW_FACTOR = 2.0


def _check_units(
    n: Sequence[float],
    d: Sequence[float],
    c: Sequence[float],
    lines: Sequence[int],
    label: str,
    wanted: Mapping[str, str],
) -> None:
    """With N, D and C all given, C / 6ND per row must sit near 1 (median within :data:`UNITS_RATIO_RANGE`) and
    each row near the median (within :data:`UNITS_ROW_FACTOR`), else a one-line ValueError with the fix."""
    ratio = np.asarray(c, dtype=np.float64) / (6.0 * np.asarray(n, dtype=np.float64) * np.asarray(d, dtype=np.float64))
    median = float(np.median(ratio))
    cols = f"{wanted['n']!r}, {wanted['d']!r} and {wanted['flops']!r}"
    low, high = UNITS_RATIO_RANGE
    if not low <= median <= high:
        hint = (
            "is C in FLOPs, N in parameters (not millions or billions) and D in tokens?"
            if median > high
            else "is C in FLOPs (not PF-days or scaled), N in parameters and D in tokens (not in thousands of them)?"
        )
        raise ValueError(
            f"{label}: columns {cols} disagree: the median C / 6ND is {median:.3g}, outside "
            f"[{low:g}, {high:g}] (exact FLOPs differ from 6ND by well under 3x): {hint} Rescale the "
            f"column in the wrong unit, or drop D or C to derive it from the other"
        )
    off = np.flatnonzero((ratio > median * UNITS_ROW_FACTOR) | (ratio < median / UNITS_ROW_FACTOR))
    if off.size:
        i = int(off[0])
        raise ValueError(
            f"{label} line {lines[i]}: C / 6ND = {ratio[i]:.3g}, more than {UNITS_ROW_FACTOR:g}x from "
            f"the median {median:.3g} of the other rows ({counted(off.size, 'row')} so): is that row's "
            f"{wanted['n']!r}, {wanted['d']!r} or {wanted['flops']!r} in another unit?"
        )


def _cell(row: Sequence[str], i: int, label: str, line_no: int, column: str) -> float:
    """One cell as a positive finite float, or a ValueError naming file, line and column."""
    cell = row[i].strip() if i < len(row) else ""
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{label} line {line_no}, column {column!r}: {cell!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"{label} line {line_no}, column {column!r}: {cell!r} is not a finite number")
    if value <= 0:
        raise ValueError(f"{label} line {line_no}, column {column!r}: {cell!r} is not positive")
    return value


def _numeric_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
    """The file's columns whose every cell is a number (so a filter can name them too)."""
    out = {}
    for i, name in enumerate(header):
        try:
            out[name] = np.array([float(row[i]) for row in rows], dtype=np.float64)
        except (ValueError, IndexError):
            continue
    return out


def validate_columns(columns: Mapping[str, Sequence[float] | np.ndarray]) -> dict[str, np.ndarray]:
    """Each column as a 1-D float64 array, all the same length (at least 1), every value finite and positive;
    otherwise a ValueError naming the column and the first bad row."""
    arrays = {name: _as_float_array(name, values) for name, values in columns.items()}
    _check_lengths(arrays)
    for name, array in arrays.items():
        bad = np.flatnonzero(~(np.isfinite(array) & (array > 0)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{name}[{i}]={float(array[i])!r}: every value must be finite and positive "
                f"({counted(bad.size, 'bad value')} in {name})"
            )
    return arrays


def _as_float_array(name: str, values) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: not numeric ({error})") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}")
    return array


def _check_lengths(arrays: Mapping[str, np.ndarray]) -> None:
    lengths = {name: int(a.size) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} {size}" for name, size in lengths.items())
        raise ValueError(f"columns differ in length: {shown}")
    if any(n == 0 for n in lengths.values()):
        raise ValueError("no runs: the columns are empty")


def _names(header: Sequence[str]) -> str:
    """A header's column names for a message: ``N, D, loss`` (an empty name shown as ``(empty)``)."""
    return ", ".join(name if name.strip() else "(empty)" for name in header) or "none"
