"""What the project knows about accelerator chips: dense peak FLOP/s from the vendors' data sheets and whether a chip
computes in bfloat16, looked up from a JAX device (``device.device_kind``, ``device.compute_capability``).

Peaks are *dense* (not the "with sparsity" figures data sheets print first), per chip, for the two ways the train
step multiplies matrices:

- ``bfloat16``: bf16 inputs, float32 accumulation (tensor cores / MXU / matrix cores);
- ``float32``: float32 arrays at JAX's default matmul precision, which is what the chip actually runs then:
  TF32 tensor cores on NVIDIA Ampere and newer (XLA's default for f32 dots there), plain FP32 on Volta and Turing
  (no TF32), one bfloat16 pass on TPUs (``jax.lax.Precision.DEFAULT``), FP32 matrix cores on AMD Instinct.

So MFU is always measured against the peak of the arithmetic the step really uses: ``compute_dtype="auto"`` picks
float32 on chips without bf16 (T4, V100), and their MFU is against the FP32 figure, not the FP16 tensor-core one.
A figure a data sheet does not give is None (the run then reports MFU as missing, never a guess).

Chips without an NVIDIA data sheet of their own are left out on purpose: the AWS A10G (a GA102 variant whose tensor
throughput NVIDIA does not publish) is unknown here, so its runs report ``mfu = null`` unless the user gives
``--peak-flops``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

_NV = "NVIDIA {} data sheet"
_NV_SPARSE = "NVIDIA {} data sheet ({}; * = with sparsity, the dense figure is half)"
_TPU = "Google Cloud TPU docs, 'TPU {}' system architecture page (peak compute per chip (bf16): {} TFLOPs)"


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator: ``pattern`` (a case-insensitive regex searched in ``device_kind``), dense peak FLOP/s per
    chip for ``bfloat16`` and ``float32`` compute (None where the chip lacks it or the data sheet does not say),
    ``devices_per_chip`` (JAX devices one chip shows up as: 2 on TPU v2/v3 and AMD MI250X), ``source``,
    ``memory_gib``: the chip's HBM as the data sheet gives it (NVIDIA's and AMD's "80GB" is 80 GiB of HBM: an H100
    80GB shows 81,559 MiB in nvidia-smi; TPU figures are per chip from the same Cloud TPU pages; the larger variant
    where a sheet has two, e.g. A100 80GB; None where unknown), split evenly over ``devices_per_chip``."""

    name: str
    pattern: str
    bfloat16: float | None
    float32: float | None
    devices_per_chip: int = 1
    source: str = ""
    memory_gib: float | None = None

    @property
    def platform(self) -> str:
        """ "tpu" or "gpu" (what ``chinchilla.attention.resolve_impl`` calls the backend)."""
        return "tpu" if self.name.startswith("TPU") else "gpu"

    @property
    def memory_bytes_per_device(self) -> int | None:
        """Device memory (HBM) of one JAX device of this chip in bytes, None where unknown."""
        return None if self.memory_gib is None else int(self.memory_gib * 2**30) // self.devices_per_chip

    def peak(self, dtype: str) -> float | None:
        """Dense FLOP/s of one JAX device of this chip for ``dtype`` compute ('bfloat16' or 'float32')."""
        per_chip = {"bfloat16": self.bfloat16, "float32": self.float32}.get(str(dtype))
        return None if per_chip is None else per_chip / self.devices_per_chip


# More specific patterns come first: the first chip whose pattern matches wins (GH200 before H200, H100 PCIe/NVL
# before H100, L40S before L4, TPU v5 lite before TPU v5; "GB200" does not match B200's pattern). Numbers are the
# data sheets' dense figures; where a sheet prints "X | 2X*" or "2X*" with "* with sparsity", the dense figure is X.
CHIPS: tuple[Chip, ...] = (
    # NVIDIA Blackwell / Hopper
    Chip(
        "GB200",
        r"\bGB200\b",
        2.5e15,
        1.25e15,
        source=_NV_SPARSE.format(
            "GB200 NVL72 / HGX B200",
            "individual GPU, GB200 column: FP16/BF16 Tensor Core 5* PFLOPS, TF32 Tensor Core 2.5* PFLOPS",
        ),
        memory_gib=186,
    ),
    Chip(
        "B200",
        r"\bB200\b",
        2.25e15,
        1.1e15,
        source=_NV_SPARSE.format(
            "GB200 NVL72 / HGX B200",
            "individual GPU, HGX B200 column: FP16/BF16 Tensor Core 4.5* PFLOPS, TF32 Tensor Core 2.2* PFLOPS",
        ),
        memory_gib=180,
    ),
    Chip(
        "GH200",
        r"\bGH200\b",
        989e12,
        494.5e12,
        source=_NV_SPARSE.format("GH200 Grace Hopper Superchip", "BF16 1,979*, TF32 989* TFLOPS"),
        memory_gib=96,
    ),
    Chip(
        "H200 NVL",
        r"\bH200\b.*\bNVL\b",
        835e12,
        417.5e12,
        source=_NV_SPARSE.format("H200 Tensor Core GPU", "H200 NVL: BF16 1,671*, TF32 835* TFLOPS"),
        memory_gib=141,
    ),
    Chip(
        "H200 SXM",
        r"\bH200\b",
        989e12,
        494.5e12,
        source=_NV_SPARSE.format("H200 Tensor Core GPU", "H200 SXM: BF16 1,979*, TF32 989* TFLOPS"),
        memory_gib=141,
    ),
    Chip(
        "H100 NVL",
        r"\bH100\b.*\bNVL\b",
        835e12,
        417.5e12,
        source=_NV_SPARSE.format("H100 Tensor Core GPU", "H100 NVL: BF16 1,671*, TF32 835* TFLOPS"),
        memory_gib=94,
    ),
    Chip(
        "H100 PCIe",
        r"\bH100\b.*\bPCIe\b",
        756e12,
        378e12,
        source=_NV_SPARSE.format("H100 Tensor Core GPU", "H100 PCIe: BF16 1,513*, TF32 756* TFLOPS"),
        memory_gib=80,
    ),
    Chip(
        "H100 SXM",
        r"\bH100\b",
        989e12,
        494.5e12,
        source=_NV_SPARSE.format("H100 Tensor Core GPU", "H100 SXM: BF16 1,979*, TF32 989* TFLOPS"),
        memory_gib=80,
    ),
    # NVIDIA Ada / Ampere
    Chip(
        "L40S",
        r"\bL40S\b",
        362.05e12,
        183e12,
        source=_NV.format("L40S") + " (BF16 362.05 | 733*, TF32 183 | 366* TFLOPS)",
        memory_gib=48,
    ),
    Chip(
        "RTX 4090",
        r"\bRTX 4090\b",
        165.2e12,
        82.6e12,
        source="NVIDIA Ada Lovelace GPU architecture whitepaper, GeForce RTX 4090 column (dense | sparse): "
        "Peak BF16 Tensor TFLOPS with FP32 Accumulate 165.2 | 330.4, Peak TF32 Tensor TFLOPS 82.6 | 165.2 "
        "(FP16 with FP16 accumulate runs twice as fast; our step accumulates in float32)",
        memory_gib=24,
    ),
    Chip(
        "L4",
        r"\bL4\b",
        121e12,
        60e12,
        source=_NV_SPARSE.format("L4 Tensor Core GPU", "BF16 242*, TF32 120* TFLOPS"),
        memory_gib=24,
    ),
    Chip(
        "A100",
        r"\bA100\b",
        312e12,
        156e12,
        source=_NV.format("A100 Tensor Core GPU") + " (40/80 GB, SXM and PCIe alike: BF16 312 | 624*, "
        "TF32 156 | 312* TFLOPS)",
        memory_gib=80,
    ),
    Chip(
        "A10",
        r"\bA10\b",
        125e12,
        62.5e12,
        source=_NV.format("A10 Tensor Core GPU") + " (BF16 125 | 250*, TF32 62.5 | 125* TFLOPS)",
        memory_gib=24,
    ),
    # NVIDIA Volta / Turing: no bf16, no TF32; float32 runs on the CUDA cores
    Chip(
        "V100S PCIe",
        r"\bV100S\b",
        None,
        16.4e12,
        source=_NV.format("V100 Tensor Core GPU") + " (V100S PCIe: single precision 16.4 TFLOPS)",
        memory_gib=32,
    ),
    Chip(
        "V100 PCIe",
        r"\bV100\b.*\bPCIE\b",
        None,
        14e12,
        source=_NV.format("V100 Tensor Core GPU") + " (V100 PCIe: single precision 14 TFLOPS)",
    ),
    Chip(
        "V100 SXM2",
        r"\bV100\b",
        None,
        15.7e12,
        source=_NV.format("V100 Tensor Core GPU") + " (V100 SXM2: single precision 15.7 TFLOPS)",
    ),
    Chip(
        "T4",
        r"\bT4\b",
        None,
        8.1e12,
        source=_NV.format("T4 Tensor Core GPU") + " (single precision 8.1 TFLOPS)",
        memory_gib=16,
    ),
    # AMD Instinct (no sparsity on these figures); MI250X is two GCDs = two JAX devices
    Chip(
        "MI300X",
        r"\bMI300X\b",
        1307.4e12,
        163.4e12,
        source="AMD Instinct MI300X data sheet (peak BF16 1,307.4 TFLOPS dense, 2,614.9 with sparsity; "
        "peak FP32 matrix 163.4 TFLOPS)",
        memory_gib=192,
    ),
    Chip(
        "MI250X",
        r"\bMI250X\b",
        383e12,
        95.7e12,
        devices_per_chip=2,
        source="AMD Instinct MI250X data sheet (peak BF16 383.0 TFLOPS, peak FP32 matrix 95.7 TFLOPS, per "
        "OAM module of two GCDs; ROCm shows each GCD as one device)",
        memory_gib=128,
    ),
    # Google TPUs (float32 at default precision runs as one bf16 pass); v2 and v3 chips are two TensorCores
    Chip("TPU v6e", r"\bTPU v6( lite|e)\b", 918e12, 918e12, source=_TPU.format("v6e", "918"), memory_gib=32),
    Chip("TPU v5e", r"\bTPU v5( lite|e)\b", 197e12, 197e12, source=_TPU.format("v5e", "197"), memory_gib=16),
    Chip("TPU v5p", r"\bTPU v5p?\b", 459e12, 459e12, source=_TPU.format("v5p", "459"), memory_gib=95),
    Chip("TPU v4", r"\bTPU v4\b", 275e12, 275e12, source=_TPU.format("v4", "275"), memory_gib=32),
    Chip("TPU v3", r"\bTPU v3\b", 123e12, 123e12, devices_per_chip=2, source=_TPU.format("v3", "123"), memory_gib=32),
    Chip("TPU v2", r"\bTPU v2\b", 45e12, 45e12, devices_per_chip=2, source=_TPU.format("v2", "45"), memory_gib=16),
)

# Short names for ``chip_named`` (``chinchilla memory --chip``): name -> (chip, memory in GiB where the short name
# means a smaller variant than ``Chip.memory_gib``).
SHORT_NAMES: dict[str, tuple[str, float | None]] = {
    "b200": ("B200", None),
    "gh200": ("GH200", None),
    "h200": ("H200 SXM", None),
    "h100": ("H100 SXM", None),
    "h100-pcie": ("H100 PCIe", None),
    "h100-nvl": ("H100 NVL", None),
    "a100": ("A100", None),
    "a100-40": ("A100", 40),
    "l40s": ("L40S", None),
    "l4": ("L4", None),
    "a10": ("A10", None),
    "rtx4090": ("RTX 4090", None),
    "t4": ("T4", None),
    "mi300x": ("MI300X", None),
    "mi250x": ("MI250X", None),
    "v6e": ("TPU v6e", None),
    "v5e": ("TPU v5e", None),
    "v5p": ("TPU v5p", None),
    "v4": ("TPU v4", None),
    "v3": ("TPU v3", None),
    "v2": ("TPU v2", None),
}


def chip_named(name: str) -> Chip:
    """The chip of a short name (``SHORT_NAMES``: h100, h200, a100, a100-40, v5e, v4, v5p, v6e, ...) or of a full
    name (``Chip.name``, any case), with its memory; ValueError naming ``--chip`` and the known names otherwise."""
    key = name.strip().lower()
    by_name = {chip.name.lower(): chip for chip in CHIPS}
    if key in SHORT_NAMES:
        full, gib = SHORT_NAMES[key]
        chip = by_name[full.lower()]
        return chip if gib is None else dataclasses.replace(chip, name=f"{chip.name} {gib:g}GB", memory_gib=gib)
    if key in by_name and by_name[key].memory_gib is not None:
        return by_name[key]
    raise ValueError(
        f"--chip {name}: not a chip with a known memory size; known: {', '.join(SHORT_NAMES)} (or give --chip-bytes)"
    )


# AMD GPU architectures (``compute_capability`` of a ROCm device is its gfx name) with bf16 matrix cores: CDNA2
# (MI200: gfx90a), CDNA3 (MI300: gfx94x), CDNA4 (MI350: gfx95x).
_AMD_BF16 = re.compile(r"^gfx9(0a|4\d|5\d)")


def find_chip(device_kind: str) -> Chip | None:
    """The first chip of ``CHIPS`` whose pattern occurs in ``device_kind`` (case-insensitive), or None."""
    for chip in CHIPS:
        if re.search(chip.pattern, device_kind, flags=re.IGNORECASE):
            return chip
    return None


def supports_bfloat16(device: Any) -> tuple[bool, str]:
    """Whether ``device`` (a JAX device) multiplies bfloat16 in hardware, and why we think so.

    TPUs: yes (the MXU is bf16). NVIDIA GPUs: compute capability >= 8.0 (Ampere and newer; Volta 7.0 and Turing 7.5
    have no bf16 tensor cores). AMD GPUs: MI200 (gfx90a) and newer. Otherwise the chip table, and an unknown chip
    counts as "no" (float32 is always correct, only slower).
    """
    kind = getattr(device, "device_kind", "")
    if getattr(device, "platform", "") == "tpu":
        return True, f"{kind!r} is a TPU (bf16 matrix units)"
    capability = str(getattr(device, "compute_capability", "") or "")
    if re.fullmatch(r"\d+\.\d+", capability):
        major = int(capability.split(".")[0])
        if major >= 8:
            return True, f"{kind!r} has compute capability {capability} >= 8.0 (bf16 tensor cores)"
        return False, f"{kind!r} has compute capability {capability} < 8.0 (no bf16 tensor cores)"
    if capability.startswith("gfx"):
        if _AMD_BF16.match(capability):
            return True, f"{kind!r} is {capability} (AMD MI200 or newer: bf16 matrix cores)"
        return False, f"{kind!r} is {capability} (older than AMD MI200: no bf16 matrix cores)"
    chip = find_chip(kind)
    if chip is not None:
        if chip.bfloat16 is not None:
            return True, f"{kind!r} is a {chip.name} (bf16 in its data sheet)"
        return False, f"{kind!r} is a {chip.name} (no bf16 in its data sheet)"
    return False, f"{kind!r} is not a chip we know to support bf16"
