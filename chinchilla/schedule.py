"""Learning-rate schedules: the paper's cosine cycle, and warmup-stable-decay (WSD) for runs that share a trunk.

**cosine** (Hoffmann et al. 2022, §3 and Appendix B: a cosine cycle whose length matches the run; overshooting it
by more than 25% hurts). With peak rate eta, cycle length S steps, W warm-up steps and final fraction r (0.1 = a 10x
decay), at step s (0-based: the rate used for the s-th update):

    s < W:        eta * (s + 1) / W
    W <= s < S:   eta * (r + (1 - r) * (1 + cos(pi * (s - W) / (S - W))) / 2)
    s >= S:       eta * r                                  (a run longer than its cycle stays at the floor)

The cycle length is its own parameter: Approach 1 trains each model for cycles of several lengths, and a run
stopped before the end of its cycle is exactly the prefix of the longer run.

**wsd** (warmup-stable-decay: Hu et al. 2024, MiniCPM; Hägele et al. 2024, "Scaling Laws and Compute-Optimal
Training Beyond Fixed Training Durations": a constant rate with a cooldown over the last ~20% of the run, 1-sqrt
shaped, matches a cosine run of the same length). With a run of S steps whose cooldown starts at step D (D = S - C,
C = round(cooldown_fraction * S)) and the same warm-up:

    s < W:        eta * (s + 1) / W
    W <= s < D:   eta                                      (the stable phase: runs of one model share it)
    D <= s:       eta * (r + (1 - r) * f(p)),  p = min(1, (s - D) / (S - D))

with the cooldown shape f: "1-sqrt" f(p) = 1 - sqrt(p) (Hägele et al.'s best), "linear" f(p) = 1 - p, "cosine"
f(p) = (1 + cos(pi p)) / 2. A zero cooldown (D = S) is a constant rate after warm-up: a trunk that runs of several
lengths branch off (``TrainConfig.init_from``) at their own D.

Every argument may be a traced array, so one compiled train step serves runs of any length, learning rate, schedule
and shape (``rate`` selects between the two by a traced flag).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SCHEDULES: tuple[str, ...] = ("cosine", "wsd")
COOLDOWN_SHAPES: tuple[str, ...] = ("1-sqrt", "linear", "cosine")  # their index is the traced shape code


def _warmup(step: jax.Array, peak_lr: jax.Array, warmup_steps: jax.Array) -> jax.Array:
    return peak_lr * (step + 1) / jnp.maximum(warmup_steps, 1.0)


def learning_rate(
    step: jax.Array, *, peak_lr: jax.Array, warmup_steps: jax.Array, cycle_steps: jax.Array, final_fraction: jax.Array
) -> jax.Array:
    """The cosine schedule above at ``step`` (float32). Callers validate 0 <= warmup_steps < cycle_steps."""
    step = jnp.asarray(step, jnp.float32)
    warmup_steps = jnp.asarray(warmup_steps, jnp.float32)
    progress = jnp.clip((step - warmup_steps) / (cycle_steps - warmup_steps), 0.0, 1.0)
    cosine = peak_lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + jnp.cos(jnp.pi * progress)))
    return jnp.where(step < warmup_steps, _warmup(step, peak_lr, warmup_steps), cosine)


def cooldown_factor(progress: jax.Array, shape: jax.Array | int) -> jax.Array:
    """f(p) of the cooldown shape with index ``shape`` in ``COOLDOWN_SHAPES``: 1 at p = 0, 0 at p = 1."""
    progress = jnp.clip(jnp.asarray(progress, jnp.float32), 0.0, 1.0)
    shape = jnp.asarray(shape, jnp.int32)
    return jnp.where(
        shape == 0,
        1.0 - jnp.sqrt(progress),
        jnp.where(shape == 1, 1.0 - progress, 0.5 * (1.0 + jnp.cos(jnp.pi * progress))),
    )


def wsd_learning_rate(
    step: jax.Array,
    *,
    peak_lr: jax.Array,
    warmup_steps: jax.Array,
    decay_start: jax.Array,
    total_steps: jax.Array,
    final_fraction: jax.Array,
    shape: jax.Array | int,
) -> jax.Array:
    """The WSD schedule above at ``step`` (float32). ``decay_start`` = D, ``total_steps`` = S; D = S: no cooldown."""
    step = jnp.asarray(step, jnp.float32)
    warmup_steps = jnp.asarray(warmup_steps, jnp.float32)
    decay_start = jnp.asarray(decay_start, jnp.float32)
    progress = (step - decay_start) / jnp.maximum(jnp.asarray(total_steps, jnp.float32) - decay_start, 1.0)
    decayed = peak_lr * (final_fraction + (1 - final_fraction) * cooldown_factor(progress, shape))
    stable_or_decayed = jnp.where(step < decay_start, peak_lr * jnp.ones_like(step), decayed)
    return jnp.where(step < warmup_steps, _warmup(step, peak_lr, warmup_steps), stable_or_decayed)


def rate(step: jax.Array, hp: dict) -> jax.Array:
    """The rate of the schedule ``hp`` describes (``chinchilla.step.hyperparameters``: "wsd" 1.0 selects WSD)."""
    cosine = learning_rate(
        step,
        peak_lr=hp["peak_lr"],
        warmup_steps=hp["warmup_steps"],
        cycle_steps=hp["cycle_steps"],
        final_fraction=hp["final_fraction"],
    )
    wsd = wsd_learning_rate(
        step,
        peak_lr=hp["peak_lr"],
        warmup_steps=hp["warmup_steps"],
        decay_start=hp["decay_start"],
        total_steps=hp["total_steps"],
        final_fraction=hp["final_fraction"],
        shape=hp["cooldown_shape"],
    )
    return jnp.where(hp["wsd"] > 0.5, wsd, cosine)
