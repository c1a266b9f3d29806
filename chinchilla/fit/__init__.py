"""Scaling-law fitting: consumes a table of runs (N, D, C, loss), knows nothing of training.

Approach 3 (the parametric loss law) lives in :mod:`chinchilla.fit.parametric`; Approaches 1 and 2 in
:mod:`chinchilla.fit.envelope` and :mod:`chinchilla.fit.isoflop`. Importing this package loads jax, optax and
numpy, never flax, tensorflow-datasets or orbax.
"""

from chinchilla.fit.allocate import GOPHER_FLOPS, PAPER_FIT, ChinchillaParams, exact_flops_optimum, projections
from chinchilla.fit.bootstrap import BootstrapResult, bootstrap_parametric, bootstrap_table
from chinchilla.fit.holdout import HoldoutResult, holdout_check
from chinchilla.fit.laws import CHINCHILLA, DATA_CONSTRAINED, ChinchillaLaw, DataConstrainedLaw, FixedLaw, get_law
from chinchilla.fit.parametric import ParametricFit, fit_core, fit_parametric, fit_table
from chinchilla.fit.table import ScalingTable, read_csv, reference_table

__all__ = [
    "CHINCHILLA", "DATA_CONSTRAINED", "GOPHER_FLOPS", "PAPER_FIT", "BootstrapResult", "ChinchillaLaw",
    "ChinchillaParams", "DataConstrainedLaw", "FixedLaw", "HoldoutResult", "ParametricFit", "ScalingTable",
    "bootstrap_parametric", "bootstrap_table", "exact_flops_optimum", "fit_core", "fit_parametric", "fit_table",
    "get_law", "holdout_check", "projections", "read_csv", "reference_table",
]
