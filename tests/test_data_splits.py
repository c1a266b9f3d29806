"""Splits and remote data: a TFDS data set without ``validation`` evaluates on ``test`` (lm1b) or on a held-out
slice of ``train``, and says which; a ``gs://`` data dir works with every tokenizer (the cache stays local); a
SentencePiece model is trained by process 0 only; the colab_tpu recipe trains and evaluates end to end with tiny
stand-ins (a train/test-only TFDS data set in a fake bucket, SentencePiece, a tiny model)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

from chinchilla import data, zoo
from chinchilla.data import corpus, files, remote, sources, tokenizers

BUCKET = "gs://bucket/tfds"


def _verses(start: int, stop: int):
    for i, line in enumerate(corpus.read_text("kjv/kjv.jsonl").splitlines()[start:stop]):
        yield f"{start + i}", {"text": json.loads(line)["text"]}


class ChinchillaTestTrainTest(tfds.core.GeneratorBasedBuilder):
    """Like lm1b: only train and test splits."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()}))

    def _split_generators(self, dl_manager):  # noqa: ARG002
        return {"train": self._generate_examples(0, 4000), "test": self._generate_examples(4000, 4400)}

    def _generate_examples(self, start, stop):
        yield from _verses(start, stop)


class ChinchillaTestTrainOnly(ChinchillaTestTrainTest):
    """Only a train split."""

    def _split_generators(self, dl_manager):  # noqa: ARG002
        return {"train": self._generate_examples(0, 4000)}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    for cls in (ChinchillaTestTrainTest, ChinchillaTestTrainOnly):
        cls(data_dir=root, file_format="array_record").download_and_prepare()
    return root


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def bucket(tfds_dir, monkeypatch, cache_dir):
    """gs://bucket/tfds/... resolves to the prepared local TFDS dir through epath (as in test_remote_data)."""

    def fake_remote(url):
        assert url.startswith(BUCKET)
        return epath.Path(url.replace(BUCKET, str(tfds_dir)))

    monkeypatch.setattr(remote, "_remote", fake_remote)
    return BUCKET


def test_a_missing_validation_split_evaluates_on_test_and_says_so(tfds_dir, cache_dir):
    assert sources.available_splits("chinchilla_test_train_test", data_dir=tfds_dir) == ("train", "test")
    choice = data.resolve_split("chinchilla_test_train_test", "validation", data_dir=tfds_dir)
    assert (choice.source, choice.name) == ("test", "test") and "no 'validation' split" in choice.note
    it = data.batches("chinchilla_test_train_test", split="validation", seq_len=32, batch_size=2, data_dir=tfds_dir)
    assert it.split_used == "test" and "evaluating on 'test'" in it.split_note
    test = data.split_tokens("chinchilla_test_train_test", split="test", data_dir=tfds_dir)
    assert it.tokens_per_epoch == len(test)
    train = data.batches("chinchilla_test_train_test", seq_len=32, batch_size=2, data_dir=tfds_dir)
    assert train.split_used == "train" and train.split_note is None  # train keeps every train document
    with pytest.raises(ValueError, match=r"split='dev'.*\('train', 'test'\)"):
        data.batches("chinchilla_test_train_test", split="dev", data_dir=tfds_dir)


def test_a_train_only_data_set_holds_out_a_slice_of_train_by_text_hash(tfds_dir, cache_dir):
    name = "chinchilla_test_train_only"
    choice = data.resolve_split(name, "validation", data_dir=tfds_dir)
    assert choice.name == "train[held-out 1%]" and "neither 'validation' nor 'test'" in choice.note
    tok = tokenizers.ByteTokenizer()
    held = bytes(sources.tokenize_split(name, "validation", tok, data_dir=tfds_dir)).split(b"\0")[:-1]
    kept = bytes(sources.tokenize_split(name, "train", tok, data_dir=tfds_dir)).split(b"\0")[:-1]
    every = [d["text"].encode() for _, d in _verses(0, 4000)]
    assert 10 < len(held) < 80 and len(held) + len(kept) == len(every)
    assert sorted(held) == sorted(d for d in every if files.is_validation(d, sources.HELDOUT_FRACTION))
    assert not set(held) & set(kept)
    assert (
        data.batches(name, split="validation", seq_len=16, batch_size=2, data_dir=tfds_dir).split_used
        == "train[held-out 1%]"
    )


@pytest.mark.parametrize("tokenizer", ["byte", "sentencepiece:400"])
def test_a_bucket_data_dir_works_with_every_tokenizer_and_the_cache_stays_local(bucket, cache_dir, tokenizer):
    it = data.batches("chinchilla_test_train_test", tokenizer=tokenizer, seq_len=32, batch_size=2, data_dir=bucket)
    assert next(it).max() < it.vocab_size
    evaluation = data.batches(
        "chinchilla_test_train_test", split="validation", tokenizer=tokenizer, seq_len=32, batch_size=2, data_dir=bucket
    )
    assert evaluation.split_used == "test"
    if tokenizer != "byte":
        assert it.tokenizer.model_file.is_relative_to(cache_dir / "tokenizers")
    assert (cache_dir / "tfds-remote" / "gs" / "bucket" / "tfds" / "chinchilla_test_train_test").is_dir()
    assert list((cache_dir / "tokens").rglob("unit-000000.json"))


def test_sentencepiece_is_trained_by_process_zero_only(bucket, cache_dir, tmp_path, monkeypatch):
    """Process 0 trains (or reads its cached model) and broadcasts the bytes; another host with its own, empty
    cache stores them and never trains."""
    model = data.get_tokenizer("sentencepiece:400", dataset="chinchilla_test_train_test", data_dir=bucket)
    sent = []

    def broadcast(payload, process_index):  # stands in for jax's broadcast_one_to_all across two processes
        sent.append((process_index, len(payload)))
        return model.model_file.read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("only process 0 trains the tokenizer")

    monkeypatch.setattr(sources, "_broadcast_bytes", broadcast)
    monkeypatch.setattr(tokenizers, "train_sentencepiece", no_training)
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(tmp_path / "host1"))  # the other host's own cache root
    tok = data.get_tokenizer(
        "sentencepiece:400", dataset="chinchilla_test_train_test", data_dir=bucket, process_index=1, process_count=2
    )
    assert sent == [(1, 0)] and tok.fingerprint == model.fingerprint
    assert tok.model_file.is_relative_to(tmp_path / "host1")


def test_each_host_builds_its_own_units_first(cache_dir, tmp_path, monkeypatch):
    """With process_count=2 (hosts sharing a cache), host 1 builds the odd units first, then the rest (already
    built by host 0 on a shared file system, otherwise built here)."""
    monkeypatch.setattr(files, "UNIT_BYTES", 2_000)
    shard = tmp_path / "d" / "a.jsonl"
    shard.parent.mkdir()
    shard.write_text("".join(json.dumps(d) + "\n" for _, d in _verses(0, 400)))
    order = []
    real = sources.token_cache.build_unit

    def recording(reader, unit, index, *args, **kwargs):
        order.append(index)
        return real(reader, unit, index, *args, **kwargs)

    monkeypatch.setattr(sources.token_cache, "build_unit", recording)
    sources.token_array(
        f"files:{shard.parent}/*.jsonl",
        "train",
        tokenizers.ByteTokenizer(),
        workers=1,
        process_index=1,
        process_count=2,
    )
    units = len(files.units(files.parse(f"files:{shard.parent}/*.jsonl")))
    assert units > 4 and order == list(range(1, units, 2)) + list(range(0, units, 2))


def test_colab_tpu_recipe_trains_and_evaluates_with_tiny_stand_ins(bucket, cache_dir, tmp_path, monkeypatch):
    """The colab_tpu preset's hyperparameters; lm1b -> a train/test-only TFDS set in a fake gs:// bucket,
    sentencepiece:32000 -> sentencepiece:400, the gpu ladder -> tiny-00004k."""
    from chinchilla.preset import load_preset
    from chinchilla.train import TrainConfig, train_run

    model = zoo.get_model("tiny-00004k").replace(vocab_size=400, seq_len=64)
    hparams = load_preset("colab_tpu").hparams(model, 2_000)
    assert hparams["dataset"] == "lm1b" and hparams["tokenizer"].startswith("sentencepiece:")
    hparams.update(
        dataset="chinchilla_test_train_test",
        tokenizer="sentencepiece:400",
        data_dir=bucket,
        eval_every=10,
        eval_batches=2,
        log_every=5,
        checkpoint_every=1000,
    )
    config = TrainConfig(
        model=model, tokens=20 * hparams["batch_size"] * model.seq_len, steps_per_dispatch=5, **hparams
    )
    summary = train_run(config, tmp_path / "run", progress=False)
    assert summary["status"] == "finished" and summary["steps"] == 20
    assert math.isfinite(summary["eval_loss"])
    assert summary["eval_split"] == "test"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [10, 20]
    assert np.isfinite([r["loss"] for r in rows]).all()


def test_two_real_processes_share_process_zeros_tokenizer_without_a_shared_cache(tmp_path):
    """Two JAX processes (local coordinator, CPU), each with its own cache root: process 0 trains, process 1 gets
    the same model through the broadcast and never trains."""
    import os
    import socket
    import subprocess
    import sys
    import textwrap

    shard = tmp_path / "d" / "a.jsonl"
    shard.parent.mkdir()
    shard.write_text("".join(json.dumps(d) + "\n" for _, d in _verses(0, 3000)))
    script = tmp_path / "host.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, sys
        from chinchilla import sharding
        sharding.maybe_initialize_distributed()
        import jax
        from chinchilla import data
        from chinchilla.data import tokenizers
        if jax.process_index() == 1:
            def no_training(*args, **kwargs):
                raise AssertionError("process 1 trained a tokenizer")
            tokenizers.train_sentencepiece = no_training
        tok = data.get_tokenizer("sentencepiece:400", dataset="files:{shard.parent}/*.jsonl",
                                 process_index=jax.process_index(), process_count=jax.process_count())
        print(json.dumps({{"process": jax.process_index(), "fingerprint": tok.fingerprint,
                          "file": str(tok.model_file)}}))
    """)
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = []
    for process in range(2):
        env = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": str(process),
            "CHINCHILLA_DATA_DIR": str(tmp_path / f"cache{process}"),
        }
        runs.append(
            subprocess.Popen(
                [sys.executable, str(script)],
                env=env,
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [run.communicate(timeout=180) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert reports[0]["fingerprint"] == reports[1]["fingerprint"]
    assert reports[1]["file"].startswith(str(tmp_path / "cache1"))  # its own copy, in its own cache
