"""Synthetic training runs drawn from a known loss surface, to test the sweep machinery and Approaches 1-2 on data
whose answer is known: with L(N, D) = E + A / N^alpha + B / D^beta and C = 6ND, the compute-optimal
N_opt ∝ C^a with a = beta / (alpha + beta) (Hoffmann et al. 2022, eq. 4).

A run of N parameters trained for a cosine cycle of T tokens logs, after t tokens,

    L(t) = E + A / N^alpha + B / t^beta  +  kappa * (1 + cos(pi * t / T)) / 2 * (A / N^alpha + B / t^beta)

(plus optional Gaussian noise): the last term is the part of the reducible loss not yet annealed away, which vanishes
at the end of the cycle, so a run's curve lies above the surface until it ends, as a real cosine run's does.

``SyntheticTrainer`` writes such runs in the trainer's run-directory format (config.json, metrics.jsonl with
cumulative exact FLOPs, summary.json), so the runner, the results table and the report can be exercised in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zlib

import numpy as np
from etils import epath

from chinchilla import flops as flops_lib
from chinchilla import runfiles
from chinchilla.fit.allocate import PAPER_FIT, ChinchillaParams
from chinchilla.sweep.plan import DEFAULT_BATCH_SIZE, PlannedRun


def synthetic_curve(surface: ChinchillaParams, n: float, tokens, cycle_tokens: float, kappa: float = 0.1):
    """The noiseless loss after ``tokens`` tokens of a run whose cosine cycle is ``cycle_tokens`` long."""
    t = np.asarray(tokens, dtype=np.float64)
    reducible = surface.A / n**surface.alpha + surface.B / t**surface.beta
    unannealed = kappa * (1 + np.cos(np.pi * np.minimum(t / cycle_tokens, 1.0))) / 2
    return surface.E + reducible * (1 + unannealed)


@dataclasses.dataclass
class SyntheticTrainer:
    """A ``train_fn`` for ``run_sweep`` that writes a synthetic run instead of training.

    ``convention`` says which N the surface is a function of; ``delay_s`` sleeps after each logged point (so a test
    can kill a sweep mid-run); ``noise`` is the standard deviation of Gaussian noise on each logged loss, seeded by
    the run id; ``fail_runs``: run ids (``"*"``: every run) whose training raises, to test failure paths.
    """

    surface: ChinchillaParams = PAPER_FIT
    log_points: int = 40
    kappa: float = 0.1
    noise: float = 0.0
    convention: str = "total"
    delay_s: float = 0.0
    fail_runs: tuple[str, ...] = ()

    def __call__(self, run: PlannedRun, run_dir: epath.Path) -> dict:
        run_dir = runfiles.as_path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if run.run_id in self.fail_runs or "*" in self.fail_runs:
            raise RuntimeError(f"synthetic failure in {run.run_id} (fail_runs)")
        runfiles.write_json_atomic(
            run_dir / runfiles.CONFIG_FILE,
            {"model": run.model.to_dict(), "tokens": run.tokens, **dict(run.train), "trainer": "synthetic"},
        )
        batch_size = int(run.train.get("batch_size", DEFAULT_BATCH_SIZE))
        step_tokens = batch_size * run.model.seq_len
        total_steps = run.tokens // step_tokens
        steps = np.unique(np.linspace(1, total_steps, min(self.log_points, total_steps)).round().astype(int))
        n = run.n_params(self.convention)
        tokens = steps * step_tokens
        loss = synthetic_curve(self.surface, n, tokens, run.tokens, self.kappa)
        rng = np.random.default_rng(zlib.crc32(run.run_id.encode()))
        loss = loss + self.noise * rng.standard_normal(loss.size)
        per_token = flops_lib.training_flops_per_token(run.model)
        metrics_path = run_dir / runfiles.METRICS_FILE
        with metrics_path.open("w") as handle:
            for step, seen, value in zip(steps, tokens, loss):
                handle.write(
                    json.dumps(
                        {
                            "step": int(step),
                            "tokens": int(seen),
                            "flops": float(per_token * seen),
                            "loss": float(value),
                            "lr": 0.0,
                        }
                    )
                    + "\n"
                )
                handle.flush()
                if self.delay_s:
                    time.sleep(self.delay_s)
        counts = flops_lib.param_count(run.model)
        summary = {
            "status": "finished",
            "n_params": counts.total,
            "non_embedding_params": counts.non_embedding,
            "tokens": int(tokens[-1]),
            "flops": float(per_token * tokens[-1]),
            "train_loss_tail": float(loss[-1]),
            "eval_loss": float(self.surface.loss(n, tokens[-1])),
            "trainer": "synthetic",
        }
        runfiles.write_json_atomic(run_dir / runfiles.SUMMARY_FILE, summary)
        return summary
