"""colab_tpu: the reproduction on a Colab TPU runtime, over several sessions, results on Google Drive or GCS.

Data: lm1b from TFDS in array_record format, built once where TensorFlow is installed (Colab) on local disk, since
array_record cannot write to gs:// (`tfds build lm1b --data_dir /content/tfds --file_format array_record`), then
copied to a bucket (`gsutil -m cp -r /content/tfds/lm1b gs://BUCKET/tfds/`); set CHINCHILLA_TFDS_DIR to
gs://BUCKET/tfds (copied back to local disk on first use: chinchilla/data/remote.py) or to a local directory.
CHINCHILLA_DATA_DIR stays the local cache root. Tokenizer: 32,000-piece SentencePiece BPE trained on its train split
(cached). Models: the ``gpu`` ladder (rotary, context 1024, 14M ... 1.1B parameters); the train step shards the
batch over the TPU's cores (``chinchilla.train``'s data x fsdp mesh).

Budgets: 2e16, 6e16, 2e17 FLOPs, five sizes each around the paper's own optimum (Table A3), total parameters:
about 1.4e18 FLOPs, i.e. several Colab sessions. Every command is resumable: a disconnect loses at most the steps
since the last checkpoint. Put the sweep directory on Drive (/content/drive/MyDrive/...) or gs://; split the
sweep over sessions or machines with --worker i --num-workers n on the same directory.

Hyperparameters as in the ``gpu`` preset (lr(N) = 2e-3 (N / 20M)^(-1/3) capped at 3e-3, 2% warm-up, cosine to
0.1x) but batch 4 x 1024 tokens, what one v5e chip's 16 GiB holds (tests/test_memory.py checks the largest run,
gpu-0090M, by XLA's memory analysis); like it, not yet checked on this hardware: run `--lr-check` first.
"""

import dataclasses
import os

from chinchilla.reproduce import load_preset

GPU = load_preset("gpu")
DATASET = "lm1b"
DATA_DIR = os.environ.get("CHINCHILLA_TFDS_DIR")  # where lm1b is prepared: local or gs://BUCKET/tfds
BATCH_SIZE = 4  # the largest power of two whose train step fits one TPU v5e chip (16 GiB; tests/test_memory.py)


def hparams(model, tokens):
    return {**GPU.hparams(model, tokens), "dataset": DATASET, "data_dir": DATA_DIR, "batch_size": BATCH_SIZE}


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
