"""What ``fit approach1`` and ``fit approach2`` share: both end in power laws N_opt ∝ C^a, D_opt ∝ C^b with
intervals over bootstrap resamples; their bootstrap flags, and the printing of the laws and of intervals that could
not be had."""

from __future__ import annotations

import argparse
import math

from chinchilla.cli import checks


def add_bootstrap_args(parser: argparse.ArgumentParser) -> None:
    """Approaches 1 and 2 share these: the bootstrap's resamples and seed, and --json."""
    parser.add_argument(
        "--resamples",
        type=checks.count(0, 1e6, "bootstrap resamples"),
        default=100,
        help="bootstrap resamples (default 100)",
    )
    parser.add_argument("--seed", type=checks.SEED, help="bootstrap seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def check_seed(args: argparse.Namespace) -> None:
    if args.seed is not None and args.resamples == 0:
        raise ValueError("--seed would be ignored: --resamples 0 draws no bootstrap resample")


def interval_warning(result, requested: int) -> list[str]:
    """A warning when the intervals are not reported because too few resamples fitted."""
    from chinchilla.fit.powerlaw import MIN_RESAMPLE_SHARE
    from chinchilla.fit.table import counted

    if not requested or math.isfinite(result.a_interval[0]):
        return []
    return [
        f"intervals not available: only {result.n_resamples} of {counted(requested, 'resample')} could be fitted "
        f"(fewer "
        f"than {MIN_RESAMPLE_SHARE:.0%}), so their percentiles describe the lucky subsets, not the estimate"
    ]


def print_laws(out: dict) -> None:
    from chinchilla.fit.table import counted

    for key, law in (("a", "n_law"), ("b", "d_law")):
        low, high = out[f"{key}_interval"]
        shown = (
            "interval not available"
            if low is None or high is None or not (math.isfinite(low) and math.isfinite(high))
            else f"[{low:.4f}, {high:.4f}] (10th-90th percentiles"
        )
        print(
            f"  {key} = {out[key]:.4f}   {shown}{')' if shown[0] == '[' else ''} "
            f"({counted(out['n_resamples'], 'resample')} fitted)   coefficient {out[law]['coefficient']:.4g}"
        )
