"""``chinchilla fit <approach>``: fit scaling laws to a CSV of runs, a sweep, or the shipped reference points.

This module adds the ``fit`` verb; each approach is a sub-verb defined, with its parser, handler and printing, in a
module of its own that has a ``register(approaches)`` function:

- ``parametric`` (:mod:`chinchilla.cli.fit_parametric`): Approach 3, L(N, D) = E + A / N^alpha + B / D^beta by
  L-BFGS from the paper's 4,500-start grid (``chinchilla.fit.parametric``), with optional bootstrap intervals and a
  held-out extrapolation check.
- ``approach1`` (:mod:`chinchilla.cli.fit_approach1`): the lower envelope of a sweep directory's training curves
  (``chinchilla.fit.envelope``).
- ``approach2`` (:mod:`chinchilla.cli.fit_approach2`): IsoFLOP parabolas on a sweep directory or a results CSV
  (``chinchilla.fit.isoflop``).

What they share: reading runs and the flags naming a table's columns (:mod:`chinchilla.cli.fit_inputs`), ``--json``
output and progress lines (:mod:`chinchilla.cli.output`), and Approaches 1 and 2's power laws of C
(:mod:`chinchilla.cli.fit_powerlaws`).
"""

from __future__ import annotations

import argparse

from chinchilla.cli import fit_approach1, fit_approach2, fit_parametric
from chinchilla.cli.usage import StrictParser, strict


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = strict(
        subparsers.add_parser(
            "fit",
            help="fit scaling laws (Approach 1, 2 or 3) to a CSV, a sweep directory or the paper's points",
            description="Fit scaling laws to training runs from a CSV file or a sweep directory, or to the paper's "
            "points shipped with the package (--reference epoch).",
        )
    )
    approaches = parser.add_subparsers(dest="approach", metavar="<approach>", required=True, parser_class=StrictParser)
    fit_parametric.register(approaches)
    fit_approach1.register(approaches)
    fit_approach2.register(approaches)
