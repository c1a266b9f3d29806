"""Data a user brings (``files:GLOB`` over .txt / .jsonl / .parquet) and the sharded token cache: every document
read once in a fixed order, a train/validation split by text hash, one-line errors naming file and line, only the
needed tokens tokenised (counted), the cache reused and extended, worker processes on several cores."""

from __future__ import annotations

import json
import os
import socket
import warnings

import numpy as np
import pytest

from chinchilla import data
from chinchilla.data import corpus, files, sources, token_cache, tokenizers


@pytest.fixture(scope="module")
def documents():
    """~300 KJV chapters (real English, one document each) and one non-ASCII document."""
    chapters: dict[str, list[str]] = {}
    for line in corpus.read_text("kjv/kjv.jsonl").splitlines()[:8000]:
        verse = json.loads(line)
        chapters.setdefault(f"{verse['book']} {verse['chapter']}", []).append(verse["text"])
    docs = [" ".join(verses) for verses in chapters.values()]
    return docs[:150] + ["Æsir ünïcödé 😀 — «quoted»\ttab"] + docs[150:]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, documents):
    """The documents as jsonl (field "content", 3 shards), txt (paragraphs, 2 shards) and parquet (2 shards,
    row groups of 20), written in an order the sorted shard names undo."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("user-data")
    thirds = np.array_split(np.arange(len(documents)), 3)
    (root / "jsonl").mkdir()
    for i in (2, 0, 1):
        with open(root / "jsonl" / f"part-{i:02d}.jsonl", "w") as handle:
            for j in thirds[i]:
                handle.write(json.dumps({"id": int(j), "content": documents[j]}) + "\n")
    halves = np.array_split(np.arange(len(documents)), 2)
    (root / "txt" / "sub").mkdir(parents=True)
    for i, name in ((1, "sub/b.txt"), (0, "a.txt")):
        (root / "txt" / name).write_text("\n\n\n".join(documents[j] for j in halves[i]) + "\n")
    (root / "parquet").mkdir()
    for i in (1, 0):
        table = pa.table({"text": [documents[j] for j in halves[i]], "n": list(map(int, halves[i]))})
        pq.write_table(table, root / "parquet" / f"shard-{i}.parquet", row_group_size=20)
    return root


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def names(root):
    return {
        "jsonl": f"files:{root}/jsonl/*.jsonl?text_key=content",
        "txt": f"files:{root}/txt/**/*.txt",
        "parquet": f"files:{root}/parquet/*.parquet",
    }


@pytest.mark.parametrize("unit_bytes", [1 << 30, 5_000])
def test_every_format_reads_every_document_once_in_sorted_shard_order(shards, documents, monkeypatch, unit_bytes):
    """Whole files, or cut into many byte-range units (a line or paragraph straddling a cut is read once)."""
    monkeypatch.setattr(files, "UNIT_BYTES", unit_bytes)
    expected = [d.encode() for d in documents]
    for kind, name in names(shards).items():
        spec = files.parse(name)
        units = files.units(spec)
        assert (len(units) > 10) == (unit_bytes < 1 << 20 or kind == "parquet"), kind
        assert list(files.documents(spec)) == expected, kind
    lines = files.parse(f"files:{shards}/txt/**/*.txt?document=line")
    assert list(files.documents(lines)) == expected  # no document holds a newline: one line each


def test_split_is_by_a_hash_of_each_document_and_disjoint(shards, documents, cache_dir):
    name = names(shards)["jsonl"] + "&validation_fraction=0.1"
    want = {
        split: [d.encode() for d in documents if files.split_of(d.encode(), 0.1) == split]
        for split in ("train", "validation")
    }
    assert 10 <= len(want["validation"]) <= 60 and len(want["train"]) > 200
    for split in ("train", "validation"):
        tokens = bytes(np.asarray(data.split_tokens(name, split=split)))
        assert tokens.split(b"\0")[:-1] == want[split]
    # the same documents in another format land in the same splits: the split depends on the text alone
    parquet = bytes(
        np.asarray(data.split_tokens(names(shards)["parquet"] + "?validation_fraction=0.1", split="validation"))
    )
    assert parquet.split(b"\0")[:-1] == want["validation"]
    with pytest.raises(ValueError, match="split='test'"):
        data.split_tokens(name, split="test")


@pytest.mark.parametrize("kind", ["jsonl", "txt", "parquet"])
def test_files_train_offline_with_every_tokenizer(shards, cache_dir, monkeypatch, kind):
    def no_network(*args, **kwargs):
        raise AssertionError("files: must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    name = names(shards)[kind]
    for tokenizer, vocab in (("byte", 256), ("sentencepiece:400", 400)):
        it = data.batches(name, tokenizer=tokenizer, seq_len=32, batch_size=4, workers=1)
        batch = next(it)
        assert batch.shape == (4, 33) and it.vocab_size == vocab and 0 <= batch.min() and batch.max() < vocab
        evaluation = data.batches(name, split="validation", tokenizer=tokenizer, seq_len=32, batch_size=2)
        assert evaluation.split_used == "validation" and next(evaluation).max() < vocab
    tok = data.get_tokenizer("sentencepiece:400", dataset=name)
    text = "In the beginning  God\ncreated Æ 😀"
    assert tok.decode(tok.encode(text)) == text


def test_only_the_needed_tokens_are_tokenised_then_reused_then_extended(shards, documents, cache_dir, monkeypatch):
    monkeypatch.setattr(files, "UNIT_BYTES", 20_000)  # ~40 units of ~50 documents' text
    name = names(shards)["txt"]
    tok = tokenizers.ByteTokenizer()
    units = files.units(files.parse(name))
    assert len(units) > 30
    need = 30_000
    first = token_cache.BuildStats()
    array = sources.token_array(name, "train", tok, need=need, workers=2, stats=first)
    assert need <= len(array) < need + 2 * 20_000  # the smallest prefix of units holding `need` tokens
    assert first.units_used <= 2 and first.units_built <= 4  # at most one window beyond the need
    assert first.documents_read < 0.1 * len(documents)  # measured: a small share of the documents was read
    whole = bytes(np.asarray(sources.token_array(name, "train", tok, workers=1)))
    assert bytes(np.asarray(array)) == whole[: len(array)]  # a prefix of the whole split, cut at a document end

    again = token_cache.BuildStats()
    np.testing.assert_array_equal(sources.token_array(name, "train", tok, need=need, stats=again), array)
    assert again.units_built == 0 and again.documents_read == 0  # the second run reuses the cache

    directory = next((cache_dir / "tokens").rglob("unit-000000.json")).parent
    for path in directory.glob("unit-*"):
        if int(path.name[5:11]) >= 2:
            path.unlink()  # as if only the first run had tokenised
    more = token_cache.BuildStats()
    bigger = sources.token_array(name, "train", tok, need=4 * need, workers=2, stats=more)
    assert len(bigger) >= 4 * need and 0 < more.units_built <= more.units_used + 2
    assert more.units_used > first.units_used and bytes(np.asarray(bigger)) == whole[: len(bigger)]


def test_tokenisation_runs_on_several_worker_processes(shards, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "UNIT_BYTES", 50_000)
    name = names(shards)["jsonl"]
    tok = data.get_tokenizer("sentencepiece:400", dataset=name)
    parallel = token_cache.BuildStats()
    tokens = np.asarray(sources.token_array(name, "train", tok, workers=2, stats=parallel))
    assert parallel.workers == 2 and parallel.units_built >= 4
    assert len(parallel.builder_pids) == 2 and os.getpid() not in parallel.builder_pids
    serial = token_cache.BuildStats()
    alone = np.asarray(sources.token_array(name, "train", tok, data_dir=tmp_path / "other", workers=1, stats=serial))
    assert serial.builder_pids == {os.getpid()}
    np.testing.assert_array_equal(tokens, alone)


def test_packed_batches_over_a_prefix_never_repeat_within_the_run(shards, cache_dir, monkeypatch):
    monkeypatch.setattr(files, "UNIT_BYTES", 20_000)
    steps, batch, seq = 20, 4, 64
    need = data.tokens_needed(steps, batch, seq)
    assert need == steps * batch * seq + seq
    it = data.batches(names(shards)["txt"], seq_len=seq, batch_size=batch, min_tokens=need, workers=1)
    assert need <= it.tokens_per_epoch < need + 40_000 and it.steps_in_epoch >= steps
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.DataRepeatWarning)
        for _ in range(steps):
            next(it)
    state = it.get_state()
    resumed = data.batches(names(shards)["txt"], seq_len=seq, batch_size=batch, min_tokens=need)
    resumed.set_state(state)  # the same need gives the same prefix: the state matches


def test_sharded_tokens_index_like_their_concatenation():
    parts = [
        np.arange(0, 7, dtype=np.uint16),
        np.zeros(0, np.uint16),
        np.arange(7, 10, dtype=np.uint16),
        np.arange(10, 30, dtype=np.uint16),
    ]
    whole = np.concatenate(parts)
    sharded = token_cache.ShardedTokens(parts)
    assert len(sharded) == sharded.size == 30 and sharded.dtype == np.uint16 and sharded[8] == 8 and sharded[-1] == 29
    index = np.array([[0, 5, 6], [6, 7, 8], [9, 10, 29]])
    np.testing.assert_array_equal(sharded[index], whole[index])
    np.testing.assert_array_equal(sharded[5:12], whole[5:12])
    np.testing.assert_array_equal(np.asarray(sharded), whole)


def test_epochs_needed_estimates_a_large_split_from_its_first_units(shards, cache_dir, monkeypatch):
    monkeypatch.setattr(files, "UNIT_BYTES", 50_000)  # ~12 units of ~15 documents: a unit boundary costs < 3%
    name = names(shards)["txt"]
    tok = tokenizers.ByteTokenizer()
    stats = []
    real = token_cache.tokens

    def counting(*args, **kwargs):
        stats.append(kwargs.setdefault("stats", token_cache.BuildStats()))
        return real(*args, **kwargs)

    monkeypatch.setattr(token_cache, "tokens", counting)
    estimate = data.epochs_needed(1e6, name)
    assert sum(s.units_built for s in stats) <= sources.ESTIMATE_UNITS  # not the whole split
    exact = 1e6 / len(sources.token_array(name, "train", tok))
    assert estimate == pytest.approx(exact, rel=0.05)
    assert data.epochs_needed(1e6, name) == pytest.approx(exact, rel=1e-12)  # exact once all is cached


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_input_is_a_one_line_error_naming_file_line_and_field(tmp_path, cache_dir, workers, monkeypatch):
    monkeypatch.setattr(files, "UNIT_BYTES", 64)
    good = "".join(json.dumps({"text": f"document {i} " * 4}) + "\n" for i in range(6))
    cases = {
        "notjson": (good + "{not json\n", r"notjson/a\.jsonl, line 7: not JSON"),
        "nokey": (
            good + json.dumps({"body": "x"}) + "\n",
            r"nokey/a\.jsonl, line 7: no field 'text' \(fields: \['body'\]\)",
        ),
        "notstr": (good + json.dumps({"text": 3}) + "\n", r"notstr/a\.jsonl, line 7: field 'text' is a int"),
        "array": (good + "[1, 2]\n", r"array/a\.jsonl, line 7: a JSON list"),
    }
    for case, (text, pattern) in cases.items():
        write(tmp_path / case / "a.jsonl", text)
        with pytest.raises(ValueError, match=pattern) as caught:
            sources.token_array(
                f"files:{tmp_path}/{case}/*.jsonl", "train", tokenizers.ByteTokenizer(), workers=workers
            )
        assert "\n" not in str(caught.value)


def test_bad_names_and_files_are_one_line_errors(tmp_path, cache_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pytest.raises(ValueError, match=r"pattern .*/nothing/\*\.jsonl matches no file"):
        data.batches(f"files:{tmp_path}/nothing/*.jsonl")
    write(tmp_path / "csv" / "a.csv", "text\nhello\n")
    with pytest.raises(ValueError, match=r"a\.csv: unsupported file type"):
        data.batches(f"files:{tmp_path}/csv/*")
    pq.write_table(pa.table({"body": ["a", "b"]}), write(tmp_path / "pq" / "a.parquet", ""))
    with pytest.raises(ValueError, match=r"a\.parquet: no column 'text' \(columns: \['body'\]\).*text_key"):
        sources.token_array(f"files:{tmp_path}/pq/*.parquet", "train", tokenizers.ByteTokenizer())
    pq.write_table(pa.table({"text": ["a", None]}), tmp_path / "pq" / "a.parquet")
    with pytest.raises(ValueError, match=r"a\.parquet, row 1: column 'text' holds a NoneType"):
        sources.token_array(f"files:{tmp_path}/pq/*.parquet", "train", tokenizers.ByteTokenizer())
    for query, pattern in (
        ("?colour=red", "unknown option 'colour'"),
        ("?validation_fraction=2", "validation_fraction='2' must be"),
        ("?document=page", "document='page' must be one of"),
    ):
        with pytest.raises(ValueError, match=pattern):
            files.parse(f"files:{tmp_path}/*.jsonl{query}")
    with pytest.raises(ValueError, match="text_key='a' but text_key='b'"):
        files.parse(f"files:{tmp_path}/*.jsonl?text_key=a", "b")
    with pytest.raises(ValueError, match="local files only"):
        files.parse("files:gs://bucket/*.jsonl")


def test_a_run_on_files_trains_offline_on_only_its_tokens_and_a_second_run_reuses_them(
    shards, cache_dir, tmp_path, monkeypatch
):
    import dataclasses

    from chinchilla import zoo
    from chinchilla.train import TrainConfig, train_run

    def no_network(*args, **kwargs):
        raise AssertionError("files: must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv(token_cache.ENV_WORKERS, "1")  # units built in this process, where they are counted
    built = []
    real = token_cache._tokenize_unit

    def counting(reader, unit, *args):
        built.append(unit)
        return real(reader, unit, *args)

    monkeypatch.setattr(token_cache, "_tokenize_unit", counting)
    name = names(shards)["parquet"]
    model = zoo.get_model("tiny-00004k").replace(seq_len=64)
    config = TrainConfig(
        model=model, tokens=10 * 8 * 64, batch_size=8, dataset=name, eval_batches=2, steps_per_dispatch=5, log_every=5
    )
    first = train_run(config, tmp_path / "a", progress=False)
    assert first["status"] == "finished" and first["eval_split"] == "validation"
    units = files.units(files.parse(name))
    assert 0 < len(built) < len(units)  # only the row groups holding the run's tokens (and its eval batches)
    count = len(built)
    second = train_run(dataclasses.replace(config, seed=1), tmp_path / "b", progress=False)
    assert second["status"] == "finished" and len(built) == count  # the second run tokenised nothing


def test_prepare_builds_what_a_sweep_needs_ahead_of_it(shards, cache_dir, monkeypatch, capsys):
    from chinchilla.data.__main__ import main

    monkeypatch.setattr(files, "UNIT_BYTES", 20_000)
    name = names(shards)["txt"]
    assert main(["prepare", "--dataset", name, "--tokens", "30000", "--eval-tokens", "2000", "--workers", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train"]["tokens"] >= 30_000 and report["train"]["units"] < len(files.units(files.parse(name)))
    assert report["eval"]["split"] == "validation" and report["eval"]["tokens"] >= 2_000
    stats = token_cache.BuildStats()
    sources.token_array(name, "train", tokenizers.ByteTokenizer(), need=30_000, stats=stats)
    assert stats.units_built == 0  # the run finds it ready
    assert main(["prepare", "--preset", "tiny_cpu", "--workers", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "embedded" and report["train"]["tokens"] > 1e6
    assert main(["prepare", "--dataset", f"files:{shards}/none/*.txt", "--tokens", "10"]) == 2
    assert "matches no file" in capsys.readouterr().err


def test_a_files_data_set_too_small_for_its_validation_split_says_which_option_to_raise(tmp_path):
    for i in range(3):
        (tmp_path / f"t{i}.txt").write_text(f"document {i} with some words in it\n")
    with pytest.raises(ValueError, match=r"split='validation' has no documents; .*validation_fraction=0\.2"):
        data.batches(f"files:{tmp_path}/t*.txt", split="validation", seq_len=8, batch_size=1)
