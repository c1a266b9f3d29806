"""tiny_cpu_wsd: tiny_cpu's sweep (the same points, cycle lengths and seeds) as warmup-stable-decay branches.

Runs of one model and seed that differ only in length share one constant-rate trunk and branch off it into their own
cooldowns (Hägele et al. 2024): the same 60 points for 0.616 of tiny_cpu's FLOPs.

    chinchilla reproduce --preset tiny_cpu_wsd --out runs/wsd [--compare-schedules --cosine-dir runs/cosine]

The design: docs/presets.md#tiny_cpu_wsd; the schedules and the measurement against tiny_cpu: docs/wsd.md.
"""

import dataclasses

from chinchilla.preset import load_preset

COSINE = load_preset("tiny_cpu")

PRESET = dataclasses.replace(
    COSINE,  # tiny_cpu's points, data, batch, AdamW and analysis; a family shares its runs' geometric-mean rate
    name="tiny_cpu_wsd",
    description=COSINE.description + "; WSD branches of shared constant-rate trunks (cooldown 20%, 1-sqrt)",
    schedule="wsd",  # each run a branch of its family's trunk, trained from its cooldown's start
    cooldown_fraction=0.2,  # Hägele et al.: a cooldown over the last 20% matches a cosine run of the same length
    cooldown_shape="1-sqrt",  # Hägele et al.'s best shape
    cosine_preset="tiny_cpu",  # the cosine twin that --compare-schedules trains or reuses
    lr_check_budget=None,  # the learning-rate check is tiny_cpu's (cosine runs of one length)
    lr_check_models=(),
    hparam_check_variants=(),
)
