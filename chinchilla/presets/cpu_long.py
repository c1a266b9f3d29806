"""cpu_long: a meaningful exponent on 2 CPU cores in under half an hour.

The ``tiny_cpu`` design (same data, hyperparameter rule, held-out loss and analysis; the ladder up to 400k
non-embedding parameters) at budgets 1e12 ... 8e12 FLOPs (x2, spanning 8x), five sizes x1.6 apart per budget around
the same guess of N_opt(C), the 3 nearest the guess trained with 2 seeds (seed noise in the held-out loss is ~0.01
nats, comparable to the depth of an IsoFLOP valley at this scale), plus dedicated Approach 1 runs: sizes 31k ... 99k,
each for 4 staggered cosine cycle lengths spanning 16x. 56 runs, 1.73e14 FLOPs; some read up to 1.54 epochs of the
embedded corpus and are flagged ``multi_epoch``. Measured (2026-11-30, idle 2-core machine, README): 23.4 min wall;
Approach 2's a (all parameters) 0.550 (0.53, 0.60), Approach 3's 0.532 (0.51, 0.58), all minima interior, Approach 3
identified; Approach 1's 0.217 (0.18, 0.26) is biased low because the curve sizes do not bracket the optimum over
the FLOP range their cycles span (1.2e11 ... 1.1e13; the README has the numbers).
Resumable: run the same command again after an interruption.
"""

import dataclasses

from chinchilla import zoo
from chinchilla.preset import Preset, load_preset, select_models

TINY = load_preset("tiny_cpu")

PRESET = Preset(
    name="cpu_long",
    description="IsoFLOP sweep of 2-layer byte-level decoders, 1e12-8e12 FLOPs, 2 seeds, on the embedded corpus",
    ladder=select_models(zoo.ladder("tiny"), 3e3, 4e5),
    budgets=(1e12, 2e12, 4e12, 8e12),
    hparams=TINY.hparams,
    center=TINY.center,
    sizes_per_budget=5,
    spacing=1.6,
    convention="non_embedding",
    min_steps=200,
    max_tokens=TINY.max_tokens,
    seeds=(0, 1),
    seed_sizes=3,
    curves=dict(TINY.curves, sizes=(3e4, 1e5)),
    analysis=dataclasses.replace(TINY.analysis, approach3_resamples=50),
    extrapolation_ladder=zoo.ladder("tiny"),
    lr_check_budget=2e12,
    lr_check_models=("tiny-00025k", "tiny-00056k"),
)
