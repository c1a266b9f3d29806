"""cpu_long: a meaningful exponent on 2 CPU cores in under half an hour.

tiny_cpu's design (data, hyperparameter rule, held-out loss, analysis) at 1e12-8e12 FLOPs on the ladder up to 400k
non-embedding parameters: 56 runs, 1.73e14 FLOPs, 23.4 min on an idle 2-core machine. Resumable: rerun the command.

    chinchilla reproduce --preset cpu_long --out runs/cpu_long

The design: docs/presets.md#cpu_long; results: docs/results.md#cpu_long-the-longer-cpu-preset.
"""

import dataclasses

from chinchilla import zoo
from chinchilla.preset import Preset, load_preset, select_models

TINY = load_preset("tiny_cpu")

PRESET = Preset(
    name="cpu_long",
    description="IsoFLOP sweep of 2-layer byte-level decoders, 1e12-8e12 FLOPs, 2 seeds, on the embedded corpus",
    ladder=select_models(zoo.ladder("tiny"), 3e3, 4e5),  # up to 400k: room above the top budget's minimum (~150-170k)
    budgets=(1e12, 2e12, 4e12, 8e12),  # x2 over 8x: a tighter a than tiny_cpu's within half an hour
    hparams=TINY.hparams,  # tiny_cpu's rule: lr(N, S), batch 8, warm-up 30%, AdamW beta2 0.95
    center=TINY.center,  # the same guess of N_opt(C), extrapolated
    sizes_per_budget=5,
    spacing=1.6,
    convention="non_embedding",
    min_steps=200,
    max_tokens=TINY.max_tokens,  # runs past one epoch (up to 1.54) are flagged multi_epoch
    seeds=(0, 1),  # seed noise (~0.01 nats) is comparable to an IsoFLOP valley's depth at this scale
    seed_sizes=3,
    curves=dict(TINY.curves, sizes=(3e4, 1e5)),  # 31k-99k: 4 staggered cycle lengths over 16x each
    analysis=dataclasses.replace(TINY.analysis, approach3_resamples=50),  # 50 refits: seconds next to the training
    extrapolation_ladder=zoo.ladder("tiny"),
    lr_check_budget=2e12,  # the rule checked in the middle of this preset's range
    lr_check_models=("tiny-00025k", "tiny-00056k"),
)
