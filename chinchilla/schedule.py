"""Learning-rate schedule: linear warm-up, then one cosine cycle decaying the rate 10x (Hoffmann et al. 2022, §3 and
Appendix B: a cosine cycle whose length matches the run; overshooting it by more than 25% hurts).

With peak rate eta, cycle length S steps, W warm-up steps and final fraction r (0.1 = a 10x decay), at step s
(0-based: the rate used for the s-th update):

    s < W:        eta * (s + 1) / W
    W <= s < S:   eta * (r + (1 - r) * (1 + cos(pi * (s - W) / (S - W))) / 2)
    s >= S:       eta * r                                  (a run longer than its cycle stays at the floor)

The cycle length is its own parameter: Approach 1 trains each model for cycles of several lengths, and a run
stopped before the end of its cycle is exactly the prefix of the longer run. Every argument may be a traced array,
so one compiled train step serves runs of any length and learning rate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def learning_rate(step: jax.Array, *, peak_lr: jax.Array, warmup_steps: jax.Array, cycle_steps: jax.Array,
                  final_fraction: jax.Array) -> jax.Array:
    """The schedule above at ``step`` (float32). Callers validate 0 <= warmup_steps < cycle_steps."""
    step = jnp.asarray(step, jnp.float32)
    warmup_steps = jnp.asarray(warmup_steps, jnp.float32)
    warm = peak_lr * (step + 1) / jnp.maximum(warmup_steps, 1.0)
    progress = jnp.clip((step - warmup_steps) / (cycle_steps - warmup_steps), 0.0, 1.0)
    cosine = peak_lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + jnp.cos(jnp.pi * progress)))
    return jnp.where(step < warmup_steps, warm, cosine)
