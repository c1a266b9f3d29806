"""paper: the paper's IsoFLOP grid (Approach 2) as a plan, printable and costed on any machine (not runnable).

Nine budgets, 6e18-3e21 FLOPs, over the 50 shapes of Table A9: about 230 runs and 1.2e23 FLOPs.

    chinchilla sweep --preset paper --plan-only

The grid's sources and assumptions: docs/presets.md#paper.
"""

from chinchilla import zoo
from chinchilla.preset import Preset
from chinchilla.sweep.plan import PAPER_APPROACH2_ANCHOR, PAPER_BUDGETS, paper_hparams

PRESET = Preset(
    name="paper",
    description="the paper's IsoFLOP grid: 9 budgets 6e18-3e21 FLOPs over Table A9 shapes (a plan only)",
    ladder=zoo.ladder("chinchilla"),  # Table A9's 50 shapes: vocabulary 32,000, context 2048
    budgets=PAPER_BUDGETS,  # Section 3.2's nine budgets, 6e18 ... 3e21 FLOPs
    hparams=paper_hparams,  # lr 2e-4 (smallest) to 1.25e-4 (largest) as in Section 4; batch 256 x 2048 assumed
    center=PAPER_APPROACH2_ANCHOR,  # the paper's Approach 2 optimum (Table A3: 400M at 1.84e19 FLOPs, a = 0.49)
    span=4.0,  # the shapes within a factor 4 of it at each budget
    convention="total",  # the paper's
    runnable=False,  # 1.2e23 FLOPs: printed and costed, never trained
)
