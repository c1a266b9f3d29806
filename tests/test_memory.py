"""Memory fits the target: the largest run of each accelerator preset fits its chip's memory, by XLA's compiled
memory analysis of the real train step (compiled on CPU for abstract inputs, nothing allocated), with bf16 compute
as on the target. The full-size compile is too slow for the suite (gpu-0267M at batch 64: 44 s on this loaded CPU),
so the estimate compiles 1- and 2-layer versions and extrapolates linearly in the layer count
(``chinchilla.memory.estimate_peak_bytes``); the first test checks that extrapolation against full compiles."""

from __future__ import annotations

import jax
import pytest

from chinchilla import memory, sharding, zoo
from chinchilla.flops import param_count
from chinchilla.reproduce import load_preset, lr_check_plan
from chinchilla.train import TrainConfig

# preset -> (target chip, memory per device in bytes, usable fraction, devices). GPU: JAX preallocates 75% of the
# card by default (XLA_PYTHON_CLIENT_MEM_FRACTION); TPU: 10% left for XLA's own reservations. One device each: a
# Colab TPU v5e runtime is one chip (v5e-1), and a batch that fits one device fits each of several.
TARGETS = {
    "gpu": ("NVIDIA H100 80GB", 80 * memory.GiB, 0.75, 1),
    "colab_tpu": ("TPU v5e", 16 * memory.GiB, 0.90, 1),
}


def _one_device():
    return sharding.make_mesh(devices=jax.devices()[:1])


@pytest.mark.slow
def test_the_layer_extrapolation_matches_full_compiles():
    base = zoo.get_model("gpu-0014M").replace(seq_len=256)
    for layers in (3,):
        config = TrainConfig(model=base.replace(n_layers=layers), tokens=10**6, batch_size=4,
                             compute_dtype="bfloat16", steps_per_dispatch=4)
        estimate = memory.estimate_peak_bytes(config, _one_device())
        full = memory.compiled_peak_bytes(config, _one_device())
        assert estimate["peak_bytes"] == pytest.approx(full, rel=0.01), layers


@pytest.mark.slow
@pytest.mark.parametrize("preset_name", sorted(TARGETS))
def test_the_largest_run_of_each_accelerator_preset_fits_its_chip(preset_name):
    chip, capacity, usable, devices = TARGETS[preset_name]
    preset = load_preset(preset_name)
    runs = list(preset.plan().runs) + list(lr_check_plan(preset).runs)
    run = max(runs, key=lambda r: (param_count(r.model).total, dict(r.train).get("batch_size", 8)))
    config = TrainConfig(model=run.model, tokens=run.tokens, **{**dict(run.train), "compute_dtype": "bfloat16"})
    assert config.batch_size % devices == 0
    per_device = TrainConfig(**{**config.__dict__, "batch_size": config.batch_size // devices})
    estimate = memory.estimate_peak_bytes(per_device, _one_device())
    gib = estimate["peak_bytes"] / memory.GiB
    assert estimate["peak_bytes"] <= usable * capacity, (
        f"preset {preset_name!r}: {run.model.name} at batch {per_device.batch_size} per device needs ~{gib:.1f} GiB "
        f"per device; {chip} offers {usable:.0%} of {capacity / memory.GiB:.0f} GiB")
