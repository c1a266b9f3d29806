"""tiny_cpu: the default reproduction, end to end in about 10-15 minutes on 2 CPU cores, no download.

Data: the embedded corpus (Shakespeare + KJV, byte tokens, 8.76M training tokens), so every run reads at most about
one epoch. Models: the ``tiny`` ladder (2 layers, ffw = 4 d_model, rotary, untied 256-token embeddings, context 128)
from 3.5k to 125k non-embedding parameters, stepped x1.25-1.4.

Budgets: four, spaced x2.5 over 16x (1.2e11 ... 1.9e12 FLOPs, exact Appendix F count), five sizes each around a guess
N_opt(C) = 12k (C / 3e11)^0.7 non-embedding parameters (the minima measured at 3e11 and 1e12 with a plain decoder).
Spacing the budgets over 16x makes the IsoFLOP grid double as Approach 1's grid: a size planned at several budgets
is trained for several cosine cycle lengths (the paper: 4 spanning 16x).

Hyperparameters per size (the step where small-scale reproductions fail): batch 8 x 128 tokens for every size;
AdamW, 10% warm-up, cosine decay to 0.1x over the run; peak learning rate lr(N) = 0.03 (N / 14k)^(-1/3), capped at
0.05. Chosen from a scan at 3e11 FLOPs (`chinchilla sweep --preset tiny_cpu --lr-check --out DIR` repeats it at 1/4 ...
4x the rule): best rates 0.02-0.05 at 6k, ~0.03 at 14k, ~0.02 at 47k non-embedding parameters; 1e-3 was 0.3-0.4
nats worse everywhere. Losses: the held-out loss on 32 fixed validation batches (eval_loss): at batch 8 the last
training steps' loss varies by ~0.04 nats between seeds, the held-out loss by ~0.01.
"""

from chinchilla import zoo
from chinchilla.report import AnalysisSettings
from chinchilla.reproduce import Preset, select_models
from chinchilla.sweep.plan import n_params

CORPUS_TRAIN_TOKENS = 8_755_518  # `chinchilla.data.epochs_needed`: the embedded corpus's train split, byte tokens


def hparams(model):
    n = n_params(model, "non_embedding")
    return {
        "batch_size": 8,
        "lr": round(min(0.05, 0.03 * (n / 14e3) ** (-1 / 3)), 5),
        "warmup_fraction": 0.1,
        "final_lr_fraction": 0.1,
        "dataset": "embedded",
        "tokenizer": "byte",
        "log_every": 1,
        "eval_batches": 32,
        "checkpoint_every": 2000,
    }


PRESET = Preset(
    name="tiny_cpu",
    description="IsoFLOP sweep of 2-layer byte-level decoders, 1.2e11-1.9e12 FLOPs, on the embedded corpus",
    ladder=select_models(zoo.ladder("tiny"), 3e3, 1.3e5),
    budgets=(1.2e11, 3e11, 7.5e11, 1.9e12),
    hparams=hparams,
    center=(3e11, 1.2e4, 0.7),
    sizes_per_budget=5,
    convention="non_embedding",
    min_steps=200,
    max_tokens=CORPUS_TRAIN_TOKENS,
    analysis=AnalysisSettings(loss="eval_loss", neighbours=2, n_resamples=100, approach3_resamples=30),
    lr_check_budget=3e11,
    lr_check_models=("tiny-00006k", "tiny-00025k", "tiny-00076k"),
)
