"""synthetic: the whole pipeline in seconds, with runs drawn from a known loss surface instead of trained.

Each "run" writes a training curve from L(N, D) = 1.2 + 60 / N^0.4 + 300 / D^0.35 (N = non-embedding parameters of
the ``tiny`` ladder, D = tokens), plus an un-annealed-cosine excess that vanishes at the end of the run and 0.003
nats of noise per logged step (``chinchilla.sweep.synthetic``). Under C = 6ND the compute-optimal exponent is
a = 0.35 / 0.75 = 0.467; our budgets count exact Appendix F FLOPs, which at this scale exceed 6ND by a factor that
varies with size, so the recovered a may differ somewhat. Use it to check an installation, the report and the
figures, without training: `chinchilla reproduce --preset synthetic --out DIR` takes seconds.
"""

from chinchilla import zoo
from chinchilla.analysis.report import AnalysisSettings
from chinchilla.fit.allocate import ChinchillaParams
from chinchilla.preset import Preset
from chinchilla.sweep.synthetic import SyntheticTrainer

SURFACE = ChinchillaParams(E=1.2, A=60.0, B=300.0, alpha=0.4, beta=0.35, source="chinchilla/presets/synthetic.py")

PRESET = Preset(
    name="synthetic",
    description="synthetic runs from a known loss surface on the tiny ladder (no training)",
    ladder=zoo.ladder("tiny"),
    budgets=(1e11, 3e11, 1e12, 3e12, 1e13),
    hparams=lambda model, tokens: {"batch_size": 8, "lr": 0.01},
    center=(1e12, 2.4e4, SURFACE.a),
    sizes_per_budget=7,
    convention="non_embedding",
    min_steps=100,
    analysis=AnalysisSettings(loss="final_train_loss", neighbours=3, n_resamples=50, approach3_resamples=10),
    trainer=SyntheticTrainer(surface=SURFACE, noise=0.003, log_points=200, convention="non_embedding"),
)
