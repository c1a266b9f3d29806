"""tiny_cpu: the default reproduction, end to end on 2 CPU cores with no download.

2-layer byte-level decoders (3.5k-125k non-embedding parameters) on the embedded corpus: an IsoFLOP grid at 1e11-1.6e12
FLOPs, dedicated Approach 1 runs and Approach 3 on every final loss; 60 runs, 3.43e13 FLOPs, ~6 min on 2 idle cores.

    bash scripts/reproduce.sh     # = chinchilla reproduce --preset tiny_cpu --out runs/tiny_cpu

The design, the hyperparameter checks and their measurements: docs/presets.md#tiny_cpu; results: docs/results.md.
"""

from chinchilla import zoo
from chinchilla.analysis.report import AnalysisSettings
from chinchilla.preset import Preset, select_models
from chinchilla.sweep.plan import n_params

CORPUS_TRAIN_TOKENS = 8_755_518  # the embedded corpus's train split in byte tokens (`chinchilla.data.epochs_needed`)

BATCH_SIZE = 8  # x 128 tokens at every size: at equal FLOPs batch 32 lost 0.05 nats (these runs are short in steps)
LR_AT_14K = 0.025  # lr(N, S): a least-squares fit to the best rates of scans 1e-3 ... 1e-1 (docs/presets.md#tiny_cpu)
LR_SIZE_EXPONENT = -0.6  # the best rates at 3e11 FLOPs fell from 0.027 at 6k to 0.007-0.014 at 76k
LR_STEPS_EXPONENT = -0.25  # long runs want lower rates and turn erratic at short-run rates
LR_CAP = 0.025  # a cap of 0.05 lost 0.024 nats at 4k to half its rate (docs/presets.md#tiny_cpu-warm-up-and-beta2)
WARMUP_FRACTION = 0.3  # 0.026 and 0.007 nats better than 10% at 25k and 125k; a 2% warm-up lost 0.036 nats at 125k
ADAM_B2 = 0.95  # 0.99 and 0.999 moved the loss by -0.012 ... +0.016: within seed noise, both signs
FINAL_LR_FRACTION = 0.1  # cosine decay to 0.1x, the paper's


def hparams(model, tokens):
    """Per-run training settings: the size- and length-dependent peak rate, everything else fixed."""
    n = n_params(model, "non_embedding")
    steps = max(1, tokens // (BATCH_SIZE * model.seq_len))
    lr = LR_AT_14K * (n / 14e3) ** LR_SIZE_EXPONENT * (steps / 1000) ** LR_STEPS_EXPONENT
    return {
        "batch_size": BATCH_SIZE,
        "lr": round(min(LR_CAP, lr), 5),
        "warmup_fraction": WARMUP_FRACTION,
        "adam_b2": ADAM_B2,
        "final_lr_fraction": FINAL_LR_FRACTION,
        "dataset": "embedded",  # Shakespeare + KJV, shipped in the package: nothing to download
        "tokenizer": "byte",
        "log_every": 1,  # every step's loss: Approach 1's smoothing window counts logged steps
        "eval_batches": 32,  # the held-out loss of Approaches 2 and 3: 32 fixed validation batches
        "checkpoint_every": 2000,  # bounds the steps an interruption loses
    }


PRESET = Preset(
    name="tiny_cpu",
    description="IsoFLOP sweep of 2-layer byte-level decoders, 1e11-1.6e12 FLOPs (x2), on the embedded corpus",
    ladder=select_models(zoo.ladder("tiny"), 3e3, 1.3e5),  # 3.5k-125k non-embedding parameters, x1.25-1.4 apart
    budgets=(1e11, 2e11, 4e11, 8e11, 1.6e12),  # x2 over 16x: 60 runs in ~6 min on 2 cores
    hparams=hparams,
    center=(3e11, 1.3e4, 0.7),  # N_opt guess 13k (C / 3e11)^0.7: a first sweep's minima, 7k to 28k at 1.2e11-7.5e11
    sizes_per_budget=5,  # a profile is only ~0.05 nats deep across the window: 5 sizes place its minimum
    spacing=1.6,  # sizes x1.6 apart around the guess
    convention="non_embedding",  # the guess and the windows count non-embedding parameters
    min_steps=200,  # shorter runs leave the warm-up and cosine decay too few steps
    max_tokens=CORPUS_TRAIN_TOKENS,  # longer runs repeat data and are flagged multi_epoch
    seeds=(0, 1),  # seed noise (~0.01 nats) is a fifth of a profile's depth: the intervals must include it
    seed_sizes=3,  # the 3 sizes nearest the guess get both seeds, where the minimum is decided
    curves={  # dedicated Approach 1 runs, as in the paper's Section 3.1
        "n_cycles": 4,  # the paper's 4 cosine cycle lengths per size ...
        "span": 16.0,  # ... spanning 16x
        "stagger": True,  # each size's cycles shifted by less than one ratio: the runs' ends tile log C evenly
        "center_shift": 0.5,  # centred on half the budget where the guess makes the size optimal: 8x short to 2x long
        "lift_short": True,  # lengthened by whole cycle ratios where the shortest would have < min_steps
        "sizes": (5e3, 2.6e4),  # 6k-25k: larger sizes' 16x spans would end beyond the top budget
    },
    analysis=AnalysisSettings(
        loss="eval_loss",  # held out, 32 fixed batches: 4x less seed noise than the last training steps' loss
        neighbours=None,  # every IsoFLOP run enters its budget's parabola (5 sizes, 8 runs)
        window=100,  # curves smoothed over 100 steps (~0.1M tokens); the paper's 10 steps were ~5-10M tokens
        n_resamples=100,  # bootstrap resamples for Approaches 1 and 2
        approach3_resamples=30,  # Approach 3 refits the parametric law per resample: fewer
    ),
    extrapolation_ladder=zoo.ladder("tiny"),  # next-budget and head-to-head runs may use the whole ladder
    lr_check_budget=3e11,  # `sweep --lr-check`: the smallest, middle and largest size at 3e11 FLOPs ...
    lr_check_models=("tiny-00004k", "tiny-00025k", "tiny-00125k"),
    lr_check_factors=(0.5, 1.0, 2.0),  # ... at the rule's rate x 1/2, 1, 2 ...
    hparam_check_variants=(  # ... and at the rule's rate with other warm-ups and AdamW beta2 (Porian et al. 2024)
        {"warmup_fraction": 0.02},
        {"warmup_fraction": 0.1},
        {"adam_b2": 0.99},
        {"adam_b2": 0.999},
    ),
)
