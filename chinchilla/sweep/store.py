"""Files of a sweep directory, written so a crash never leaves a torn one (DESIGN: write a temporary, rename).

Paths go through ``etils.epath``, so a sweep directory may be local or ``gs://...`` (where an object appears whole
when its upload finishes, which is the same guarantee).

Layout of a sweep directory::

    plan.json                  the plan (all workers write the same content)
    results.csv                one row per run, rebuilt from the run directories after every run
    runs/<run_id>/run.json     the planned run (written before training starts)
    runs/<run_id>/...          what the trainer writes: config.json, metrics.jsonl, summary.json, checkpoints
    runs/<run_id>/failure.json the exception, if the trainer raised
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from etils import epath

from chinchilla import atomic

PLAN_FILE = "plan.json"
RESULTS_FILE = "results.csv"
RUNS_DIR = "runs"
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
FAILURE_FILE = "failure.json"


def as_path(path: str | os.PathLike | epath.Path) -> epath.Path:
    return epath.Path(path)


def write_text_atomic(path: epath.Path, text: str) -> None:
    """Write ``text`` to ``path`` crash-safely (``chinchilla.atomic.write_text``), creating its directory."""
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, text)


def write_json_atomic(path: epath.Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True, default=_json_default) + "\n")


def read_json(path: epath.Path) -> Any | None:
    """The parsed file, or None if it is missing (or unreadable: a half-written file of an older writer)."""
    path = as_path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_jsonl(path: epath.Path) -> list[dict[str, Any]]:
    """Every parseable line of a JSON-lines file (a last line torn by a kill is skipped)."""
    path = as_path(path)
    if not path.exists():
        return []
    records = []
    for raw in path.read_bytes().splitlines():
        line = raw.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):  # a torn or garbled line costs only itself
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def write_csv_atomic(path: epath.Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c)) for c in columns})
    write_text_atomic(path, buffer.getvalue())


def read_csv(path: epath.Path) -> list[dict[str, str]]:
    with as_path(path).open("r") as handle:
        return list(csv.DictReader(handle))


def run_dirs(sweep_dir: epath.Path) -> Iterable[epath.Path]:
    runs = as_path(sweep_dir) / RUNS_DIR
    if not runs.exists():
        return []
    return sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
