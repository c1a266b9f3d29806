"""A TFDS data set in a bucket (gs://...) is read from a local copy, made once (chinchilla.data.remote).

The bucket is a local directory reached through the same ``etils.epath`` calls (no network here): the copy, its
completeness marker, the redo after an interrupted copy and the errors are what is tested.
"""

from __future__ import annotations

import numpy as np
import pytest
from etils import epath

from chinchilla.data import corpus, remote, sources, tokenizers

BUCKET = "gs://bucket/tfds"
DATASET = "chinchilla_embedded/kjv"  # a prepared array_record TFDS data set, as `tfds build` leaves one


@pytest.fixture()
def bucket(tmp_path, monkeypatch):
    """A fake gs://bucket: gs://bucket/... resolves to tmp_path/bucket/... through epath."""
    root = tmp_path / "bucket"
    corpus.builder("kjv", root)  # writes root/tfds/chinchilla_embedded/kjv/1.0.0/...
    calls = []

    def fake_remote(url):
        calls.append(url)
        assert url.startswith("gs://bucket/")
        return epath.Path(url.replace("gs://bucket", str(root)))

    monkeypatch.setattr(remote, "_remote", fake_remote)
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(tmp_path / "cache"))
    return root, calls, tmp_path / "cache"


def test_local_data_dirs_pass_through_unchanged(tmp_path):
    assert remote.local_data_dir(DATASET, None) is None
    assert remote.local_data_dir(DATASET, tmp_path) == tmp_path
    assert remote.dataset_path("c4/en:3.0.1") == "c4/en/3.0.1" and remote.dataset_path("lm1b") == "lm1b"


def test_a_bucket_data_set_is_copied_once_and_reads_like_the_original(bucket):
    root, calls, cache_root = bucket
    tok = tokenizers.ByteTokenizer()
    from_bucket = sources.tokenize_split(DATASET, "validation", tok, data_dir=BUCKET)
    original = sources.tokenize_split(DATASET, "validation", tok, data_dir=root / "tfds")
    np.testing.assert_array_equal(from_bucket, original)
    copy = cache_root / "tfds-remote" / "gs" / "bucket" / "tfds" / DATASET
    assert (copy / remote.COMPLETE).is_file() and list(copy.glob("1.0.0/*.array_record*"))
    first_calls = len(calls)
    sources.tokenize_split(DATASET, "train", tok, data_dir=BUCKET)  # the other split: no second copy
    assert len(calls) == first_calls


def test_an_interrupted_copy_is_redone(bucket):
    _, _, cache_root = bucket
    copy = cache_root / "tfds-remote" / "gs" / "bucket" / "tfds" / DATASET
    (copy / "1.0.0").mkdir(parents=True)
    (copy / "1.0.0" / "dataset_info.json").write_text("{half a fi")  # no .complete marker
    local = remote.local_data_dir(DATASET, BUCKET)
    assert (copy / remote.COMPLETE).is_file()
    assert len(sources.tokenize_split(DATASET, "validation", tokenizers.ByteTokenizer(), data_dir=local)) > 0


def test_a_missing_bucket_directory_is_a_one_line_error_naming_it(bucket):
    with pytest.raises(
        ValueError,
        match=r"gs://bucket/tfds/lm1b.*tfds build lm1b --data_dir /tmp/tfds.*copy /tmp/tfds/lm1b to gs://bucket/tfds/",
    ):
        remote.local_data_dir("lm1b", BUCKET)


def test_a_bucket_as_the_cache_root_is_a_one_line_error(monkeypatch):
    """CHINCHILLA_DATA_DIR is the local cache; a gs:// value is refused, not made a local directory named "gs:"."""
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", "gs://bucket/tfds")
    with pytest.raises(ValueError, match=r"CHINCHILLA_DATA_DIR='gs://bucket/tfds'.*local directory"):
        sources.cache_root(None)
