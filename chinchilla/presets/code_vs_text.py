"""code_vs_text: the paper's Table A2 (MassiveText vs GitHub code) at tiny scale: the whole ``tiny_cpu`` design
(5 IsoFLOP budgets 1e11 ... 1.6e12 FLOPs, 2 seeds at the 3 sizes nearest each guessed minimum, dedicated Approach 1
runs: 4 staggered cycle lengths spanning 16x for each size from 6k to 25k, Approach 3 on all final losses) on the
embedded English corpus and on Python's standard-library source (``embedded/code``, byte tokens): 2 x 60 runs,
6.9e13 FLOPs in all. Intervals include seed noise, as in ``tiny_cpu``.

    chinchilla reproduce --preset code_vs_text --compare-datasets embedded embedded/code --out DIR

writes ``DIR/embedded/``, ``DIR/embedded__code/`` (each a full report) and ``DIR/table_a2.md``. The earlier form of
this preset (4 budgets, one seed, no curve runs: 1.5e13 FLOPs) took 4.8 min on an idle 2-core machine; the
comparison's goal is 30 min, so the time went into seeds and Approach 1's own runs instead.
"""

import dataclasses

from chinchilla.preset import load_preset

TINY = load_preset("tiny_cpu")

PRESET = dataclasses.replace(
    TINY,
    name="code_vs_text",
    description="tiny_cpu's whole design (IsoFLOP 1e11-1.6e12 FLOPs, 2 seeds near the minima, curve runs) for a "
    "comparison across data sets",
)
