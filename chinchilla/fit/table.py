"""A table of training runs for the fitters: parameters N, tokens D, FLOPs C, final loss L (and, for the
data-constrained law, unique tokens U), from arrays, a CSV file or the shipped reference data.

Give tokens or FLOPs: D = C / (6 N) when only C is known (the replication's processing of the paper's points), and
C = 6 N D when only D is. Every column is validated (finite, positive, same length) with an error that names the
column and the first bad row.

The reference data ``epoch`` is the 245 runs read off the paper's Figure 4 by Besiroglu et al. 2024 (see
``reference/README.md``); :func:`reference_table` returns it with the replication's processing available as
``.drop_highest_loss(5)``.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.resources
import os
from typing import Mapping, Sequence

import numpy as np

REFERENCE_DATA: dict[str, dict[str, str]] = {
    "epoch": {"file": "epoch_chinchilla.csv", "n_col": "Model Size", "flops_col": "Training FLOP",
              "loss_col": "loss"},
}
# The replication drops the 5 highest-loss runs of the reference data before fitting.
REFERENCE_DROP_HIGHEST_LOSS = 5


@dataclasses.dataclass(frozen=True)
class ScalingTable:
    """Runs as float64 arrays of equal length: ``n`` parameters, ``d`` tokens, ``flops``, ``loss``, optional
    ``unique_tokens``. ``source`` says where they came from and what was done to them."""

    n: np.ndarray
    d: np.ndarray
    flops: np.ndarray
    loss: np.ndarray
    unique_tokens: np.ndarray | None = None
    source: str = "arrays"

    def __post_init__(self):
        columns = {"n": self.n, "d": self.d, "flops": self.flops, "loss": self.loss}
        if self.unique_tokens is not None:
            columns["unique_tokens"] = self.unique_tokens
        for name, values in validate_columns(columns).items():
            object.__setattr__(self, name, values)
        if self.unique_tokens is not None:
            bad = np.flatnonzero(self.unique_tokens > self.d * (1 + 1e-12))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"unique_tokens[{i}]={float(self.unique_tokens[i])!r} exceeds "
                                 f"d[{i}]={float(self.d[i])!r}: a run cannot see more unique tokens than tokens")

    @classmethod
    def from_arrays(cls, n, loss, *, d=None, flops=None, unique_tokens=None, source: str = "arrays"
                    ) -> "ScalingTable":
        """From N, loss and either tokens ``d`` or ``flops`` (the other is derived with C = 6 N D)."""
        if (d is None) == (flops is None):
            raise ValueError("give exactly one of d (tokens) or flops; the other follows from C = 6 N D")
        given = {"n": n, "loss": loss, "d" if flops is None else "flops": d if flops is None else flops}
        if unique_tokens is not None:
            given["unique_tokens"] = unique_tokens
        arrays = validate_columns(given)
        if flops is None:
            arrays["flops"] = 6.0 * arrays["n"] * arrays["d"]
        else:
            arrays["d"] = arrays["flops"] / (6.0 * arrays["n"])
            source += " (D = C / 6N)"
        return cls(n=arrays["n"], d=arrays["d"], flops=arrays["flops"], loss=arrays["loss"],
                   unique_tokens=arrays.get("unique_tokens"), source=source)

    def __len__(self) -> int:
        return int(self.n.size)

    def covariates(self) -> dict[str, np.ndarray]:
        """Columns by the names laws use: ``n``, ``d`` and, when present, ``u`` (unique tokens)."""
        out = {"n": self.n, "d": self.d}
        if self.unique_tokens is not None:
            out["u"] = self.unique_tokens
        return out

    def select(self, rows: np.ndarray, note: str) -> "ScalingTable":
        """The runs picked by an index array or boolean mask; ``note`` is appended to ``source``."""
        unique = None if self.unique_tokens is None else self.unique_tokens[rows]
        return ScalingTable(n=self.n[rows], d=self.d[rows], flops=self.flops[rows], loss=self.loss[rows],
                            unique_tokens=unique, source=f"{self.source}; {note}")

    def drop_highest_loss(self, k: int) -> "ScalingTable":
        """Without the ``k`` runs of highest loss (ties broken by row order), the replication's outlier rule."""
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"drop_highest_loss={k!r} must be a non-negative integer")
        if k == 0:
            return self
        if k >= len(self):
            raise ValueError(f"drop_highest_loss={k} would drop all {len(self)} runs")
        keep = np.sort(np.argsort(self.loss, kind="stable")[: len(self) - k])
        return self.select(keep, f"dropped the {k} highest-loss runs")


def read_csv(path: str | os.PathLike, *, n_col: str, loss_col: str, tokens_col: str | None = None,
             flops_col: str | None = None, unique_tokens_col: str | None = None) -> ScalingTable:
    """A :class:`ScalingTable` from a CSV file with a header row; name the columns holding N, the loss and either
    tokens or FLOPs (and unique tokens for the data-constrained law)."""
    with open(path, newline="") as handle:
        text = handle.read()
    return _parse_csv(text, str(path), n_col=n_col, loss_col=loss_col, tokens_col=tokens_col, flops_col=flops_col,
                      unique_tokens_col=unique_tokens_col)


def reference_table(name: str = "epoch") -> ScalingTable:
    """The shipped reference runs, unprocessed (``.drop_highest_loss(5)`` gives the replication's 240)."""
    if name not in REFERENCE_DATA:
        raise ValueError(f"unknown reference data {name!r}; known: {sorted(REFERENCE_DATA)}")
    spec = REFERENCE_DATA[name]
    resource = importlib.resources.files("chinchilla.fit").joinpath("reference", spec["file"])
    text = resource.read_text(encoding="utf-8")
    return _parse_csv(text, f"reference:{name}", n_col=spec["n_col"], loss_col=spec["loss_col"],
                      flops_col=spec["flops_col"])


def _parse_csv(text: str, label: str, *, n_col: str, loss_col: str, tokens_col: str | None = None,
               flops_col: str | None = None, unique_tokens_col: str | None = None) -> ScalingTable:
    if (tokens_col is None) == (flops_col is None):
        raise ValueError("give exactly one of a tokens column or a FLOPs column")
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise ValueError(f"{label} is empty: expected a header row and at least one run")
    header = [cell.strip() for cell in header]
    wanted = {"n": n_col, "loss": loss_col}
    wanted.update({k: v for k, v in (("d", tokens_col), ("flops", flops_col), ("unique_tokens", unique_tokens_col))
                   if v is not None})
    missing = [col for col in wanted.values() if col not in header]
    if missing:
        raise ValueError(f"{label}: column(s) {missing} not found; the columns are {header}")
    index = {key: header.index(col) for key, col in wanted.items()}
    values: dict[str, list[float]] = {key: [] for key in wanted}
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        for key, i in index.items():
            cell = row[i].strip() if i < len(row) else ""
            try:
                values[key].append(float(cell))
            except ValueError:
                raise ValueError(f"{label}, line {line_no}, column {wanted[key]!r}: {cell!r} is not a number"
                                 ) from None
    if not values["n"]:
        raise ValueError(f"{label} has a header but no runs")
    return ScalingTable.from_arrays(values["n"], values["loss"], d=values.get("d"), flops=values.get("flops"),
                                    unique_tokens=values.get("unique_tokens"), source=label)


def validate_columns(columns: Mapping[str, Sequence[float] | np.ndarray]) -> dict[str, np.ndarray]:
    """Each column as a 1-D float64 array, all the same length (at least 1), every value finite and positive;
    otherwise a ValueError naming the column and the first bad row."""
    arrays = {name: _as_float_array(name, values) for name, values in columns.items()}
    _check_lengths(arrays)
    for name, array in arrays.items():
        bad = np.flatnonzero(~(np.isfinite(array) & (array > 0)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name}[{i}]={float(array[i])!r}: every value must be finite and positive "
                             f"({bad.size} bad value(s) in {name})")
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
        raise ValueError(f"columns differ in length: {lengths}")
    if any(n == 0 for n in lengths.values()):
        raise ValueError(f"no runs: the columns are empty ({lengths})")
