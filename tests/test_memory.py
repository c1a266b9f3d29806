"""Memory fits the target, by XLA's compiled memory analysis of the real train step (compiled on CPU for abstract
inputs, nothing allocated), bf16 compute as on the accelerator, flash-type attention compiled as its CPU stand-in
("blocked"). With the layers scanned, a full-size compile costs what a 2-layer one does, so the planner compiles the
plans it reports at full size; its one shortcut (n >= 2 micro-steps compiled as 2) and the layer extrapolation kept
for unrolled programs are checked against full compiles here. Compiles are cached within the process
(``chinchilla.memory``): tests that share a program share its compile."""

from __future__ import annotations

import importlib.util

import pytest

from chinchilla import accelerators, memory, zoo
from chinchilla.preset import PRESET_DIR, load_preset, lr_check_plan
from chinchilla.train import TrainConfig

H100 = accelerators.chip_named("h100")
V5E = accelerators.chip_named("v5e")
TARGETS = {"gpu": H100, "colab_tpu": V5E}


def _config(name: str, batch: int, micro: int | None, remat: str, attention: str = "blocked") -> TrainConfig:
    return TrainConfig(
        model=zoo.get_model(name),
        tokens=10**12,
        batch_size=batch,
        micro_batch_size=micro,
        remat=remat,
        attention_impl=attention,
        compute_dtype="bfloat16",
        mesh=(1, 1, 1),
        scan_layers=True,
    )  # as accelerators run it (auto unrolls on CPU without remat)


def _full(config: TrainConfig) -> int:
    return memory.compiled_peak_bytes(config, memory._one_device_mesh())


def test_chips_know_their_memory():
    assert H100.memory_bytes_per_device == 80 * memory.GiB and H100.platform == "gpu"
    assert V5E.memory_bytes_per_device == 16 * memory.GiB and V5E.platform == "tpu"
    assert accelerators.chip_named("v3").memory_bytes_per_device == 16 * memory.GiB  # 32 GiB, two TensorCores
    assert accelerators.chip_named("a100-40").memory_bytes_per_device == 40 * memory.GiB
    with pytest.raises(ValueError, match="--chip h900: .*known: .*h100.*v5e"):
        accelerators.chip_named("h900")


def test_the_micro_step_shortcut_matches_the_full_compile():
    """Shape 1: gpu-0267M, 64 sequences in 4 micro-steps of 16, no remat; the planner compiles 2 micro-steps and adds
    the other micro-batches' input tokens (measured: 44.290 vs 44.290 GiB, 3e-6 apart)."""
    estimate = memory.step_bytes(zoo.get_model("gpu-0267M"), 64, 16, "none", "blocked")
    full = _full(_config("gpu-0267M", 64, 16, "none"))
    assert estimate == pytest.approx(full, rel=0.05)
    assert estimate == pytest.approx(full, rel=1e-3)


def test_the_layer_extrapolation_matches_full_compiles():
    """Shape 2: gpu-1117M (26 layers), 64 sequences, full remat, extrapolated from 2 and 3 layers (a 1-and-2-layer
    fit is 2.2% high: a one-trip scan is simplified away)."""
    config = _config("gpu-1117M", 64, None, "full")
    estimate = memory.estimate_peak_bytes(config, memory._one_device_mesh())
    full = _full(config)
    assert estimate["base_layers"] == 2 and estimate["n_layers"] == 26
    assert estimate["peak_bytes"] == pytest.approx(full, rel=0.05)


def test_plain_attention_at_64_sequences_without_remat_needs_about_300_gib():
    """Why the gpu preset needs a plan: gpu-0267M, 64 sequences, one pass, no remat, the T x T scores of XLA
    attention."""
    plan = memory.plan(
        zoo.get_model("gpu-0267M"),
        64,
        chip_bytes=H100.memory_bytes_per_device,
        platform="gpu",
        micro_batch_size=64,
        remat="none",
        attention="xla",
    )
    assert plan.attention == plan.compiled_attention == "xla"
    assert 250 * memory.GiB < plan.bytes_per_device < 350 * memory.GiB and not plan.fits


def test_the_planner_fits_the_largest_gpu_model_at_64_sequences_on_an_h100():
    model = zoo.get_model("gpu-1117M")
    plan = memory.plan(model, 64, chip_bytes=H100.memory_bytes_per_device, platform="gpu", chip=H100.name)
    assert plan.fits and plan.headroom >= 0.15
    assert plan.micro_steps > 1 or plan.remat != "none"  # the whole batch without remat does not fit
    assert plan.attention == "cudnn" and plan.compiled_attention == "blocked"
    whole = memory.step_bytes(model, 64, 64, "none", "blocked")
    assert whole > 0.85 * H100.memory_bytes_per_device
    gpu = _preset_module("gpu")
    assert gpu.PLANS[model.name] == (plan.micro_batch_size, plan.remat)  # the preset's table has it


def _preset_module(name: str):
    spec = importlib.util.spec_from_file_location(f"preset_module_{name}", PRESET_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_presets_plan_every_run_and_the_gpu_preset_the_whole_ladder():
    for name in ("gpu", "colab_tpu"):
        module = _preset_module(name)
        preset = load_preset(name)
        for run in list(preset.plan().runs) + list(lr_check_plan(preset).runs):
            train = dict(run.train)
            assert run.model.name in module.PLANS, (name, run.model.name)
            micro, remat = module.PLANS[run.model.name]
            assert (train["micro_batch_size"], train["remat"]) == (min(micro, train["batch_size"]), remat)
            assert train["attention_impl"] == "auto" and train["batch_size"] >= 64
    assert {m.name for m in zoo.ladder("gpu")} <= set(_preset_module("gpu").PLANS)


@pytest.mark.slow
@pytest.mark.parametrize("preset_name", sorted(TARGETS))
def test_every_run_of_each_accelerator_preset_fits_its_chip(preset_name):
    """The preset's own micro_batch_size and remat per run, at its batch, with >= 15% of the chip left."""
    chip = TARGETS[preset_name]
    preset = load_preset(preset_name)
    runs = list(preset.plan().runs) + list(lr_check_plan(preset).runs)
    plans = memory.plans_for_runs(runs, chip_bytes=chip.memory_bytes_per_device, platform=chip.platform, chip=chip.name)
    assert {(p.model, p.batch_size) for p in plans} == {(r.model.name, dict(r.train)["batch_size"]) for r in runs}
    for plan in plans:
        assert plan.fits and plan.headroom >= 0.15, (
            f"preset {preset_name!r}: {plan.model} at batch {plan.batch_size} (micro {plan.micro_batch_size}, remat "
            f"{plan.remat}) needs ~{plan.bytes_per_device / memory.GiB:.1f} GiB of {chip.name}'s "
            f"{chip.memory_bytes_per_device / memory.GiB:.0f}"
        )


def test_the_planners_compile_reads_the_same_bytes_as_the_optimised_program():
    """The planner compiles without LLVM's optimisations on CPU (its program is never run): XLA's buffer assignment,
    and so every byte it reads, is that of the program training compiles."""
    from chinchilla.step import Trainer

    config = _config("tiny-00004k", 8, None, "none")
    mesh = memory._one_device_mesh()
    analysis = Trainer(config, mesh=mesh).compiled_step().memory_analysis()
    trained = (
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        - analysis.alias_size_in_bytes
        + analysis.temp_size_in_bytes
    )
    assert memory.compiled_peak_bytes(config, mesh) == trained > 0
