"""code_vs_text: the paper's Table A2 (MassiveText vs GitHub code) at tiny scale: the ``tiny_cpu`` IsoFLOP grid on
the embedded English corpus and on Python's standard-library source (``embedded/code``, byte tokens), one seed, no
dedicated training-curve runs (Approach 1 reads the IsoFLOP runs' curves), four budgets 1e11 ... 8e11 FLOPs:
2 x 20 runs, 1.5e13 FLOPs in all.

    chinchilla reproduce --preset code_vs_text --compare-datasets embedded embedded/code --out DIR

writes ``DIR/embedded/``, ``DIR/embedded__code/`` (each a full report) and ``DIR/table_a2.md``.
"""

import dataclasses

from chinchilla.reproduce import load_preset

TINY = load_preset("tiny_cpu")

PRESET = dataclasses.replace(
    TINY,
    name="code_vs_text",
    description="tiny_cpu's IsoFLOP grid (1e11-8e11 FLOPs, one seed) for a comparison across data sets",
    budgets=(1e11, 2e11, 4e11, 8e11),
    seeds=(0,),
    seed_sizes=None,
    curves=None,
)
