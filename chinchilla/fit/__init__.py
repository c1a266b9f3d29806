"""Scaling-law fitting: consumes a table of runs (N, D, C, loss), knows nothing of training.

Approach 1 (training-curve envelope) lives in :mod:`chinchilla.fit.envelope`, Approach 2 (IsoFLOP profiles) in
:mod:`chinchilla.fit.isoflop`, both on the log-log fits of :mod:`chinchilla.fit.powerlaw`; Approach 3 (the parametric
loss law) in :mod:`chinchilla.fit.parametric`. Importing this package loads jax, optax and
numpy, never flax, tensorflow-datasets or orbax.
"""

from chinchilla.fit.allocate import PAPER_FIT, ChinchillaParams, exact_flops_optimum, projections
from chinchilla.fit.bootstrap import BootstrapResult, bootstrap_parametric, bootstrap_table
from chinchilla.fit.envelope import Curve, EnvelopeResult, fit_envelope
from chinchilla.fit.holdout import HoldoutResult, holdout_check
from chinchilla.fit.isoflop import IsoFlopResult, fit_isoflop
from chinchilla.fit.laws import CHINCHILLA, DATA_CONSTRAINED, ChinchillaLaw, DataConstrainedLaw, FixedLaw, get_law
from chinchilla.fit.parametric import ParametricFit, fit_core, fit_parametric, fit_table
from chinchilla.fit.powerlaw import PowerLaw, fit_power_law
from chinchilla.fit.table import ScalingTable, read_csv, reference_table
from chinchilla.paper import GOPHER_FLOPS

__all__ = [
    "Curve",
    "EnvelopeResult",
    "IsoFlopResult",
    "PowerLaw",
    "fit_envelope",
    "fit_isoflop",
    "fit_power_law",
    "CHINCHILLA",
    "DATA_CONSTRAINED",
    "GOPHER_FLOPS",
    "PAPER_FIT",
    "BootstrapResult",
    "ChinchillaLaw",
    "ChinchillaParams",
    "DataConstrainedLaw",
    "FixedLaw",
    "HoldoutResult",
    "ParametricFit",
    "ScalingTable",
    "bootstrap_parametric",
    "bootstrap_table",
    "exact_flops_optimum",
    "fit_core",
    "fit_parametric",
    "fit_table",
    "get_law",
    "holdout_check",
    "projections",
    "read_csv",
    "reference_table",
]
