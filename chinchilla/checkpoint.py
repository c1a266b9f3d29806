"""Periodic checkpoints of a training run with orbax: the train state (parameters, optimizer state, step) as arrays,
and a small JSON item (the data iterator's state and run bookkeeping) beside it, under ``<run>/checkpoints/<step>``.

Saves are asynchronous; orbax writes each step to a temporary directory and renames it when complete, so a process
killed mid-save leaves the previous checkpoint as the latest one.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp
from etils import epath


class Checkpointer:
    """``save(step, state, meta)``, ``latest_step()``, ``restore(step, abstract_state) -> (state, meta)``."""

    def __init__(self, directory: Any, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep={keep} must be at least 1")
        path = epath.Path(directory)
        if "://" not in str(path):  # orbax refuses relative local paths ("Checkpoint path should be absolute")
            path = epath.Path(os.path.abspath(path))
        self._manager = ocp.CheckpointManager(
            path,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Start saving ``state`` (a pytree of arrays) and ``meta`` (JSON-serialisable) as ``step``."""
        self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                         meta=ocp.args.JsonSave(meta)))

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """The state of ``step`` laid out as ``abstract_state`` (``jax.ShapeDtypeStruct`` leaves with shardings), and
        its JSON item."""
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def wait(self) -> None:
        """Block until pending saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
