"""tiny_cpu_wsd: ``tiny_cpu``'s sweep (the same IsoFLOP points, the same Approach 1 cycle lengths, the same seeds)
trained with warmup-stable-decay schedules whose runs share trunks (Hägele et al. 2024, "Scaling Laws and
Compute-Optimal Training Beyond Fixed Training Durations").

Runs of one model and seed that differ only in length form a family (``chinchilla.sweep.plan.share_trunks``): one
constant-rate trunk as long as the family's longest stable phase keeps its state at every branch point, and each run
starts there and trains only its cooldown, the last 20% of its steps, 1-sqrt shaped, to zero. A family shares one
learning rate (the geometric mean of tiny_cpu's per-run rule over its runs: lr(N, S) depends on the run's steps S,
which a shared trunk cannot), one warm-up in tokens (tiny_cpu's 30% of its shortest run) and one data pool; AdamW,
batch and everything else are tiny_cpu's. Each run's tokens and FLOPs (what the laws see) count its whole length,
the trunk's prefix included; the sweep spends each trunk once.

    chinchilla sweep --preset tiny_cpu_wsd --plan-only                      # trunks, branch points, spent FLOPs
    chinchilla reproduce --preset tiny_cpu_wsd --out runs/wsd               # train and report
    chinchilla reproduce --preset tiny_cpu_wsd --out runs/wsd --compare-schedules --cosine-dir runs/cosine

``--compare-schedules`` also trains (or reuses, from ``--cosine-dir``) tiny_cpu's cosine sweep and puts both
schedules' Table 2 side by side with the per-point WSD - cosine eval-loss differences (docs/wsd.md).
"""

import dataclasses

from chinchilla.preset import load_preset

COSINE = load_preset("tiny_cpu")

PRESET = dataclasses.replace(
    COSINE,
    name="tiny_cpu_wsd",
    description=COSINE.description + "; WSD branches of shared constant-rate trunks (cooldown 20%, 1-sqrt)",
    schedule="wsd",
    cooldown_fraction=0.2,
    cooldown_shape="1-sqrt",
    cosine_preset="tiny_cpu",
    lr_check_budget=None,  # the learning-rate check is tiny_cpu's (cosine runs of one length)
    lr_check_models=(),
    hparam_check_variants=(),
)
