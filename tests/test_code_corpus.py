"""``embedded/code``: Python's standard library as a data set, built offline, deterministically, with disjoint
splits, test suites and third-party code left out, and a cache key that names the Python version."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys

import numpy as np
import pytest

from chinchilla.data import code_corpus, get_tokenizer, sources


def _tree(root):
    files = {
        "os.py": b"import sys\n",
        "json/decoder.py": b"def decode(s):\n    return s\n",
        "test/test_os.py": b"assert True\n",
        "idlelib/idle_test/test_x.py": b"pass\n",
        "unittest/tests/test_case.py": b"pass\n",
        "site-packages/numpy/core.py": b"third party\n",
        "binary.py": b"x = 1\0\n",
        "README.txt": b"not python\n",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for i in range(60):
        (root / f"pkg{i % 3}").mkdir(exist_ok=True)
        (root / f"pkg{i % 3}" / f"mod{i}.py").write_bytes(f"VALUE = {i}\n".encode())


def test_files_kept_and_splits_disjoint(tmp_path):
    _tree(tmp_path)
    kept = [p for p, _ in code_corpus.source_files(str(tmp_path))]
    assert "os.py" in kept and "json/decoder.py" in kept and "binary.py" in kept
    assert not any(p.startswith(("test/", "site-packages/")) or "/idle_test/" in p or "/tests/" in p for p in kept)
    assert not any(p.endswith(".txt") for p in kept)
    train = code_corpus.documents("train", str(tmp_path))
    validation = code_corpus.documents("validation", str(tmp_path))
    assert set(train.paths).isdisjoint(validation.paths)
    assert set(train.paths) | set(validation.paths) == set(kept)
    assert validation.paths  # 63 files, about 1 in 20 held out
    for path in validation.paths:  # an independent computation of the rule
        assert int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") % 20 == 0
    docs = [d for chunk in train.chunks() for d in chunk]
    assert b"x = 1\0\n" not in docs and b"import sys\n" in docs + [validation[i] for i in range(len(validation))]
    with pytest.raises(ValueError, match="split='test'"):
        code_corpus.documents("test", str(tmp_path))
    with pytest.raises(ValueError, match="no .py files"):
        code_corpus.source_files(str(tmp_path / "json" / "nothing-here"))


def test_stdlib_corpus_builds_offline_and_deterministically(tmp_path):
    name = sources.cache_name("embedded/code")
    assert name.startswith(f"embedded__code-py{platform.python_version()}-")
    tokenizer = get_tokenizer("byte")
    first = {
        s: np.array(sources.token_array("embedded/code", s, tokenizer, data_dir=tmp_path / "a"))
        for s in ("train", "validation")
    }
    again = sources.token_array("embedded/code", "train", tokenizer, data_dir=tmp_path / "b")
    assert np.array_equal(first["train"], again)
    assert first["train"].size > 1_000_000 and first["validation"].size > 10_000
    assert (tmp_path / "a" / "tokens" / name).is_dir()
    # The token array is the documents joined by NUL: the first train file's bytes open it.
    train = code_corpus.documents("train")
    head = train[0]
    assert first["train"][: len(head)].tobytes() == head
    # Building it needs neither TFDS nor the network.
    code = (
        "import sys; from chinchilla.data import sources, get_tokenizer; "
        f"sources.token_array('embedded/code', 'validation', get_tokenizer('byte'), data_dir={str(tmp_path / 'c')!r}); "
        "print('tensorflow_datasets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_table_a2_puts_data_sets_side_by_side():
    from chinchilla.studies.datasets import dataset_dir, table_a2

    def summary(a):
        entry = {"a": a, "b": 1 - a, "a_interval": [a - 0.05, a + 0.05], "b_interval": [0.4, 0.6], "error": None}
        return {"convention": "total", "approach1": entry, "approach2": entry, "approach3": entry}

    table = table_a2({"embedded": summary(0.5), "embedded/code": summary(0.53)})
    assert "N = all parameters" in table.splitlines()[0]
    assert "| embedded | 0.500 (0.45, 0.55) | 0.500 (0.40, 0.60) |" in table
    assert "| embedded/code | 0.530 (0.48, 0.58) | 0.470 (0.40, 0.60) |" in table
    assert "paper: GitHub" in table and dataset_dir("embedded/code") == "embedded__code"


def test_compare_datasets_passes_jobs_and_retry_to_each_sweep(monkeypatch, tmp_path):
    """`reproduce --compare-datasets ... --jobs N` trains each data set's runs N at a time, not every run in
    the calling process."""
    from chinchilla import cli
    from chinchilla.studies import datasets as data_compare

    calls = []

    def fake_reproduce(preset, out_dir, **kwargs):
        calls.append((preset.name, kwargs))
        return None  # "runs pending": compare_datasets stops after the first data set

    monkeypatch.setattr(data_compare, "reproduce", fake_reproduce)
    status = cli.main(
        [
            "reproduce",
            "--preset",
            "synthetic",
            "--compare-datasets",
            "embedded",
            "embedded/code",
            "--out",
            str(tmp_path),
            "--jobs",
            "2",
            "--retry-failed",
        ]
    )
    assert status == 0
    assert calls == [
        ("synthetic@embedded", {"progress": False, "jobs": "2", "retry_failed": True, "log": calls[0][1]["log"]})
    ]


def test_compare_datasets_checks_every_data_set_before_training(monkeypatch, tmp_path):
    """A typo in the second data set is reported before the first one's sweep trains, not after it."""
    from chinchilla.preset import load_preset
    from chinchilla.studies import datasets as data_compare

    trained = []
    real = data_compare.with_dataset

    def with_dataset(preset, dataset):
        if dataset == "nosuch/ds":
            raise ValueError("unknown data set 'nosuch/ds'")
        return real(preset, dataset)

    monkeypatch.setattr(data_compare, "with_dataset", with_dataset)
    monkeypatch.setattr(data_compare, "reproduce", lambda *args, **kwargs: trained.append(args))
    with pytest.raises(ValueError, match="nosuch"):
        data_compare.compare_datasets(load_preset("synthetic"), ["embedded", "nosuch/ds"], tmp_path, log=None)
    assert trained == []
