"""code_vs_text: the paper's Table A2 (text vs code) at tiny scale: tiny_cpu's whole design on two data sets.

The embedded English corpus and Python's standard-library source (``embedded/code``, byte tokens): 2 x 60 runs,
6.9e13 FLOPs, 13.8 min on an idle 2-core machine (goal: 30 min).

    chinchilla reproduce --preset code_vs_text --compare-datasets embedded embedded/code --out DIR

writes DIR/embedded/, DIR/embedded__code/ (each a full report) and DIR/table_a2.md. The design:
docs/presets.md#code_vs_text; results: docs/results.md#code-vs-text-the-papers-table-a2.
"""

import dataclasses

from chinchilla.preset import load_preset

TINY = load_preset("tiny_cpu")

PRESET = dataclasses.replace(
    TINY,  # 5 budgets, 2 seeds near the minima, dedicated curve runs: seed noise in the intervals, as in tiny_cpu
    name="code_vs_text",
    description="tiny_cpu's whole design (IsoFLOP 1e11-1.6e12 FLOPs, 2 seeds near the minima, curve runs) for a "
    "comparison across data sets",
)
