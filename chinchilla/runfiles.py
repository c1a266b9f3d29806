"""The files of runs and sweeps: their names, and the one way each kind is written and read.

A file that must never be seen half-written is written to a temporary beside it and renamed over it
(``write_text_atomic``; JSON through ``write_json_atomic``, CSV through ``write_csv_atomic``). A run's metrics file
is JSON lines, appended as training goes and parsed by ``parse_jsonl`` alone: a line torn by a kill or damaged costs
only itself. Paths go through ``etils.epath``, so a directory may be local or ``gs://...`` (an object appears whole
when its upload finishes: the same guarantee).

A sweep directory::

    plan.json                  the plan (all workers write the same content)
    results.csv                one row per run, rebuilt from the run directories after every run
    runs/<run_id>/run.json     the planned run (written before training starts)
    runs/<run_id>/config.json  the run's TrainConfig        (a run directory of ``chinchilla train`` starts here)
    runs/<run_id>/metrics.jsonl one row per logged step
    runs/<run_id>/summary.json the finished run
    runs/<run_id>/failure.json the exception, if the trainer raised
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from etils import epath

from chinchilla.runlock import process_alive

PLAN_FILE = "plan.json"
RESULTS_FILE = "results.csv"
RUNS_DIR = "runs"
RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
FAILURE_FILE = "failure.json"

# ".<name>.<host>-<pid>-<8 hex>.tmp": who wrote a temporary, so that a later process on the same host can tell a
# dead writer's leftover (SIGKILL between write and rename) from a live writer's file. The host is written without
# dots or dashes, so the last dot before it and the dash after it parse unambiguously.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}\.tmp")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def _replace(path: epath.Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path`` (atomic on POSIX file
    systems). If the write or the rename fails (e.g. ENOSPC), the temporary is removed and the error re-raised:
    the previous ``path`` is left as it was. A process killed between the two leaves the temporary behind:
    ``remove_dead_temporaries`` clears such leftovers."""
    temporary = path.parent / f".{path.name}.{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        temporary.write_text(text)
        temporary.replace(path)
    except BaseException:
        try:
            temporary.unlink()
        except OSError:
            pass  # never created, or already gone: nothing left behind
        raise


def remove_dead_temporaries(directory: epath.Path) -> list[str]:
    """Delete the temporaries of ``write_text_atomic`` in ``directory`` that were written on this host by a process that
    no longer runs (killed between write and rename); a live writer's, or another host's (a shared sweep directory),
    are left alone. Returns the names removed. A directory that does not exist has none."""
    removed = []
    if not directory.is_dir():
        return removed
    host = _host()
    for entry in directory.iterdir():
        match = _TEMPORARY.fullmatch(entry.name)
        if not match or match["host"] != host:
            continue  # not a temporary of this host's writers
        if process_alive(int(match["pid"])) is False and not entry.is_dir():  # None: not a pid at all, left alone
            try:
                entry.unlink()
            except OSError:  # removed meanwhile by another process
                continue
            removed.append(entry.name)
    return removed


def as_path(path: str | os.PathLike | epath.Path) -> epath.Path:
    return epath.Path(path)


def write_text_atomic(path: Any, text: str) -> None:
    """Write ``text`` to ``path`` crash-safely, creating its directory: a crash leaves the old file or the new one.
    A failed write (e.g. ENOSPC) re-raises and leaves the old file as it was."""
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, text)


def write_json_atomic(path: Any, payload: Any) -> None:
    """``payload`` as JSON (indented, keys in their order; numpy and jax values as numbers or lists), crash-safely."""
    write_text_atomic(path, json.dumps(payload, indent=1, default=_json_default) + "\n")


def read_json(path: Any) -> Any:
    """The parsed file. FileNotFoundError when missing, ValueError (json.JSONDecodeError) when damaged."""
    return json.loads(as_path(path).read_text())


def read_json_or_none(path: Any) -> Any | None:
    """The parsed file, or None if it is missing or unreadable (a file another writer left damaged)."""
    try:
        return read_json(path)
    except (FileNotFoundError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def write_csv_atomic(path: Any, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """``rows`` under a header of ``columns`` (None as an empty cell, a list as ``a;b``), crash-safely."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c)) for c in columns})
    write_text_atomic(path, buffer.getvalue())


def read_csv(path: Any) -> list[dict[str, str]]:
    with as_path(path).open("r") as handle:
        return list(csv.DictReader(handle))


# -- metrics files: JSON lines, one object with an integer ``step`` per line ------------------------------------------


def read_jsonl(path: Any) -> list[dict]:
    """The rows of a metrics file (JSON objects with an integer ``step``), [] if it does not exist. Any other line
    (blank, torn by a crash mid-write, damaged, another JSON value) is skipped; the lines after it are still read."""
    return [row for _, row, problem in parse_jsonl(path) if problem is None]


def parse_jsonl(path: Any) -> list[tuple[int, Any, str | None]]:
    """(line number from 1, parsed row or raw text, None or what is wrong) for every line of a metrics file."""
    path = as_path(path)
    if not path.exists():
        return []
    parsed: list[tuple[int, Any, str | None]] = []
    for number, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            parsed.append((number, line, "blank line"))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            parsed.append((number, line, f"not JSON ({error.msg} at column {error.colno})"))
            continue
        if not isinstance(row, dict):
            parsed.append((number, line, f"a JSON {type(row).__name__}, not an object"))
        elif isinstance(row.get("step"), bool) or not isinstance(row.get("step"), int):
            parsed.append((number, line, f"step={row.get('step')!r} is not an integer"))
        else:
            parsed.append((number, row, None))
    return parsed


def truncate_jsonl_after(path: Any, step: int, quarantine: Any) -> str | None:
    """Before a resume from the checkpoint of ``step``: rewrite the metrics file ``path`` (atomically) without the
    rows of later steps (they are logged again), keep every other row, and append each non-blank line that cannot be
    parsed as a row to ``quarantine`` as ``{"line": n, "text": ..., "problem": ...}`` instead of losing it or the
    lines around it. Returns one line saying what was done, or None when nothing but later rows was dropped."""
    parsed = parse_jsonl(path)
    if not parsed:
        return None
    kept = [row for _, row, problem in parsed if problem is None and row["step"] <= step]
    later = sum(problem is None and row["step"] > step for _, row, problem in parsed)
    damaged = [
        {"line": number, "text": text, "problem": problem}
        for number, text, problem in parsed
        if problem is not None and problem != "blank line"
    ]
    blank = sum(problem == "blank line" for _, _, problem in parsed)
    if damaged:
        with as_path(quarantine).open("a") as handle:
            handle.write("".join(json.dumps(entry) + "\n" for entry in damaged))
    rewrite_jsonl(path, kept)
    if not damaged and not blank:
        return None
    lines = ", ".join(str(entry["line"]) for entry in damaged[:5]) + (", ..." if len(damaged) > 5 else "")
    moved = f"moved {len(damaged)} unreadable line(s) ({lines}) to {as_path(quarantine).name}; " if damaged else ""
    return (
        f"{as_path(path).name}: kept {len(kept)} rows up to step {step}, {moved}dropped {blank} blank "
        f"line(s) and {later} row(s) after step {step} (logged again from the checkpoint)"
    )


def rewrite_jsonl(path: Any, rows: list[dict]) -> None:
    """Replace a JSON-lines file by ``rows``, atomically."""
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def append_jsonl(path: Any, rows: list[dict]) -> None:
    """Append rows to a JSON-lines file (local file systems; object stores cannot append)."""
    if rows:
        with as_path(path).open("a") as handle:
            handle.write("".join(json.dumps(row) + "\n" for row in rows))


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy / jax scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def run_dirs(sweep_dir: Any) -> list[epath.Path]:
    """The run directories of a sweep directory (``runs/*``), by name; [] when there are none."""
    runs = as_path(sweep_dir) / RUNS_DIR
    if not runs.exists():
        return []
    return sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)
