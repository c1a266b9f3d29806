"""gpu: a single-GPU reproduction (one H100/A100: roughly 6-20 hours), on a real web-text data set.

Data: a TFDS text data set you prepare once where there is network access (nothing downloads at run time):
`tfds build c4/en --data_dir DIR --file_format array_record` (or lm1b), then set CHINCHILLA_DATA_DIR=DIR or edit
DATA_DIR below. Tokenizer: a 32,000-piece SentencePiece BPE trained on the first 50M characters of its train split
(cached). Models: the ``gpu`` ladder (rotary, untied 32k vocabulary, context 1024, about 14M ... 1.1B parameters).

Budgets: 6e16, 1.5e17, 4e17, 1e18 FLOPs, six sizes each around the paper's own optimum (Table A3: 400M total
parameters at 1.84e19 FLOPs, a = 0.49), total parameters. About 1e19 FLOPs: ~8 hours at 350 TFLOP/s achieved.

Hyperparameters: batch 8 x 1024 tokens (what fits: the largest run, gpu-0267M, needs ~43 GiB per XLA's memory
analysis on CPU, ~317 GiB at batch 64: its activations grow by ~0.29 GiB per sequence and layer; JAX's default
preallocation leaves 60 of an H100's 80 GiB; tests/test_memory.py checks it); AdamW, warm-up 2% of the run, cosine
to 0.1x; peak lr(N) = 2e-3 (N / 20M)^(-1/3), capped at 3e-3 (the Chinchilla-style decrease with size; the paper's
2e-4 ... 1.25e-4 are for batches of ~0.5-1.5M tokens and 70M+ models; the rule was first written for batch 64). NOT
yet checked on a GPU: run the learning-rate check first (`chinchilla sweep --preset gpu --lr-check --out DIR`, 2
sizes x 5 rates at 1.5e17 FLOPs) and adjust the rule.
"""

import os

from chinchilla import zoo
from chinchilla.report import AnalysisSettings
from chinchilla.reproduce import Preset
from chinchilla.sweep.plan import PAPER_APPROACH2_ANCHOR, n_params

DATASET = "c4/en"
DATA_DIR = os.environ.get("CHINCHILLA_DATA_DIR")
BATCH_SIZE = 8  # sequences per step: the largest power of two whose train step fits an 80 GiB H100 (test_memory.py)


def hparams(model, tokens):
    n = n_params(model, "total")
    return {
        "batch_size": BATCH_SIZE,
        "lr": round(min(3e-3, 2e-3 * (n / 20e6) ** (-1 / 3)), 6),
        "warmup_fraction": 0.02,
        "final_lr_fraction": 0.1,
        "dataset": DATASET,
        "tokenizer": "sentencepiece:32000",
        "data_dir": DATA_DIR,
        "log_every": 10,
        "eval_every": 1000,
        "eval_batches": 16,
        "checkpoint_every": 1000,
    }


PRESET = Preset(
    name="gpu",
    description="IsoFLOP sweep on one GPU: gpu ladder, 6e16-1e18 FLOPs, c4/en with a 32k SentencePiece vocabulary",
    ladder=zoo.ladder("gpu"),
    budgets=(6e16, 1.5e17, 4e17, 1e18),
    hparams=hparams,
    center=PAPER_APPROACH2_ANCHOR,
    sizes_per_budget=6,
    convention="total",
    min_steps=1000,
    analysis=AnalysisSettings(loss="final_train_loss", conventions=("total", "non_embedding"), neighbours=2),
    lr_check_budget=1.5e17,
    lr_check_models=("gpu-0020M", "gpu-0058M"),
)
