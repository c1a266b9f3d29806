"""The data pipeline: embedded corpus, tokenizers, packed batches (determinism, resume, sharding, epochs)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from chinchilla import data
from chinchilla.data import corpus, sources


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A fresh cache root for this module: the corpus and token arrays are built here, once."""
    return tmp_path_factory.mktemp("chinchilla-data")


def test_byte_tokenizer_round_trips_any_text():
    tok = data.get_tokenizer("byte")
    text = "Hamlet.\nTo be, or not to be,\tthat is  the question: Æsir ünïcödé 😀\n\n"
    ids = tok.encode(text)
    assert ids.dtype == np.int32 and tok.vocab_size == 256
    assert ids.min() >= 0 and ids.max() < 256
    assert len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text


def test_batches_shape_dtype_and_rows_are_contiguous_text(data_dir):
    it = data.batches(seq_len=64, batch_size=4, data_dir=data_dir)
    batch = next(it)
    assert batch.shape == (4, 65) and batch.dtype == np.int32
    assert it.vocab_size == 256
    text = bytes(np.asarray(data.split_tokens(data_dir=data_dir))).decode("utf-8")
    assert it.tokens_per_epoch == len(text.encode("utf-8"))
    for row in batch:  # each row is a window of the packed split (documents joined by byte 0)
        assert bytes(row.astype(np.uint8).tolist()).decode("utf-8") in text


def test_same_seed_same_batches_other_seed_differs(data_dir):
    def first(seed, n=3):
        it = data.batches(seq_len=32, batch_size=4, seed=seed, data_dir=data_dir)
        return np.stack([next(it) for _ in range(n)])

    np.testing.assert_array_equal(first(0), first(0))
    assert not np.array_equal(first(0), first(1))


def test_resume_from_state_yields_the_same_batches(data_dir):
    kwargs = dict(seq_len=32, batch_size=8, seed=3, data_dir=data_dir)
    it = data.batches(**kwargs)
    for _ in range(5):
        next(it)
    state = json.loads(json.dumps(it.get_state()))  # what a checkpoint stores
    expected = [next(it) for _ in range(4)]
    resumed = data.batches(**kwargs)
    resumed.set_state(state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed), want)
    with pytest.raises(ValueError, match="seed"):
        data.batches(**{**kwargs, "seed": 4}).set_state(state)


def test_process_shards_are_disjoint_slices_of_the_global_batch(data_dir):
    kwargs = dict(seq_len=32, seed=5, data_dir=data_dir)
    whole = data.batches(batch_size=12, **kwargs)
    shards = [data.batches(batch_size=3, process_index=i, process_count=4, **kwargs) for i in range(4)]
    for _ in range(3):
        parts = [next(shard) for shard in shards]
        np.testing.assert_array_equal(np.concatenate(parts), next(whole))
        rows = {row.tobytes() for part in parts for row in part}
        assert len(rows) == 12  # no row is read by two processes
    assert shards[1].get_state()["step"] == shards[3].get_state()["step"]  # hosts store one shared state
    with pytest.raises(ValueError, match="process_index"):
        data.batches(batch_size=3, process_index=4, process_count=4, **kwargs)


def test_validation_split_is_disjoint_from_train(data_dir):
    builder = corpus.builder("all", data_dir)
    ids = {split: {r["id"] for r in builder.as_data_source(split=split)} for split in ("train", "validation")}
    assert ids["train"] and ids["validation"] and not ids["train"] & ids["validation"]
    assert all(corpus.split_of(i.decode()) == "validation" for i in ids["validation"])
    train, valid = (len(data.split_tokens(split=s, data_dir=data_dir)) for s in ("train", "validation"))
    assert 0.02 < valid / (train + valid) < 0.10
    a = next(data.batches(split="validation", seq_len=32, batch_size=4, data_dir=data_dir))
    b = next(data.batches(split="train", seq_len=32, batch_size=4, data_dir=data_dir))
    assert not np.array_equal(a, b)


def test_halves_add_up_to_the_whole_corpus(data_dir):
    whole = len(data.split_tokens("embedded", data_dir=data_dir))
    halves = [len(data.split_tokens(name, data_dir=data_dir)) for name in ("embedded/shakespeare", "embedded/kjv")]
    assert sum(halves) == whole
    assert min(halves) > 3_000_000  # both halves are megabytes of text
    import sys

    assert "tensorflow" not in sys.modules  # TFDS builds and reads array_record without TensorFlow


def test_warns_once_when_data_repeats(data_dir):
    it = data.batches(split="validation", seq_len=128, batch_size=64, data_dir=data_dir)
    steps = it.steps_in_epoch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            next(it)
        assert not caught and it.epoch == 1
        for _ in range(2 * steps + 2):  # into the second and the third epoch
            next(it)
    repeats = [w for w in caught if issubclass(w.category, data.DataRepeatWarning)]
    assert len(repeats) == 1
    assert "epoch 2" in str(repeats[0].message) and "validation" in str(repeats[0].message)
    assert data.epochs_needed(2 * it.tokens_per_epoch, split="validation", data_dir=data_dir) == 2.0


def test_unknown_datasets_raise_clear_errors(data_dir):
    with pytest.raises(ValueError, match="no_such_dataset_xyz"):
        data.batches("no_such_dataset_xyz", data_dir=data_dir)
    with pytest.raises(ValueError, match="embedded/poems"):
        data.batches("embedded/poems", data_dir=data_dir)
    with pytest.raises(ValueError, match="split='test'"):
        data.batches(split="test", data_dir=data_dir)
    with pytest.raises(ValueError, match="tokenizer='wordpiece'"):
        data.get_tokenizer("wordpiece")


def test_unigram_entropy_matches_token_frequencies(data_dir):
    tokens = np.asarray(data.split_tokens(data_dir=data_dir))
    p = np.bincount(tokens, minlength=256) / len(tokens)
    p = p[p > 0]
    h = data.unigram_entropy(data_dir=data_dir)
    assert h == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)
    assert 2.5 < h < np.log(256)  # English bytes: well below uniform


def test_sentencepiece_round_trip_is_exact_and_cached(data_dir):
    tok = data.get_tokenizer("sentencepiece:400", dataset="embedded/kjv", data_dir=data_dir)
    assert tok.vocab_size == 400
    text = "In the beginning  God\ncreated\n\n\tthe heaven; Æ ünïcödé 😀 x\x01y  "
    assert tok.decode(tok.encode(text)) == text
    again = data.get_tokenizer(str(tok.model_file))  # a .model path loads the cached file
    assert again.fingerprint == tok.fingerprint
    it = data.batches("embedded/kjv", tokenizer=tok, seq_len=32, batch_size=2, data_dir=data_dir)
    batch = next(it)
    assert it.vocab_size == 400 and batch.max() < 400
    assert it.tokens_per_epoch < 0.75 * len(data.split_tokens("embedded/kjv", data_dir=data_dir))  # merges


def test_resume_across_an_epoch_boundary_and_epochs_reshuffle(data_dir):
    kwargs = dict(split="validation", seq_len=128, batch_size=32, seed=2, data_dir=data_dir, warn_repeats=False)
    it = data.batches(**kwargs)
    steps = it.steps_in_epoch
    first_epoch = [next(it) for _ in range(steps - 1)]
    state = it.get_state()
    expected = [next(it) for _ in range(3)]  # the last batch of epoch 0, then two of epoch 1
    resumed = data.batches(**kwargs)
    resumed.set_state(state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed), want)
    assert resumed.get_state()["epoch"] == 1
    assert not np.array_equal(expected[1], first_epoch[0])  # a new epoch is a new order


def test_any_prepared_tfds_text_dataset_reads_through_the_same_path(data_dir):
    corpus.builder("kjv", data_dir)  # a prepared array_record TFDS data set under <data_dir>/tfds
    tfds_dir = data_dir / "tfds"
    by_name = data.split_tokens("chinchilla_embedded/kjv", data_dir=tfds_dir)
    np.testing.assert_array_equal(by_name, data.split_tokens("embedded/kjv", data_dir=data_dir))
    first = data.split_tokens("chinchilla_embedded/kjv", data_dir=tfds_dir, max_documents=2)
    assert bytes(np.asarray(first)).count(b"\0") == 2
    assert bytes(np.asarray(by_name)).startswith(bytes(np.asarray(first)))
    with pytest.raises(ValueError, match="text_key='body'"):
        data.batches("chinchilla_embedded/kjv", data_dir=tfds_dir, text_key="body")


def test_build_once_builds_once_under_concurrency(tmp_path):
    import threading
    import time

    calls = []

    def write(tmp):
        calls.append(tmp)
        time.sleep(0.2)  # long enough for the other threads to arrive while the file is missing
        tmp.write_text("built")

    target = tmp_path / "artifact.txt"
    threads = [threading.Thread(target=sources.cache.build_once, args=(target, write)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and target.read_text() == "built"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact.txt", "artifact.txt.lock"]
