"""Scaling-law fitting: consumes a table of runs (N, D, C, loss), knows nothing of training.

Approach 3 (the parametric loss law) lives in :mod:`chinchilla.fit.parametric`; Approaches 1 and 2 in
:mod:`chinchilla.fit.envelope` and :mod:`chinchilla.fit.isoflop`. Importing this package loads jax, optax and
numpy, never flax, tensorflow-datasets or orbax.
"""

from chinchilla.fit.allocate import GOPHER_FLOPS, PAPER_FIT, ChinchillaParams, exact_flops_optimum, projections
from chinchilla.fit.laws import CHINCHILLA, DATA_CONSTRAINED, ChinchillaLaw, DataConstrainedLaw, FixedLaw, get_law
from chinchilla.fit.parametric import ParametricFit, fit_core, fit_parametric, fit_table
from chinchilla.fit.table import ScalingTable, read_csv, reference_table

__all__ = [
    "CHINCHILLA", "DATA_CONSTRAINED", "GOPHER_FLOPS", "PAPER_FIT", "ChinchillaLaw", "ChinchillaParams",
    "DataConstrainedLaw", "FixedLaw", "ParametricFit", "ScalingTable", "exact_flops_optimum", "fit_core",
    "fit_parametric", "fit_table", "get_law", "projections", "read_csv", "reference_table",
]
