"""tiny_cpu: the default reproduction, end to end in about 4-8 minutes on 2 CPU cores, no download.

Data: the embedded corpus (Shakespeare + KJV, byte tokens, 8.76M training tokens), so no run reads more than about
two thirds of an epoch. Models: the ``tiny`` ladder (2 layers, ffw = 4 d_model, rotary, untied 256-token embeddings,
context 128) from 3.5k to 125k non-embedding parameters, stepped x1.25-1.4.

Budgets: five, spaced x2 over 16x (1e11 ... 1.6e12 FLOPs, exact Appendix F count; 25 runs, 1.55e13 FLOPs: 4.2 min
on an otherwise idle 2-core machine, about twice that with other jobs on its cores), five sizes each, spread x1.6
apart around a guess N_opt(C) = 13k (C / 3e11)^0.7 non-embedding parameters (from a first sweep of this preset:
minima near 7k, 13k and 28k at 1.2e11, 3e11 and 7.5e11 FLOPs). Spacing the budgets over 16x makes the IsoFLOP grid
double as Approach 1's grid: a size planned at several budgets is trained for several cosine cycle lengths (the
paper: 4 spanning 16x). Sizes x1.6 apart (a window of 6.5x) rather than adjacent rungs: near its minimum an IsoFLOP
profile here is only ~0.05 nats deep across such a window, and seed noise is ~0.01 nats.

Hyperparameters (the step where small-scale reproductions fail): batch 8 x 128 tokens for every size (at equal
FLOPs batch 32 was 0.05 nats worse: these runs are short in steps); AdamW, 10% warm-up, cosine decay to 0.1x over
the run; peak learning rate lr(N, S) = 0.025 (N / 14k)^(-0.6) (S / 1000)^(-0.25), capped at 0.05, for N
non-embedding parameters and S steps: a least-squares fit (within ~25%; the optimum is flat within 2x) to the best
rates measured in scans of 1e-3 ... 1e-1:
- at 3e11 FLOPs: 6k (2,100 steps) 0.027; 14k (1,250 steps) 0.03; 25k (840 steps) 0.022; 47k (530 steps) 0.015;
  76k (370 steps) 0.007-0.014 (0.028 was 0.1 nats worse); 1e-3 was 0.3-0.4 nats worse everywhere;
- at longer runs: 25k at 7.5e11 FLOPs (2,100 steps): 0.0125 and 0.025 tied; 39k at 1.9e12 (3,900 steps): 0.021 gave
  1.697 and 1.638 (two seeds), 0.01 gave 1.634 and 1.623: long runs want lower rates and turn erratic at short-run
  rates.
`chinchilla sweep --preset tiny_cpu --lr-check --out DIR` trains 3 sizes at 3e11 FLOPs with 1/4 ... 4x the rule
(1.3 min); with this rule the rule's own rate was the best of the five, or within 0.003 nats of it, at all three:
6k 1.887 (x1/2) vs 1.890 (rule); 25k 1.894 (rule); 76k 2.017 (rule), each neighbour 0.01-0.07 nats worse.
Losses: the held-out loss on 32 fixed validation batches (eval_loss) for Approaches 2 and 3: at batch 8 the last
training steps' loss varies by ~0.04 nats between seeds, the held-out loss by ~0.01. Approach 1 smooths the training
curves over 100 steps (~0.1M tokens) instead of the paper's 10 (its 10 steps were ~5-10M tokens): over 10 steps of
1,024 tokens the envelope hops between runs on noise (16 runs on it against 11 at 100 steps, a within 0.03).
"""

from chinchilla import zoo
from chinchilla.report import AnalysisSettings
from chinchilla.reproduce import Preset, select_models
from chinchilla.sweep.plan import n_params

CORPUS_TRAIN_TOKENS = 8_755_518  # `chinchilla.data.epochs_needed`: the embedded corpus's train split, byte tokens


BATCH_SIZE = 8
LR_CAP = 0.025  # was 0.05: at 4k the rule's 0.044 lost 0.024 nats to half of it (the check below)
WARMUP_FRACTION = 0.3  # was 0.1: 0.026 and 0.007 nats better at 25k and 125k, even at 4k (the check below)
ADAM_B2 = 0.95  # 0.99 and 0.999 were no better (within seed noise, both signs)


def hparams(model, tokens):
    n = n_params(model, "non_embedding")
    steps = max(1, tokens // (BATCH_SIZE * model.seq_len))
    return {
        "batch_size": BATCH_SIZE,
        "lr": round(min(LR_CAP, 0.025 * (n / 14e3) ** -0.6 * (steps / 1000) ** -0.25), 5),
        "warmup_fraction": WARMUP_FRACTION,
        "adam_b2": ADAM_B2,
        "final_lr_fraction": 0.1,
        "dataset": "embedded",
        "tokenizer": "byte",
        "log_every": 1,
        "eval_batches": 32,
        "checkpoint_every": 2000,
    }


PRESET = Preset(
    name="tiny_cpu",
    description="IsoFLOP sweep of 2-layer byte-level decoders, 1e11-1.6e12 FLOPs (x2), on the embedded corpus",
    ladder=select_models(zoo.ladder("tiny"), 3e3, 1.3e5),
    budgets=(1e11, 2e11, 4e11, 8e11, 1.6e12),
    hparams=hparams,
    center=(3e11, 1.3e4, 0.7),
    sizes_per_budget=5,
    spacing=1.6,
    convention="non_embedding",
    min_steps=200,
    max_tokens=CORPUS_TRAIN_TOKENS,
    seeds=(0, 1),
    seed_sizes=3,
    curves={"n_cycles": 4, "span": 16.0, "stagger": True, "center_shift": 0.5, "lift_short": True,
            "sizes": (5e3, 2.6e4)},
    analysis=AnalysisSettings(loss="eval_loss", neighbours=None, window=100, n_resamples=100,
                              approach3_resamples=30),
    extrapolation_ladder=zoo.ladder("tiny"),
    lr_check_budget=3e11,
    lr_check_models=("tiny-00004k", "tiny-00025k", "tiny-00125k"),
    lr_check_factors=(0.5, 1.0, 2.0),
    hparam_check_variants=({"warmup_fraction": 0.02}, {"warmup_fraction": 0.1}, {"adam_b2": 0.99},
                           {"adam_b2": 0.999}),
)
