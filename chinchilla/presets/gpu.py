"""gpu: a single-GPU reproduction (one H100/A100: roughly 6-20 hours) on FineWeb-Edu, a real web-text data set.

The gpu ladder (rotary, 32k SentencePiece vocabulary, context 1024, ~14M-1.1B parameters) at 6e16-1e18 FLOPs, six
sizes per budget around the paper's own optimum: ~1e19 FLOPs in all. Not yet checked on a GPU: run --lr-check first.

    python -m chinchilla.data prepare --preset gpu      # optional: tokenise ahead (docs/data.md)
    chinchilla reproduce --preset gpu --out /data/sweeps/gpu

Each rule's reasoning and sources: docs/presets.md#gpu.
"""

import math
import os

from chinchilla import flops as flops_lib
from chinchilla import zoo
from chinchilla.analysis.report import AnalysisSettings
from chinchilla.preset import Preset
from chinchilla.sweep.plan import PAPER_APPROACH2_ANCHOR, n_params

FINEWEB_DIR = os.environ.get("CHINCHILLA_FINEWEB_DIR", "/data/fineweb-edu")  # where the parquet shards are
DATASET = f"files:{FINEWEB_DIR}/sample/10BT/*.parquet"  # text column "text"; 1% held out by text hash
DATA_DIR = os.environ.get("CHINCHILLA_DATA_DIR")  # the token cache's root (default ~/.cache/chinchilla)
# model -> (micro_batch_size, remat): `chinchilla memory --model M --batch-size 64 --chip h100`'s fastest plan (fewest
# micro-steps, then remat none < dots < full) within 85% of 80 GiB; larger batches run more micro-steps of the same
# size (tests/test_memory.py checks every run of the preset with >= 15% headroom).
PLANS = {
    "gpu-0014M": (64, "none"),  # 6.6 GiB of 80 at 64 sequences
    "gpu-0020M": (64, "none"),  # 11.0
    "gpu-0028M": (64, "none"),  # 19.5
    "gpu-0035M": (64, "none"),  # 23.4
    "gpu-0058M": (64, "none"),  # 40.4
    "gpu-0090M": (64, "none"),  # 62.1
    "gpu-0134M": (64, "dots"),  # 28.5
    "gpu-0192M": (64, "dots"),  # 37.8
    "gpu-0267M": (64, "dots"),  # 48.7
    "gpu-0317M": (64, "dots"),  # 60.5
    "gpu-0436M": (64, "full"),  # 21.9
    "gpu-0554M": (64, "full"),  # 25.6
    "gpu-0778M": (64, "full"),  # 32.4
    "gpu-1117M": (64, "full"),  # 41.8
}
SEQUENCES_PER_STEP_FLOOR = 64  # 64 x 1024 tokens: the smallest batch of any run
MIN_STEPS = 1000  # a larger batch only where the run keeps this many steps: room for the warm-up and cosine
LR_BATCH = 64  # the batch the size rule lr(N) was written for
LR_CAP = 3e-3  # the size rule's ceiling for the smallest models
WARMUP_FRACTION = 0.02  # 2% of the run (>= 20 steps at the 1,000-step floor), cosine after it
FINAL_LR_FRACTION = 0.1  # cosine decay to 0.1x, the paper's


def batch_size(model, tokens):
    """Sequences per step: DeepSeek LLM's compute-optimal B_opt(C) = 0.292 C^0.3271 tokens (Bi et al. 2024, Sec. 3.1)
    at the run's budget, to the nearest power of two, at least 64 sequences, halved (not below 64) while the run would
    have fewer than 1,000 steps: 64 sequences at 6e16 FLOPs, 128 at 1.5e17 and 4e17, 256 at 1e18."""
    flops = flops_lib.training_flops(model, tokens)
    sequences = 0.292 * flops**0.3271 / model.seq_len
    batch = max(SEQUENCES_PER_STEP_FLOOR, 2 ** round(math.log2(sequences)))
    while batch > SEQUENCES_PER_STEP_FLOOR and tokens / (batch * model.seq_len) < MIN_STEPS:
        batch //= 2
    return batch


def learning_rate(model, batch):
    """Peak lr(N, B) = 2e-3 (N / 20M)^(-1/3) (B / 64)^(1/2), capped at 3e-3: a size rule written for batch 64, scaled
    by the square root of the batch (Adam's square-root rule, Malladi et al. 2022: valid below the critical batch,
    ~0.5-1M tokens at these losses, Kaplan et al. 2020; these batches are 64-256k tokens)."""
    n = n_params(model, "total")
    return round(min(LR_CAP, 2e-3 * (n / 20e6) ** (-1 / 3) * math.sqrt(batch / LR_BATCH)), 6)


def memory_plan(model, batch):
    """(micro_batch_size, remat) for ``model`` at ``batch`` on one 80 GiB H100: the 64-sequence plan of ``PLANS`` at
    every batch (more micro-steps of the same size: no more recompute than at 64, and a micro-batch of >= 16 x 1024
    tokens keeps an H100 busy); a model the table lacks gets micro-batches of at most 16 sequences with full remat
    (``chinchilla memory`` gives the fastest)."""
    micro, remat = PLANS.get(model.name, (16, "full"))
    return min(micro, batch), remat


def hparams(model, tokens):
    batch = batch_size(model, tokens)
    micro, remat = memory_plan(model, batch)
    return {
        "batch_size": batch,
        "micro_batch_size": micro,
        "remat": remat,
        "attention_impl": "auto",  # cuDNN fused attention on a bf16 GPU
        "lr": learning_rate(model, batch),
        "warmup_fraction": WARMUP_FRACTION,
        "final_lr_fraction": FINAL_LR_FRACTION,
        "dataset": DATASET,
        "tokenizer": "sentencepiece:32000",  # trained on the first 50M characters of the train split, cached
        "data_dir": DATA_DIR,
        "log_every": 10,
        "eval_every": 1000,
        "eval_batches": 16,
        "checkpoint_every": 1000,  # bounds the steps an interruption loses
    }


PRESET = Preset(
    name="gpu",
    description="IsoFLOP sweep on one GPU: gpu ladder, 6e16-1e18 FLOPs, FineWeb-Edu with a 32k SentencePiece "
    "vocabulary",
    ladder=zoo.ladder("gpu"),  # rotary, untied 32k vocabulary, context 1024, ~14M-1.1B parameters
    budgets=(6e16, 1.5e17, 4e17, 1e18),  # ~1e19 FLOPs in all: ~8 hours at 350 TFLOP/s achieved
    hparams=hparams,
    center=PAPER_APPROACH2_ANCHOR,  # the paper's own optimum (Table A3: 400M parameters at 1.84e19 FLOPs, a = 0.49)
    sizes_per_budget=6,
    convention="total",  # the paper's
    min_steps=MIN_STEPS,
    analysis=AnalysisSettings(
        loss="final_train_loss",  # the smoothed training loss, the paper's
        conventions=("total", "non_embedding"),  # all parameters first (the paper's), non-embedding beside them
        neighbours=2,  # each budget's parabola through 2 sizes either side of its minimum
    ),
    lr_check_budget=1.5e17,  # `sweep --lr-check`: 2 sizes x 5 rates at batch 128
    lr_check_models=("gpu-0020M", "gpu-0058M"),
)
