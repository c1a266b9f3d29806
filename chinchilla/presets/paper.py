"""paper: the paper's IsoFLOP grid (Approach 2) as a plan, printable and costed on any machine.

Nine budgets, 6e18 ... 3e21 FLOPs (Hoffmann et al. 2022, Section 3.2), over the 50 shapes of Table A9 (the paper's
architecture, vocabulary 32,000, context 2048); at each budget the shapes within a factor 4 of the paper's own
Approach 2 optimum (Table A3: 400M parameters at 1.84e19 FLOPs, a = 0.49). Tokens come from the exact Appendix F
count; the learning rate goes from 2e-4 (smallest) to 1.25e-4 (largest) as in Section 4; the batch of 256 x 2048
tokens is our assumption (the paper gives none for these runs). About 230 runs and 1.2e23 FLOPs: this preset is
``runnable=False``; `chinchilla sweep --preset paper --plan-only` prints it.
"""

from chinchilla import zoo
from chinchilla.preset import Preset
from chinchilla.sweep.plan import PAPER_APPROACH2_ANCHOR, PAPER_BUDGETS, paper_hparams

PRESET = Preset(
    name="paper",
    description="the paper's IsoFLOP grid: 9 budgets 6e18-3e21 FLOPs over Table A9 shapes (a plan only)",
    ladder=zoo.ladder("chinchilla"),
    budgets=PAPER_BUDGETS,
    hparams=paper_hparams,
    center=PAPER_APPROACH2_ANCHOR,
    span=4.0,
    convention="total",
    runnable=False,
)
