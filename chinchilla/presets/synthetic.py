"""synthetic: the whole pipeline in seconds, with runs drawn from a known loss surface instead of trained.

Each "run" writes a training curve from L(N, D) = 1.2 + 60 / N^0.4 + 300 / D^0.35 plus noise; use it to check an
installation, the report and the figures without training.

    chinchilla reproduce --preset synthetic --out DIR

The surface and the exponent to expect: docs/presets.md#synthetic.
"""

from chinchilla import zoo
from chinchilla.analysis.report import AnalysisSettings
from chinchilla.fit.allocate import ChinchillaParams
from chinchilla.preset import Preset
from chinchilla.sweep.synthetic import SyntheticTrainer

# Under C = 6ND its optimum has a = beta / (alpha + beta) = 0.467; budgets count exact FLOPs, so the fits may differ.
SURFACE = ChinchillaParams(E=1.2, A=60.0, B=300.0, alpha=0.4, beta=0.35, source="chinchilla/presets/synthetic.py")

PRESET = Preset(
    name="synthetic",
    description="synthetic runs from a known loss surface on the tiny ladder (no training)",
    ladder=zoo.ladder("tiny"),  # N is the non-embedding parameter count of the tiny ladder's shapes
    budgets=(1e11, 3e11, 1e12, 3e12, 1e13),
    hparams=lambda model, tokens: {"batch_size": 8, "lr": 0.01},  # only fix each run's steps: nothing is trained
    center=(1e12, 2.4e4, SURFACE.a),  # the surface's optimum (under 6ND): the sizes bracket each minimum
    sizes_per_budget=7,
    convention="non_embedding",  # the surface's N
    min_steps=100,
    analysis=AnalysisSettings(  # resamples: seconds; the headline N is the surface's, so its a = 0.467 is the first
        loss="final_train_loss",
        neighbours=3,
        n_resamples=50,
        approach3_resamples=10,
        conventions=("non_embedding", "total"),
    ),
    trainer=SyntheticTrainer(  # curves drawn from SURFACE, plus an un-annealed-cosine excess gone by the run's end
        surface=SURFACE,
        noise=0.003,  # nats per logged step
        log_points=200,
        convention="non_embedding",
    ),
)
