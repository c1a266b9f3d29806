"""A sweep directory is one experiment: its ``plan.json`` carries the plan's fingerprint, and a different plan is
refused in one line naming what changed.

- The **fingerprint** hashes every setting that changes a run: each planned run's id, group, budget, model shape,
  tokens, FLOPs, flags and ``train`` keyword arguments (learning rate, batch size, seed, data set, ...), as
  ``PlannedRun.to_dict`` writes them, in run-id order. The plan's name and its left-out list are not part of it.
- A sweep command with the directory's plan (the same fingerprint) resumes it. A different plan is refused
  (``PlanChangedError``, one line: which settings changed in how many runs, which runs were added or dropped), so
  that a preset edited between two invocations (its lr, its budgets) never mixes two experiments in one fit.
- ``extend=True`` (``--extend``) adds the new plan's runs that the directory's plan lacks and keeps every old run:
  the directory's plan becomes the union, and ``plan.json`` lists the plans it was built from (``parts``), so that
  a rerun of any of them resumes, and the report says the sweep was extended. A run already planned can never
  change its settings, extended or not: that needs a new directory.

``plan.json`` is read and written by one worker at a time (a lock on ``plan.lock`` on local and NFS directories).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from chinchilla import runfiles
from chinchilla.sweep.plan import Plan, PlannedRun

PLAN_LOCK = "plan.lock"
EXTEND_FLAG = "--extend"


class PlanChangedError(ValueError):
    """The plan given differs from the one a sweep directory holds (the message says what changed)."""


def run_settings(run: PlannedRun | Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings as JSON values (a run read back from ``plan.json`` and the same run planned now compare
    equal; fields an older ``plan.json`` lacks take their defaults)."""
    if not isinstance(run, PlannedRun):
        run = PlannedRun.from_dict(run)
    return json.loads(json.dumps(run.to_dict(), sort_keys=True, default=runfiles._json_default))


def fingerprint(plan: Plan) -> str:
    """A short hash of every run's settings (see the module docstring): equal for plans that train the same runs."""
    runs = sorted((run_settings(r) for r in plan.runs), key=lambda r: r["run_id"])
    return hashlib.sha256(json.dumps(runs, sort_keys=True).encode()).hexdigest()[:16]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


_UNSET = object()  # a setting one of the two runs does not have


def _short(value: Any) -> str:
    return "(unset)" if value is _UNSET else value if isinstance(value, str) else json.dumps(value)


def _ids(ids: list[str], limit: int = 3) -> str:
    return ", ".join(ids[:limit]) + (f", ... {len(ids) - limit} more" if len(ids) > limit else "")


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, old value, new value) for each setting two runs' settings differ in (FLOPs only when nothing else
    does: they follow from the shape and tokens)."""
    before, after = _flatten(old), _flatten(new)
    keys = [k for k in sorted(before.keys() | after.keys()) if before.get(k, _UNSET) != after.get(k, _UNSET)]
    if len(keys) > 1 and "flops" in keys:
        keys.remove("flops")
    return [(key, before.get(key, _UNSET), after.get(key, _UNSET)) for key in keys]


def run_changes(recorded_run: PlannedRun, planned_run: PlannedRun) -> str | None:
    """How a run directory's ``run.json`` differs from the plan's run of the same id (None when it does not)."""
    differences = _differences(run_settings(planned_run), run_settings(recorded_run))
    return ", ".join(f"{key} {_short(b)} (plan: {_short(a)})" for key, a, b in differences[:3]) or None


def describe_changes(old: Plan, new: Plan) -> tuple[str, bool]:
    """What differs from ``old`` to ``new`` in one line, and whether a run planned in both changed its settings
    (which no extension can allow)."""
    old_runs = {r.run_id: run_settings(r) for r in old.runs}
    new_runs = {r.run_id: run_settings(r) for r in new.runs}
    changed: dict[str, list] = {}  # setting -> [old value, new value, runs]
    for run_id in sorted(old_runs.keys() & new_runs.keys()):
        for key, before, after in _differences(old_runs[run_id], new_runs[run_id]):
            changed.setdefault(key, [before, after, 0])[2] += 1
    parts = [
        f"{key} {_short(a)} -> {_short(b)} in {n} run{'s' if n != 1 else ''}" for key, (a, b, n) in changed.items()
    ]
    added = sorted(new_runs.keys() - old_runs.keys())
    dropped = sorted(old_runs.keys() - new_runs.keys())
    if added:
        parts.append(f"{len(added)} new run{'s' if len(added) != 1 else ''} ({_ids(added)})")
    if dropped:
        parts.append(f"{len(dropped)} run{'s' if len(dropped) != 1 else ''} no longer planned ({_ids(dropped)})")
    if len(parts) > 4:
        parts = parts[:4] + [f"{len(parts) - 4} more changes"]
    return "; ".join(parts) or "the same runs", bool(changed)


def recorded(sweep_dir) -> tuple[Plan | None, list[dict[str, Any]]]:
    """The plan ``sweep_dir/plan.json`` holds (None when there is none) and the plans it was built from
    (``parts``: name, fingerprint, runs, added; one part unless it was extended). ValueError when it is damaged."""
    path = runfiles.as_path(sweep_dir) / runfiles.PLAN_FILE
    if not path.exists():
        return None, []
    try:
        data = json.loads(path.read_text())
        plan = Plan.from_dict(data)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not a plan ({type(error).__name__}: {error}); move the directory aside or restore the file"
        ) from None
    parts = data.get("parts") if isinstance(data.get("parts"), list) else None
    if not parts:  # written before fingerprints: the plan itself is its only part
        parts = [{"name": plan.name, "fingerprint": fingerprint(plan), "runs": len(plan.runs), "added": len(plan.runs)}]
    return plan, parts


def _write(sweep_dir, plan: Plan, parts: list[dict[str, Any]]) -> None:
    payload = {**plan.to_dict(), "fingerprint": fingerprint(plan), "parts": parts}
    runfiles.write_text_atomic(
        runfiles.as_path(sweep_dir) / runfiles.PLAN_FILE,
        json.dumps(payload, indent=1, sort_keys=True, default=runfiles._json_default) + "\n",
    )


@contextlib.contextmanager
def _plan_lock(sweep_dir) -> Iterator[None]:
    """One reader-writer of ``plan.json`` at a time on local and NFS directories (none on object stores)."""
    path = runfiles.as_path(sweep_dir)
    if "://" in str(path):
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    with open(os.fspath(path / PLAN_LOCK), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a file system without locks
            pass
        yield


def adopt_plan(plan: Plan, sweep_dir, *, extend: bool = False) -> Plan:
    """The plan to train in ``sweep_dir``: ``plan`` itself for a new directory or a resume (a plan whose fingerprint
    is the directory's, or one of the plans an extension was built from), the union under ``extend``; writes
    ``plan.json``. Raises ``PlanChangedError`` (one line) for a different plan without ``extend``, and for a plan that
    changes a run already planned (even with it)."""
    with _plan_lock(sweep_dir):
        old, parts = recorded(sweep_dir)
        mine = fingerprint(plan)
        if old is None:
            _write(
                sweep_dir,
                plan,
                [{"name": plan.name, "fingerprint": mine, "runs": len(plan.runs), "added": len(plan.runs)}],
            )
            return plan
        where = runfiles.as_path(sweep_dir) / runfiles.PLAN_FILE
        if mine == fingerprint(old) or any(part.get("fingerprint") == mine for part in parts):
            if "fingerprint" not in (
                runfiles.read_json_or_none(where) or {}
            ):  # an older plan.json: record its fingerprint
                _write(sweep_dir, old, parts)
            return old
        what, runs_changed = describe_changes(old, plan)
        if runs_changed:
            raise PlanChangedError(
                f"{where} holds another plan ({old.name!r}, {len(old.runs)} runs): {what}; a run's settings "
                f"cannot change within one sweep directory: give a new --out (or rerun the original settings to "
                f"resume)"
            )
        if not extend:
            raise PlanChangedError(
                f"{where} holds another plan ({old.name!r}, {len(old.runs)} runs): {what}; rerun the original "
                f"settings to resume, give a new --out, or pass {EXTEND_FLAG} to add the new runs and keep the old "
                f"ones"
            )
        union = old + plan
        union = Plan(name=old.name, runs=union.runs, skipped=union.skipped)
        parts = parts + [
            {"name": plan.name, "fingerprint": mine, "runs": len(plan.runs), "added": len(union.runs) - len(old.runs)}
        ]
        _write(sweep_dir, union, parts)
        return union
