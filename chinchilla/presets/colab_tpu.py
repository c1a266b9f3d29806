"""colab_tpu: the reproduction on a Colab TPU runtime (one v5e chip), over several sessions, results on Drive or GCS.

The gpu preset's ladder and rules on lm1b (TFDS, 32k SentencePiece) at 2e16-2e17 FLOPs, five sizes per budget:
~1.4e18 FLOPs, several Colab sessions, every command resumable. Not yet checked on a TPU: run --lr-check first.

    colab/01_reproduce_on_tpu.ipynb       # or: chinchilla reproduce --preset colab_tpu --out /content/drive/MyDrive/...

Data preparation: docs/data.md#preparing-data-for-each-preset; the design: docs/presets.md#colab_tpu.
"""

import dataclasses
import os

from chinchilla.preset import load_preset

GPU = load_preset("gpu")
DATASET = "lm1b"  # builds from TFDS without Beam; ~1B tokens: the largest runs see it ~1.5 times
DATA_DIR = os.environ.get("CHINCHILLA_TFDS_DIR")  # where lm1b is prepared: local or gs://BUCKET/tfds
# model -> (micro_batch_size, remat): `chinchilla memory --model M --batch-size 64 --chip v5e`'s fastest plan within
# 85% of one v5e chip's 16 GiB; larger batches run more micro-steps of the same size (tests/test_memory.py checks
# every run with >= 15% headroom).
PLANS = {
    "gpu-0014M": (64, "none"),  # 6.6 GiB of 16 at 64 sequences
    "gpu-0020M": (64, "none"),  # 11.0
    "gpu-0028M": (64, "dots"),  # 7.3
    "gpu-0035M": (64, "dots"),  # 8.7
    "gpu-0058M": (64, "full"),  # 5.9
    "gpu-0090M": (64, "full"),  # 8.0
}


def memory_plan(model, batch):
    """(micro_batch_size, remat) on one 16 GiB TPU v5e chip: the 64-sequence plan of ``PLANS`` at every batch; a
    model the table lacks gets micro-batches of at most 4 sequences with full remat (``chinchilla memory --chip v5e``
    gives the fastest)."""
    micro, remat = PLANS.get(model.name, (4, "full"))
    return min(micro, batch), remat


def hparams(model, tokens):
    """The gpu preset's (batch rule, lr rule, schedule) with this chip's memory plan and data; attention "auto" runs
    the Pallas splash kernel on the TPU."""
    train = {**GPU.hparams(model, tokens), "dataset": DATASET, "data_dir": DATA_DIR}
    micro, remat = memory_plan(model, train["batch_size"])
    return {**train, "micro_batch_size": micro, "remat": remat, "attention_impl": "auto"}


PRESET = dataclasses.replace(
    GPU,  # the gpu preset's ladder, size-window centre, parameter convention, 1,000-step floor and analysis
    name="colab_tpu",
    description="IsoFLOP sweep on a Colab TPU: gpu ladder, 2e16-2e17 FLOPs, lm1b with a 32k SentencePiece vocabulary",
    budgets=(2e16, 6e16, 2e17),  # ~1.4e18 FLOPs: several Colab sessions; 2e16 keeps the 4 sizes with >= 1,000 steps
    hparams=hparams,
    sizes_per_budget=5,
    lr_check_budget=6e16,  # `sweep --lr-check`: 2 sizes x 5 rates
    lr_check_models=("gpu-0020M", "gpu-0035M"),
)
