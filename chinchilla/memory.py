"""How much device memory a run's train step needs, from XLA's own buffer assignment, without allocating it.

``compiled_peak_bytes`` compiles the real multi-step train program of ``chinchilla.step.Trainer`` for abstract
inputs (nothing is allocated) and reads ``compiled.memory_analysis()``: arguments + outputs - donated (aliased)
buffers + temporaries, per device. Compiling a large model on CPU takes long, so ``estimate_peak_bytes``
compiles the same model with 1 and 2 layers and extrapolates linearly in the layer count: the layers are identical,
each adds the same saved activations, parameters and optimizer state, so the program's peak is a + b * n_layers.
(Checked in ``tests/test_memory.py`` against full compiles: exact to 0.1% on the shapes tried.)

The numbers are for the backend that compiles (on CPU, XLA's CPU buffer assignment with bf16 matmul inputs
converted to float32 in temporaries): an estimate for a GPU or TPU target, not a measurement on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

GiB = 2**30


def compiled_peak_bytes(config: Any, mesh: Any = None) -> int:
    """Peak bytes per device of ``config``'s compiled train step (``TrainConfig``; ``mesh`` as for ``Trainer``)."""
    from chinchilla.step import Trainer

    analysis = Trainer(config, mesh=mesh).compiled_step().memory_analysis()
    return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes - analysis.alias_size_in_bytes
               + analysis.temp_size_in_bytes)


def estimate_peak_bytes(config: Any, mesh: Any = None) -> dict[str, float]:
    """Peak bytes per device of ``config``'s train step, extrapolated from compiles with 1 and 2 layers.

    Returns ``{"peak_bytes", "per_layer_bytes", "one_layer_bytes", "n_layers"}``.
    """
    one, two = (compiled_peak_bytes(dataclasses.replace(config, model=config.model.replace(n_layers=n)), mesh)
                for n in (1, 2))
    layers = config.model.n_layers
    return {"peak_bytes": float(one + (layers - 1) * (two - one)), "per_layer_bytes": float(two - one),
            "one_layer_bytes": float(one), "n_layers": float(layers)}
