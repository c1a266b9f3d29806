"""Accelerators without an accelerator: the data-sheet peak table against fake device kinds, MFU as a metric that
is missing (never fatal) on unknown chips, the user's peak, and ``compute_dtype="auto"`` chosen from the chip
(fake devices carrying the ``platform``/``device_kind``/``compute_capability`` of real JAX devices)."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings

import jax.numpy as jnp
import pytest

from chinchilla import accelerators, metrics, zoo
from chinchilla.step import choose_compute_dtype
from chinchilla.train import TrainConfig, train_run

TINY = zoo.get_model("tiny-00004k")


@dataclasses.dataclass
class FakeDevice:
    device_kind: str
    platform: str = "gpu"
    compute_capability: str | None = None


# JAX device_kind strings as the CUDA/ROCm/TPU runtimes report them -> dense bf16 peak of one jax device.
BF16_PEAKS = [
    ("NVIDIA H100 80GB HBM3", 989e12),
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA H200", 989e12),
    ("NVIDIA H200 NVL", 835e12),
    ("NVIDIA GH200 480GB", 989e12),
    ("NVIDIA B200", 2.25e15),
    ("NVIDIA GB200", 2.5e15),
    ("NVIDIA A100-SXM4-80GB", 312e12),
    ("NVIDIA A100-SXM4-40GB", 312e12),
    ("NVIDIA A100-PCIE-40GB", 312e12),
    ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA A10", 125e12),
    ("NVIDIA L4", 121e12),
    ("NVIDIA L40S", 362.05e12),
    ("NVIDIA GeForce RTX 4090", 165.2e12),
    ("AMD Instinct MI300X", 1307.4e12),
    ("AMD Instinct MI250X", 383e12 / 2),  # two GCDs, two jax devices per chip
    ("TPU v2", 45e12 / 2),
    ("TPU v3", 123e12 / 2),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v5", 459e12),
    ("TPU v5p", 459e12),
    ("TPU v6 lite", 918e12),
    ("TPU v6e", 918e12),
    # no bf16 on Turing/Volta; no vendor data sheet for the A10G; chips of the future
    ("Tesla T4", None),
    ("Tesla V100-SXM2-16GB", None),
    ("NVIDIA A10G", None),
    ("NVIDIA L40", None),
    ("Some Future Chip", None),
]


@pytest.mark.parametrize("kind, peak", BF16_PEAKS)
def test_bf16_peaks_match_the_data_sheets_dense_figures_with_specific_names_first(kind, peak):
    assert metrics.device_peak_flops(FakeDevice(kind), "bfloat16") == peak


@pytest.mark.parametrize(
    "kind, peak",
    [
        ("Tesla T4", 8.1e12),
        ("Tesla V100-SXM2-16GB", 15.7e12),
        ("Tesla V100-PCIE-32GB", 14e12),
        ("Tesla V100S-PCIE-32GB", 16.4e12),  # CUDA-core FP32: no TF32 before Ampere
        ("NVIDIA A100-SXM4-80GB", 156e12),
        ("NVIDIA H100 PCIe", 378e12),  # TF32, JAX's default f32 matmul on Ampere+
        ("NVIDIA H100 80GB HBM3", 494.5e12),
        ("NVIDIA H100 NVL", 417.5e12),
        ("NVIDIA H200 NVL", 417.5e12),
        ("NVIDIA GH200 480GB", 494.5e12),
        ("NVIDIA B200", 1.1e15),
        ("NVIDIA GB200", 1.25e15),
        ("NVIDIA L4", 60e12),
        ("NVIDIA L40S", 183e12),
        ("NVIDIA A10", 62.5e12),
        ("NVIDIA GeForce RTX 4090", 82.6e12),
        ("AMD Instinct MI300X", 163.4e12),
        ("AMD Instinct MI250X", 95.7e12 / 2),  # FP32 matrix cores
        ("TPU v4", 275e12),
        ("TPU v6 lite", 918e12),
        ("TPU v2", 45e12 / 2),  # default precision: one bf16 pass
    ],
)
def test_float32_peaks_are_those_of_the_arithmetic_jax_runs_for_float32(kind, peak):
    assert metrics.device_peak_flops(FakeDevice(kind), jnp.float32) == peak


def test_every_chip_cites_its_data_sheet_and_is_reachable_by_its_own_name():
    for chip in accelerators.CHIPS:
        assert chip.source and (chip.bfloat16 or chip.float32)
        # no earlier, more general pattern shadows this chip
        assert accelerators.find_chip(f"X {chip.name} Y") is chip, chip


def _printed(source: str, labels: tuple[str, ...]) -> float:
    """The dense FLOP/s a chip's ``source`` string quotes after the first of ``labels`` found: a figure marked ``*``
    is the data sheet's "with sparsity" one, halved; PFLOPS where the source says so, else TFLOPS."""
    for label in labels:
        found = re.search(re.escape(label) + r".*?(?<![\w.,])(\d[\d,.]*\d|\d)(\*?)", source)
        if found:
            value = float(found[1].replace(",", "")) * (1e15 if "PFLOPS" in source else 1e12)
            return value / 2 if found[2] else value
    raise AssertionError(f"no {labels} figure in {source!r}")


@pytest.mark.parametrize("chip", accelerators.CHIPS, ids=lambda chip: chip.name)
def test_each_peak_is_the_figure_its_cited_source_prints(chip):
    """The table and its citations cannot drift apart: every figure equals the one its source string quotes (to the
    sheets' rounding: NVIDIA prints the sparse H100 BF16 figure as 1,979 for 2 x 989.4)."""
    if chip.name.startswith("TPU"):
        assert chip.bfloat16 == chip.float32 == _printed(chip.source, ("(bf16):",))
        return
    if chip.bfloat16 is not None:
        assert chip.bfloat16 == pytest.approx(_printed(chip.source, ("BF16",)), rel=1e-3)
    assert chip.float32 == pytest.approx(_printed(chip.source, ("TF32", "single precision", "FP32 matrix")), rel=1e-3)


def test_an_unknown_accelerator_has_no_peak_and_warns_once_naming_it_and_the_flag():
    devices = [FakeDevice("Zeta Z9 Accelerator")] * 2
    with pytest.warns(metrics.UnknownAcceleratorWarning, match=r"'Zeta Z9 Accelerator'.*--peak-flops"):
        assert metrics.peak_flops(devices) == (None, "unknown")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.peak_flops(devices) == (None, "unknown")  # once per device kind, not per call
    assert metrics.peak_flops(devices, override=5e12) == (1e13, "user")  # per device, times the device count
    assert metrics.mfu(1e12, 1.0, None) is None
    assert metrics.peak_flops([FakeDevice("NVIDIA H100 PCIe")] * 8) == (8 * 756e12, "datasheet")


def test_the_environment_gives_a_peak_to_sweeps_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.setenv("CHINCHILLA_PEAK_FLOPS", "65e12")
    assert metrics.peak_flops([FakeDevice("Tesla T4")]) == (65e12, "user")
    assert metrics.peak_flops([FakeDevice("Tesla T4")], override=1e12) == (1e12, "user")  # the config wins
    for bad in ("fast", "-1", "inf"):
        monkeypatch.setenv("CHINCHILLA_PEAK_FLOPS", bad)
        with pytest.raises(ValueError, match=f"CHINCHILLA_PEAK_FLOPS='{bad}'"):
            metrics.peak_flops([FakeDevice("Tesla T4")])


def _on(monkeypatch, kind):
    """train_run as if its devices were ``kind`` accelerators (the peak lookup sees fake devices)."""
    real = metrics.peak_flops
    monkeypatch.setattr(metrics, "peak_flops", lambda devices=None, **kw: real([FakeDevice(kind)], **kw))


def test_a_run_on_an_unknown_accelerator_trains_with_null_mfu_and_the_user_peak_fills_it(tmp_path, monkeypatch):
    _on(monkeypatch, "Zeta Z7 2031")
    config = TrainConfig(model=TINY, tokens=16 * 8 * 128, steps_per_dispatch=8, log_every=4)
    with pytest.warns(metrics.UnknownAcceleratorWarning, match="Zeta Z7 2031"):
        summary = train_run(config, tmp_path / "unknown", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "unknown" / "metrics.jsonl").read_text().splitlines()]
    assert summary["status"] == "finished" and summary["peak_flops"] is None and summary["peak_source"] == "unknown"
    assert [row["mfu"] for row in rows] == [None] * 4 and all(row["tokens_per_s"] > 0 for row in rows)
    assert summary["compute_dtype"] == "float32" and "CPU" in summary["compute_dtype_reason"]
    given = train_run(dataclasses.replace(config, peak_flops=1e9), tmp_path / "given", progress=False)
    assert given["peak_source"] == "user" and given["peak_flops"] == 1e9
    rows = [json.loads(line) for line in (tmp_path / "given" / "metrics.jsonl").read_text().splitlines()]
    assert all(row["mfu"] > 0 for row in rows)
    # the peak only changes what is reported: the finished run is still the same run
    assert train_run(config, tmp_path / "given", progress=False)["status"] == "finished"


def test_peak_flops_must_be_a_positive_number():
    for bad in (0, -1.0, float("inf"), "fast", True):
        with pytest.raises(ValueError, match="peak_flops="):
            TrainConfig(model=TINY, tokens=1000, peak_flops=bad)


@pytest.mark.parametrize(
    "device, dtype, why",
    [
        (FakeDevice("Tesla T4", compute_capability="7.5"), jnp.float32, "7.5 < 8.0"),
        (FakeDevice("Tesla V100-SXM2-16GB", compute_capability="7.0"), jnp.float32, "7.0 < 8.0"),
        (FakeDevice("NVIDIA A100-SXM4-80GB", compute_capability="8.0"), jnp.bfloat16, "8.0 >= 8.0"),
        (FakeDevice("NVIDIA GeForce RTX 3090", compute_capability="8.6"), jnp.bfloat16, "8.6 >= 8.0"),
        (FakeDevice("NVIDIA H100 80GB HBM3", compute_capability="9.0"), jnp.bfloat16, "9.0"),
        (FakeDevice("NVIDIA B200", compute_capability="10.0"), jnp.bfloat16, "10.0"),
        (FakeDevice("AMD Instinct MI250X", compute_capability="gfx90a"), jnp.bfloat16, "gfx90a"),
        (FakeDevice("AMD Instinct MI300X", compute_capability="gfx942"), jnp.bfloat16, "gfx942"),
        (FakeDevice("AMD Instinct MI100", compute_capability="gfx908"), jnp.float32, "gfx908"),
        (FakeDevice("TPU v5 lite", platform="tpu"), jnp.bfloat16, "TPU"),
        (FakeDevice("Tesla T4"), jnp.float32, "no bf16"),  # no compute_capability: the chip table decides
        (FakeDevice("Mystery GPU"), jnp.float32, "not a chip we know"),
        (FakeDevice("cpu", platform="cpu"), jnp.float32, "CPU"),
    ],
)
def test_auto_compute_dtype_is_bf16_only_where_the_chip_has_it(device, dtype, why):
    chosen, reason = choose_compute_dtype("auto", device)
    assert chosen == jnp.dtype(dtype) and why in reason


def test_an_explicit_compute_dtype_is_used_as_given():
    assert choose_compute_dtype("bfloat16", FakeDevice("Tesla T4", compute_capability="7.5"))[0] == jnp.bfloat16
    assert choose_compute_dtype("float32", FakeDevice("TPU v4", platform="tpu"))[0] == jnp.float32


def test_the_train_command_passes_peak_flops_to_the_run(monkeypatch, tmp_path):
    from chinchilla import cli, train

    seen = {}

    def fake_train_run(config, out, progress=True, **options):
        seen["config"] = config
        return {"status": "finished"}

    monkeypatch.setattr(train, "train_run", fake_train_run)
    assert (
        cli.main(
            [
                "train",
                "--model",
                "tiny-00004k",
                "--tokens",
                "1e4",
                "--out",
                str(tmp_path),
                "--peak-flops",
                "65e12",
                "--quiet",
            ]
        )
        == 0
    )
    assert seen["config"].peak_flops == 65e12
