"""Held-out extrapolation check: fit on the runs below a FLOP threshold, predict the runs at or above it.

A scaling law is used to extrapolate, so the honest test of a fit is how well it predicts bigger runs it has not
seen. Errors are reported in log-loss (the scale the objective works on) and relative to the loss:

    rmse_log = sqrt(mean_i (log L_hat_i - log L_i)^2),   relative error_i = L_hat_i / L_i - 1,

over the held-out runs, next to the same on the training runs for scale.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from chinchilla.fit.parametric import ParametricFit, fit_table
from chinchilla.fit.table import ScalingTable


@dataclasses.dataclass(frozen=True)
class HoldoutResult:
    """The fit on runs with C < ``flops_threshold`` and its predictions for the runs with C >= it."""

    flops_threshold: float
    fit: ParametricFit
    train: ScalingTable
    test: ScalingTable
    train_predicted: np.ndarray
    test_predicted: np.ndarray

    @property
    def test_relative_error(self) -> np.ndarray:
        """L_hat / L - 1 per held-out run."""
        return self.test_predicted / self.test.loss - 1.0

    def metrics(self) -> dict[str, float]:
        """rmse_log, mean |relative error|, max |relative error| and mean relative error (bias), held-out and
        training."""
        out = {}
        for split, table, predicted in (
            ("test", self.test, self.test_predicted),
            ("train", self.train, self.train_predicted),
        ):
            log_error = np.log(predicted) - np.log(table.loss)
            relative = predicted / table.loss - 1.0
            out.update(
                {
                    f"{split}_rmse_log": float(np.sqrt(np.mean(log_error**2))),
                    f"{split}_mean_abs_rel_error": float(np.mean(np.abs(relative))),
                    f"{split}_max_abs_rel_error": float(np.max(np.abs(relative))),
                    f"{split}_mean_rel_error": float(np.mean(relative)),
                }
            )
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "flops_threshold": self.flops_threshold,
            "n_train": len(self.train),
            "n_test": len(self.test),
            **self.metrics(),
            "fit": self.fit.to_dict(),
        }


def holdout_check(table: ScalingTable, flops_threshold: float, **fit_options) -> HoldoutResult:
    """Fit (``fit_table(train, **fit_options)``) on the runs of ``table`` below ``flops_threshold`` FLOPs and
    predict the others."""
    if not (np.isfinite(flops_threshold) and flops_threshold > 0):
        raise ValueError(f"flops_threshold={flops_threshold!r} must be positive and finite")
    below = table.flops < flops_threshold
    if not below.any() or below.all():
        raise ValueError(
            f"flops_threshold={flops_threshold:.3g} leaves {int(below.sum())} training and "
            f"{int((~below).sum())} held-out runs; both must be non-empty "
            f"(the runs span {table.flops.min():.3g} to {table.flops.max():.3g} FLOPs)"
        )
    train = table.select(below, f"runs below {flops_threshold:.3g} FLOPs")
    test = table.select(~below, f"runs at or above {flops_threshold:.3g} FLOPs")
    fit = fit_table(train, **fit_options)
    return HoldoutResult(
        flops_threshold=float(flops_threshold),
        fit=fit,
        train=train,
        test=test,
        train_predicted=fit.predict(**train.covariates()),
        test_predicted=fit.predict(**test.covariates()),
    )
