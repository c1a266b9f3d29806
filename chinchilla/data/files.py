"""Data a user brings: ``files:GLOB`` over ``.txt``, ``.jsonl`` and ``.parquet`` shards, read offline, streamed.

Name: ``files:GLOB`` or ``files:GLOB?key=value&...`` (the options are part of the name, so the name alone says
what is trained on and keys the token cache). ``GLOB`` is a local path pattern (``**`` matches directories too);
the matching files are read in sorted path order. Options:

* ``text_key=NAME`` (default ``text``): the field of a ``.jsonl`` object / the column of a ``.parquet`` file that
  holds the document text;
* ``validation_fraction=F`` (default 0.01): the share of documents held out as the ``validation`` split;
* ``document=paragraph|line`` (default ``paragraph``): what one document of a ``.txt`` file is, a block of
  non-blank lines (blank lines separate documents) or each non-blank line.

Documents: a ``.jsonl`` line is one JSON object, its ``text_key`` field a string (an empty string is skipped); a
``.parquet`` row's ``text_key`` column (a string column; needs pyarrow, which tensorflow-datasets installs); a
``.txt`` document as above. ``.txt.gz`` and ``.jsonl.gz`` are read too (one unit each: gzip cannot seek).

Splits: ``train`` and ``validation``. A document is in ``validation`` when the first 8 bytes of
``blake2b(document UTF-8 bytes)``, read as a fraction of 2**64, fall below ``validation_fraction``; otherwise in
``train``. So the split of a document depends on its text alone (not on the file it is in, its position, the
number of shards or the machine), exact duplicates never straddle the two splits, and adding shards never moves a
document from one split to the other.

Units: the files are cut into units of work, read independently (by worker processes, see ``token_cache``): a
``.txt``/``.jsonl`` file into byte ranges of ``UNIT_BYTES`` (a range owns the lines/paragraphs that *start* in it),
a ``.parquet`` file into its row groups (a row group larger than ``UNIT_BYTES`` into slices of its rows). Units are
ordered by (file, position): a prefix of the units is a prefix of
the data.

Bad input is a one-line ``ValueError`` naming the file (and the line, row and field): a pattern that matches no
file, an unsupported extension, a ``.jsonl`` line that is not a JSON object, a missing or non-string text field, a
missing parquet column.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import hashlib
import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

PREFIX = "files:"
SPLITS = ("train", "validation")
UNIT_BYTES = 32 << 20  # source bytes per unit of a .txt / .jsonl file
FORMATS = (".txt", ".jsonl", ".parquet", ".txt.gz", ".jsonl.gz")
DOCUMENT_KINDS = ("paragraph", "line")
_HASH_SCALE = float(1 << 64)


def is_files(dataset: str) -> bool:
    return isinstance(dataset, str) and dataset.startswith(PREFIX)


@dataclasses.dataclass(frozen=True)
class FilesSpec:
    """A parsed ``files:`` name (see the module docstring)."""

    name: str
    pattern: str
    text_key: str = "text"
    validation_fraction: float = 0.01
    document: str = "paragraph"

    @property
    def paths(self) -> tuple[str, ...]:
        return list_files(self)


def parse(dataset: str, text_key: str | None = None) -> FilesSpec:
    """``files:GLOB[?text_key=..&validation_fraction=..&document=..]`` -> FilesSpec; a bad option is a ValueError.
    ``text_key`` (e.g. the data pipeline's argument) applies when the name sets none; both set and different is
    an error."""
    if not is_files(dataset):
        raise ValueError(f"dataset={dataset!r} is not a files: data set")
    pattern, _, query = dataset[len(PREFIX) :].partition("?")
    if not pattern:
        raise ValueError(f"dataset={dataset!r}: write files:GLOB, e.g. files:/data/shards/*.jsonl")
    if "://" in pattern:
        raise ValueError(
            f"dataset={dataset!r}: files: reads local files only; copy the shards to local disk "
            f"first (e.g. `gsutil -m cp -r gs://bucket/dir /data/`)"
        )
    options: dict = {}
    for key, values in urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=bool(query)).items():
        value = values[-1]
        if key == "text_key":
            if not value:
                raise ValueError(f"dataset={dataset!r}: text_key is empty")
            options["text_key"] = value
        elif key == "validation_fraction":
            try:
                fraction = float(value)
            except ValueError:
                fraction = -1.0
            if not 0 < fraction < 1:
                raise ValueError(f"dataset={dataset!r}: validation_fraction={value!r} must be a number in (0, 1)")
            options["validation_fraction"] = fraction
        elif key == "document":
            if value not in DOCUMENT_KINDS:
                raise ValueError(f"dataset={dataset!r}: document={value!r} must be one of {DOCUMENT_KINDS}")
            options["document"] = value
        else:
            raise ValueError(
                f"dataset={dataset!r}: unknown option {key!r} (known: text_key, validation_fraction, document)"
            )
    if text_key is not None and text_key != "text":
        if options.get("text_key", text_key) != text_key:
            raise ValueError(
                f"dataset={dataset!r} names text_key={options['text_key']!r} but text_key={text_key!r} was passed too"
            )
        options["text_key"] = text_key
    return FilesSpec(name=dataset, pattern=os.path.abspath(os.path.expanduser(pattern)), **options)


def file_format(path: str) -> str:
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if path.endswith(suffix):
            return suffix
    raise ValueError(f"{path}: unsupported file type (files: reads {', '.join(FORMATS)})")


def list_files(spec: FilesSpec) -> tuple[str, ...]:
    """The matching files, sorted; no match is a ValueError naming the pattern."""
    paths = sorted(p for p in glob.glob(spec.pattern, recursive=True) if os.path.isfile(p))
    if not paths:
        raise ValueError(f"dataset={spec.name!r}: the pattern {spec.pattern} matches no file")
    for path in paths:
        file_format(path)
    return tuple(paths)


def units(spec: FilesSpec) -> tuple[tuple, ...]:
    """Units of work in data order, each a tuple ending in its size in source bytes: ``(path, "bytes", start,
    stop, size)`` (a byte range) or ``(path, "rows", group, lo, hi, first_row, size)`` (rows [lo, hi) of a parquet
    row group whose first row is row ``first_row`` of the file)."""
    out = []
    for path in list_files(spec):
        kind = file_format(path)
        size = os.path.getsize(path)
        if kind == ".parquet":
            parquet = _pyarrow_parquet()
            try:
                metadata = parquet.ParquetFile(path).metadata
            except Exception as error:  # pyarrow raises ArrowInvalid and OSError for damaged files
                raise ValueError(
                    f"{path}: not a readable parquet file ({type(error).__name__}: {_first_line(error)})"
                ) from None
            first_row = 0
            for group in range(metadata.num_row_groups):
                info = metadata.row_group(group)
                pieces = max(1, min(info.num_rows, -(-info.total_byte_size // UNIT_BYTES)))
                bounds = [info.num_rows * k // pieces for k in range(pieces + 1)]
                for lo, hi in zip(bounds, bounds[1:]):  # a large row group in slices of about UNIT_BYTES
                    out.append(
                        (
                            path,
                            "rows",
                            group,
                            lo,
                            hi,
                            first_row,
                            info.total_byte_size * (hi - lo) // max(1, info.num_rows),
                        )
                    )
                first_row += info.num_rows
        elif kind.endswith(".gz") or size == 0:
            out.append((path, "bytes", 0, max(size, 1), size))
        else:
            for start in range(0, size, UNIT_BYTES):
                out.append((path, "bytes", start, min(start + UNIT_BYTES, size), min(UNIT_BYTES, size - start)))
    return tuple(out)


def is_validation(document: bytes, fraction: float) -> bool:
    """Whether a document belongs to the validation split (see the module docstring)."""
    digest = int.from_bytes(hashlib.blake2b(document, digest_size=8).digest(), "big")
    return digest / _HASH_SCALE < fraction


def split_of(document: bytes, fraction: float) -> str:
    return "validation" if is_validation(document, fraction) else "train"


def unit_documents(spec: FilesSpec, unit: tuple) -> Iterator[bytes]:
    """The documents (UTF-8 bytes, non-empty) of one unit, in file order, streamed."""
    path, kind = unit[0], unit[1]
    form = file_format(path)
    if kind == "rows":
        yield from _parquet_documents(path, spec.text_key, *unit[2:6])
        return
    start, stop = unit[2], unit[3]
    if form == ".parquet":
        raise ValueError(f"{path}: a parquet file is read by row groups")
    elif form.startswith(".jsonl"):
        yield from _jsonl_documents(path, spec.text_key, start, stop, gz=form.endswith(".gz"))
    else:
        yield from _txt_documents(path, spec.document, start, stop, gz=form.endswith(".gz"))


def documents(spec: FilesSpec, split: str | None = None) -> Iterator[bytes]:
    """Every document of ``split`` (or of both splits when None), in data order, streamed."""
    for unit in units(spec):
        for document in unit_documents(spec, unit):
            if split is None or split_of(document, spec.validation_fraction) == split:
                yield document


# -- readers ----------------------------------------------------------------------------------------------------
def _open(path: str, gz: bool):
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _lines(handle, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of the lines starting in [start, stop) (a line straddling ``start`` belongs to the range
    before); the last line may run past ``stop``."""
    if start > 0:
        handle.seek(start - 1)
        handle.readline()  # the rest of the line holding byte start-1: it starts before this range
    offset = start if start == 0 else handle.tell()
    while offset < stop:
        line = handle.readline()
        if not line:
            return
        yield offset, line
        offset += len(line)


def _line_number(path: str, offset: int, gz: bool) -> int:
    """1-based number of the line starting at byte ``offset`` (counted only when an error is reported)."""
    count, done = 1, 0
    with _open(path, gz) as handle:
        while done < offset:
            block = handle.read(min(1 << 20, offset - done))
            if not block:
                break
            count += block.count(b"\n")
            done += len(block)
    return count


def _jsonl_documents(path: str, text_key: str, start: int, stop: int, gz: bool) -> Iterator[bytes]:
    with _open(path, gz) as handle:
        for offset, line in _lines(handle, start, stop):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{path}, line {_line_number(path, offset, gz)}: not JSON ({error})") from None
            if not isinstance(record, dict):
                raise ValueError(
                    f"{path}, line {_line_number(path, offset, gz)}: a JSON "
                    f"{type(record).__name__}, not an object with a {text_key!r} field"
                )
            if text_key not in record:
                raise ValueError(
                    f"{path}, line {_line_number(path, offset, gz)}: no field {text_key!r} (fields: "
                    f"{sorted(record)[:10]}); set the text field with files:GLOB?text_key=NAME"
                )
            text = record[text_key]
            if not isinstance(text, str):
                raise ValueError(
                    f"{path}, line {_line_number(path, offset, gz)}: field {text_key!r} is a "
                    f"{type(text).__name__}, not a string"
                )
            if text:
                yield text.encode("utf-8")


def _previous_line_blank(handle, offset: int) -> bool:
    """Whether the line ending just before ``offset`` is blank (True at the start of the file)."""
    if offset == 0:
        return True
    back = min(offset, 4096)
    handle.seek(offset - back)
    tail = handle.read(back)[:-1]  # drop that line's "\n"
    line_start = tail.rfind(b"\n") + 1
    if line_start == 0 and back < offset:
        return False  # a line longer than 4 KiB: not blank
    return not tail[line_start:].strip()


def _txt_documents(path: str, kind: str, start: int, stop: int, gz: bool) -> Iterator[bytes]:
    with _open(path, gz) as handle:
        if kind == "line":
            for _, line in _lines(handle, start, stop):
                text = line.rstrip(b"\r\n")
                if text.strip():
                    yield _checked_utf8(path, text, handle, gz)
            return
        first = start
        if start > 0:
            handle.seek(start - 1)
            handle.readline()
            first = handle.tell()
        previous_blank = _previous_line_blank(handle, first) if not gz else True
        handle.seek(first)
        offset, lines = first, []
        while True:
            line = handle.readline()
            blank = not line.strip()
            if lines and (blank or not line):
                yield _checked_utf8(path, b"".join(lines).rstrip(b"\r\n"), handle, gz)
                lines = []
            if not line:
                return
            if not blank:
                if lines:
                    lines.append(line)
                elif previous_blank:  # a paragraph starts here: this range owns it when it starts before stop
                    if offset >= stop:
                        return
                    lines = [line]
                # else: the rest of a paragraph that started in the range before
            elif offset >= stop:
                return
            previous_blank = blank
            offset += len(line)


def _checked_utf8(path: str, text: bytes, handle, gz: bool) -> bytes:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text near byte {error.start} of a document") from None
    return text


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ValueError("reading .parquet files needs pyarrow: pip install pyarrow") from None
    return parquet


def _parquet_documents(path: str, text_key: str, group: int, lo: int, hi: int, first_row: int) -> Iterator[bytes]:
    """Rows [lo, hi) of row group ``group`` (row ``first_row + lo`` of the file onwards)."""
    parquet = _pyarrow_parquet()
    reader = parquet.ParquetFile(path)
    if text_key not in reader.schema_arrow.names:
        raise ValueError(
            f"{path}: no column {text_key!r} (columns: {reader.schema_arrow.names[:10]}); set the "
            f"text column with files:GLOB?text_key=NAME"
        )
    index = 0
    for batch in reader.iter_batches(batch_size=1024, row_groups=[group], columns=[text_key]):
        if index + len(batch) <= lo:
            index += len(batch)
            continue
        for value in batch.column(0).to_pylist():
            if lo <= index < hi:
                if not isinstance(value, str):
                    raise ValueError(
                        f"{path}, row {first_row + index}: column {text_key!r} holds a "
                        f"{type(value).__name__}, not a string"
                    )
                if value:
                    yield value.encode("utf-8")
            index += 1
        if index >= hi:
            return


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:160]


def fingerprint(spec: FilesSpec) -> str:
    """A short hash of what the data set reads: pattern, options and every file's path and size."""
    listing = [(path, os.path.getsize(path)) for path in list_files(spec)]
    payload = json.dumps([spec.pattern, spec.text_key, spec.validation_fraction, spec.document, listing])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_name(spec: FilesSpec) -> str:
    """The token cache's directory name: the pattern's last directories + the fingerprint."""
    readable = "__".join(Path(spec.pattern).parts[-3:]).replace("*", "x").replace("?", "q")
    readable = "".join(c if c.isalnum() or c in "._-" else "_" for c in readable)[:80]
    return f"files-{readable}-{fingerprint(spec)}"
