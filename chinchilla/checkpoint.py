"""Periodic checkpoints of a training run with orbax: the train state (parameters, optimizer state, step) as arrays,
and a small JSON item (the data iterator's state and run bookkeeping) beside it, under ``<run>/checkpoints/<step>``.

Saves are asynchronous; orbax writes each step to a temporary directory and renames it when complete, so a process
killed mid-save leaves the previous checkpoint as the latest one (orbax removes its own temporary directories).

A step directory can still be incomplete: a copy or sync of the run directory that stopped half-way (Drive, gsutil,
rsync after a disconnect) leaves a step whose item metadata or arrays are missing. ``restore_latest`` resumes from
the newest step that restores, moves each newer broken step aside to ``<checkpoints>.incomplete/<step>`` (kept, not
deleted, and out of orbax's way, so that step can be saved again) and warns naming it.
"""

from __future__ import annotations

import ast
import json
import os
import time
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

# Files every complete step has (orbax's item metadata); a step without one of them is skipped without reading it.
REQUIRED_FILES = ("meta/metadata", "state/_METADATA")


class IncompleteCheckpointWarning(UserWarning):
    """A checkpoint step directory that cannot be restored was skipped (and moved aside)."""


class Checkpointer:
    """``save(step, state, meta)``, ``restore_latest(abstract_state) -> (step, state, meta) | None``,
    ``restore(step, abstract_state) -> (state, meta)``."""

    def __init__(self, directory: Any, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep={keep} must be at least 1")
        path = epath.Path(directory)
        if "://" not in str(path):  # orbax refuses relative local paths ("Checkpoint path should be absolute")
            path = epath.Path(os.path.abspath(path))
        self.directory = path
        self._manager = ocp.CheckpointManager(
            path,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Start saving ``state`` (a pytree of arrays) and ``meta`` (JSON-serialisable) as ``step``."""
        self._manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        )

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """The state of ``step`` laid out as ``abstract_state`` (``jax.ShapeDtypeStruct`` leaves with shardings), and
        its JSON item."""
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
        )
        return restored["state"], restored["meta"]

    def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
        """``(step, state, meta)`` of the newest step that restores completely, or None when there is none.

        Newer steps that lack a required file (``REQUIRED_FILES``) or fail to restore (missing or truncated arrays)
        are skipped with an ``IncompleteCheckpointWarning`` naming their directory, and moved aside to
        ``<checkpoints>.incomplete/`` so that training can save those steps again. When no step restores and some
        had all their files (so the failure may be something else, such as a changed model), raises ValueError
        naming the first failure and moves nothing.
        """
        skipped: list[tuple[int, str, bool]] = []  # (step, problem, had all required files)
        for step in sorted(self._manager.all_steps(), reverse=True):
            step_dir = self.directory / str(step)
            missing = [name for name in REQUIRED_FILES if not (step_dir / name).exists()]
            if missing:
                skipped.append((step, f"it lacks {', '.join(missing)}", False))
                continue
            problem = layout_problem(step_dir, abstract_state)
            if problem:  # a complete step of another layout: nothing to skip to, nothing to move aside
                self.close()
                raise ValueError(f"checkpoint {step_dir} cannot resume here: {problem}")
            try:
                state, meta = self.restore(step, abstract_state)
            except Exception as error:  # noqa: BLE001 - an unreadable step is skipped below, with its reason
                skipped.append((step, f"it does not restore ({type(error).__name__}: {str(error)[:300]})", True))
                continue
            self._set_aside(skipped)
            return step, state, meta
        if any(complete for _, _, complete in skipped):
            step, problem, _ = next(item for item in skipped if item[2])
            self.close()  # the run stops here: release orbax's background threads
            raise ValueError(f"no checkpoint in {self.directory} restores: step {step}: {problem}")
        self._set_aside(skipped)
        return None

    def _set_aside(self, skipped: list[tuple[int, str, bool]]) -> None:
        """Warn about each skipped step and move its directory to ``<checkpoints>.incomplete/<step>-<time>``."""
        for step, problem, _ in skipped:
            step_dir = self.directory / str(step)
            aside = self.directory.parent / f"{self.directory.name}.incomplete" / f"{step}-{int(time.time())}"
            warnings.warn(
                f"checkpoint {step_dir} is incomplete ({problem}), e.g. from a copy that stopped "
                f"half-way; resuming from an earlier step; moved it to {aside}",
                IncompleteCheckpointWarning,
                stacklevel=3,
            )
            if jax.process_index() == 0:
                try:
                    aside.parent.mkdir(parents=True, exist_ok=True)
                    step_dir.rename(aside)
                except OSError as error:  # e.g. an object store that cannot rename directories
                    raise ValueError(
                        f"checkpoint {step_dir} is incomplete ({problem}) and could not be moved "
                        f"aside ({error}); move or delete it, then resume"
                    ) from error
        if skipped:
            self._manager.reload()

    def wait(self) -> None:
        """Block until pending saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def _key_name(key: Any) -> str:
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def layout_problem(step_dir: Any, abstract_state: Any) -> str | None:
    """Why the arrays saved in ``step_dir`` cannot be laid out as ``abstract_state`` (other array paths), in one
    line, or None when the paths agree (or the step's metadata cannot be read: the restore then says what is wrong).

    The case this is for: checkpoints written before ``chinchilla.model`` stacked its layers (``params.blocks.0...``,
    one parameter set per layer) do not restore into the stacked layout (``params.blocks.qkv`` with a leading
    layers axis).
    """
    try:
        tree = json.loads((epath.Path(step_dir) / "state" / "_METADATA").read_text())["tree_metadata"]
        saved = {".".join(ast.literal_eval(key)) for key in tree}
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        return None
    wanted = {
        ".".join(_key_name(key) for key in path) for path, _ in jax.tree_util.tree_flatten_with_path(abstract_state)[0]
    }
    if saved == wanted:
        return None
    only_saved, only_wanted = sorted(saved - wanted), sorted(wanted - saved)
    per_layer = any(part.isdigit() for name in only_saved for part in name.split(".")[:4])
    why = (
        "it was written by a chinchilla version that kept one parameter set per layer (params.blocks.0...); "
        "this version stacks the layers (params.blocks.qkv [n_layers, ...]) and cannot read it: train the run "
        "again in a new directory, or finish it with a chinchilla version from before the stacking"
        if per_layer
        else "its arrays are not this model's"
    )
    return (
        f"{why} (the checkpoint has {len(only_saved)} arrays this run lacks, e.g. {only_saved[:2]}, and lacks "
        f"{len(only_wanted)} it needs, e.g. {only_wanted[:2]})"
    )
