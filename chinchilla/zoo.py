"""Named model shapes: the paper's 50 (Table A9), a CPU ladder and a one-accelerator ladder.

Every ladder is a tuple of ``ModelConfig`` sorted by size, and every name sorts with its size (zero-padded sizes in
the name), so ``sorted(names)`` is the ladder's order.

- ``chinchilla``: Table A9 rows, the paper's architecture, vocab 32,000, context 2048. Named by the table's
  "Parameters (million)" column: ``chinchilla-00044M`` ... ``chinchilla-16183M``.
- ``tiny``: the CPU ladder this project trains on two cores. One shape family (2 layers, ffw = 4*d_model, rotary,
  untied byte-level embeddings: vocab 256, context 128), d_model 12 ... 352, i.e. about 3.5k ... 3M non-embedding
  parameters, stepped ~x1.2-1.4 around 10k-100k where compute-optimal sizes of CPU budgets lie. Named by
  non-embedding parameters in thousands: ``tiny-00004k`` ... ``tiny-02976k``.
- ``gpu``: one GPU / Colab TPU (about 14M ... 1.1B total parameters), rotary, untied 32k SentencePiece vocabulary,
  context 1024. Named by total parameters in millions: ``gpu-0014M`` ...
"""

from __future__ import annotations

import difflib
import re

from chinchilla.config import ModelConfig
from chinchilla.flops import param_count

# Table A9: (parameters in millions as printed, d_model, ffw_size, kv_size, n_heads, n_layers).
TABLE_A9: tuple[tuple[int, int, int, int, int, int], ...] = (
    (44, 512, 2048, 64, 8, 8),
    (57, 576, 2304, 64, 9, 9),
    (74, 640, 2560, 64, 10, 10),
    (90, 640, 2560, 64, 10, 13),
    (106, 640, 2560, 64, 10, 16),
    (117, 768, 3072, 64, 12, 12),
    (140, 768, 3072, 64, 12, 15),
    (163, 768, 3072, 64, 12, 18),
    (175, 896, 3584, 64, 14, 14),
    (196, 896, 3584, 64, 14, 16),
    (217, 896, 3584, 64, 14, 18),
    (251, 1024, 4096, 64, 16, 16),
    (278, 1024, 4096, 64, 16, 18),
    (306, 1024, 4096, 64, 16, 20),
    (425, 1280, 5120, 128, 10, 18),
    (489, 1280, 5120, 128, 10, 21),
    (509, 1408, 5632, 128, 11, 18),
    (552, 1280, 5120, 128, 10, 24),
    (587, 1408, 5632, 128, 11, 21),
    (632, 1536, 6144, 128, 12, 19),
    (664, 1408, 5632, 128, 11, 24),
    (724, 1536, 6144, 128, 12, 22),
    (816, 1536, 6144, 128, 12, 25),
    (893, 1792, 7168, 128, 14, 20),
    (1018, 1792, 7168, 128, 14, 23),
    (1143, 1792, 7168, 128, 14, 26),
    (1266, 2048, 8192, 128, 16, 22),
    (1424, 2176, 8704, 128, 17, 22),
    (1429, 2048, 8192, 128, 16, 25),
    (1593, 2048, 8192, 128, 16, 28),
    (1609, 2176, 8704, 128, 17, 25),
    (1731, 2304, 9216, 128, 18, 24),
    (1794, 2176, 8704, 128, 17, 28),
    (2007, 2304, 9216, 128, 18, 28),
    (2283, 2304, 9216, 128, 18, 32),
    (2298, 2560, 10240, 128, 20, 26),
    (2639, 2560, 10240, 128, 20, 30),
    (2980, 2560, 10240, 128, 20, 34),
    (3530, 2688, 10752, 128, 22, 36),
    (3802, 2816, 11264, 128, 22, 36),
    (4084, 2944, 11776, 128, 22, 36),
    (4516, 3072, 12288, 128, 24, 36),
    (6796, 3584, 14336, 128, 28, 40),
    (9293, 4096, 16384, 128, 32, 42),
    (11452, 4352, 17408, 128, 32, 47),
    (12295, 4608, 18432, 128, 36, 44),
    (12569, 4608, 18432, 128, 32, 47),
    (13735, 4864, 19456, 128, 32, 47),
    (14940, 4992, 19968, 128, 32, 49),
    (16183, 5120, 20480, 128, 40, 47),
)

TINY_VOCAB_SIZE = 256  # byte-level tokens
TINY_SEQ_LEN = 128
TINY_D_MODELS = (
    12,
    16,
    20,
    24,
    28,
    32,
    36,
    40,
    44,
    48,
    56,
    64,
    72,
    80,
    96,
    112,
    128,
    144,
    160,
    192,
    224,
    256,
    288,
    320,
    352,
)
GPU_VOCAB_SIZE = 32_000
GPU_SEQ_LEN = 1024
# (n_layers, d_model, n_heads); kv_size = d_model / n_heads, ffw = 4 * d_model.
GPU_SHAPES = (
    (3, 192, 3),
    (4, 256, 4),
    (6, 320, 5),
    (6, 384, 6),
    (8, 512, 8),
    (10, 640, 10),
    (12, 768, 12),
    (14, 896, 14),
    (16, 1024, 16),
    (20, 1024, 16),
    (18, 1280, 10),
    (24, 1280, 10),
    (24, 1536, 12),
    (26, 1792, 14),
)


def _chinchilla_ladder() -> tuple[ModelConfig, ...]:
    return tuple(
        ModelConfig(
            n_layers=L,
            d_model=d,
            ffw_size=f,
            n_heads=h,
            kv_size=k,
            vocab_size=32_000,
            seq_len=2048,
            architecture="chinchilla",
            name=f"chinchilla-{millions:05d}M",
        )
        for millions, d, f, k, h, L in TABLE_A9
    )


def _tiny_heads(d_model: int) -> int:
    return 2 if d_model < 64 else 4 if d_model < 256 else 8


def _tiny_ladder() -> tuple[ModelConfig, ...]:
    ladder = []
    for d in TINY_D_MODELS:
        h = _tiny_heads(d)
        config = ModelConfig(
            n_layers=2,
            d_model=d,
            ffw_size=4 * d,
            n_heads=h,
            kv_size=d // h,
            vocab_size=TINY_VOCAB_SIZE,
            seq_len=TINY_SEQ_LEN,
        )
        thousands = round(param_count(config).non_embedding / 1e3)
        ladder.append(config.replace(name=f"tiny-{thousands:05d}k"))
    return tuple(ladder)


def _gpu_ladder() -> tuple[ModelConfig, ...]:
    ladder = []
    for L, d, h in GPU_SHAPES:
        config = ModelConfig(
            n_layers=L,
            d_model=d,
            ffw_size=4 * d,
            n_heads=h,
            kv_size=d // h,
            vocab_size=GPU_VOCAB_SIZE,
            seq_len=GPU_SEQ_LEN,
        )
        millions = round(param_count(config).total / 1e6)
        ladder.append(config.replace(name=f"gpu-{millions:04d}M"))
    return tuple(ladder)


LADDERS: dict[str, tuple[ModelConfig, ...]] = {
    "chinchilla": _chinchilla_ladder(),
    "tiny": _tiny_ladder(),
    "gpu": _gpu_ladder(),
}
MODELS: dict[str, ModelConfig] = {config.name: config for ladder in LADDERS.values() for config in ladder}


def ladder(name: str) -> tuple[ModelConfig, ...]:
    """The named ladder, smallest first."""
    if name not in LADDERS:
        raise ValueError(f"unknown ladder {name!r}; known ladders: {', '.join(sorted(LADDERS))}")
    return LADDERS[name]


def get_model(name: str) -> ModelConfig:
    """A zoo shape by name (e.g. ``tiny-00025k``, ``gpu-0124M``, ``chinchilla-00074M``)."""
    if name not in MODELS:
        unpadded = {re.sub(r"-0+(?=\d)", "-", m).lower(): m for m in MODELS}  # tiny-25k for tiny-00025k
        close = [unpadded[key]] if (key := re.sub(r"-0+(?=\d)", "-", name).lower()) in unpadded else []
        close = close or difflib.get_close_matches(name, MODELS, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        ladders = "|".join(LADDERS)
        raise ValueError(f"unknown model {name!r}; {hint}the names: `chinchilla flops --zoo {ladders}`")
    return MODELS[name]
