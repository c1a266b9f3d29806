"""colab_tpu: the reproduction on a Colab TPU runtime, over several sessions, results on Google Drive or GCS.

Data: lm1b from TFDS in array_record format, built once where TensorFlow is installed (Colab) on local disk, since
array_record cannot write to gs:// (`tfds build lm1b --data_dir /content/tfds --file_format array_record`), then
copied to a bucket (`gsutil -m cp -r /content/tfds/lm1b gs://BUCKET/tfds/`); set CHINCHILLA_TFDS_DIR to
gs://BUCKET/tfds (copied back to local disk on first use: chinchilla/data/remote.py) or to a local directory.
CHINCHILLA_DATA_DIR stays the local cache root (the tokenizer and token cache stay local when the source is gs://).
Tokenizer: 32,000-piece SentencePiece BPE trained on its train split (cached; process 0 trains it, other hosts get
it by broadcast). lm1b has no validation split: runs evaluate on its test split (``eval_split`` in summary.json).
lm1b holds ~1B tokens, so the largest runs see it ~1.5 times (a DataRepeatWarning says so); for fresh tokens use the
gpu preset's FineWeb-Edu shards on the runtime's disk (docs/data.md) with `dataset="files:..."`. Models: the ``gpu``
ladder (rotary, context 1024, 14M ... 1.1B parameters); the train step shards the
batch over the TPU's cores (``chinchilla.train``'s data x fsdp mesh).

Budgets: 2e16, 6e16, 2e17 FLOPs, five sizes each around the paper's own optimum (Table A3), total parameters:
about 1.4e18 FLOPs, i.e. several Colab sessions. Every command is resumable: a disconnect loses at most the steps
since the last checkpoint. Put the sweep directory on Drive (/content/drive/MyDrive/...) or gs://; several
runtimes or machines may work on the same directory at once: each claims the next unclaimed run
(docs/several-hosts.md).

Hyperparameters as in the ``gpu`` preset: its batch rule (DeepSeek's B_opt(C) as a power of two, >= 64 x 1024
tokens, >= 1,000 steps: 64 sequences at 2e16 and 6e16 FLOPs, 128 at 2e17), lr(N, B) = 2e-3 (N / 20M)^(-1/3)
(B / 64)^(1/2) capped at 3e-3, 2% warm-up, cosine to 0.1x. At 64 sequences the 2e16 budget keeps the four sizes with
>= 1,000 steps (gpu-0014M ... gpu-0035M). Memory: ``PLANS`` below, `chinchilla memory --chip v5e`'s fastest plan at
64 sequences within 85% of one v5e chip's 16 GiB (>= 15% headroom), larger batches as more micro-steps of that size;
attention_impl "auto" runs the Pallas splash kernel on the TPU. Like the gpu preset's, not yet checked on this
hardware: run `--lr-check` first.
"""

import dataclasses
import os

from chinchilla.preset import load_preset

GPU = load_preset("gpu")
DATASET = "lm1b"
DATA_DIR = os.environ.get("CHINCHILLA_TFDS_DIR")  # where lm1b is prepared: local or gs://BUCKET/tfds
# model -> (micro_batch_size, remat): `chinchilla memory --model M --batch-size 64 --chip v5e`'s fastest plan within
# 85% of one v5e chip's 16 GiB, for every model of this preset; larger batches run more micro-steps of the same size
# (tests/test_memory.py checks every run with >= 15% headroom).
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
    model the table lacks gets a conservative plan (micro-batches of at most 4 sequences, full remat; run
    ``chinchilla memory --chip v5e`` for the fastest)."""
    micro, remat = PLANS.get(model.name, (4, "full"))
    return min(micro, batch), remat


def hparams(model, tokens):
    """The gpu preset's (batch rule, lr rule, schedule) with this chip's memory plan and data."""
    train = {**GPU.hparams(model, tokens), "dataset": DATASET, "data_dir": DATA_DIR}
    micro, remat = memory_plan(model, train["batch_size"])
    return {**train, "micro_batch_size": micro, "remat": remat, "attention_impl": "auto"}


# The gpu preset's ladder, size-window centre, parameter convention, run-length floor and analysis; smaller budgets.
PRESET = dataclasses.replace(
    GPU,
    name="colab_tpu",
    description="IsoFLOP sweep on a Colab TPU: gpu ladder, 2e16-2e17 FLOPs, lm1b with a 32k SentencePiece vocabulary",
    budgets=(2e16, 6e16, 2e17),
    hparams=hparams,
    sizes_per_budget=5,
    lr_check_budget=6e16,
    lr_check_models=("gpu-0020M", "gpu-0035M"),
)
