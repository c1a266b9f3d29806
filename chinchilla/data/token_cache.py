"""A sharded on-disk token cache, built by worker processes on every core, only as far as a run needs.

A *source* is what one (data set, split) is read from: its documents cut into ordered *units* of work (byte ranges
or row groups of ``files:`` shards, see ``files``; ranges of records of a TFDS split or of the embedded corpora),
and the splits its units write (``("test",)`` for a TFDS ``test`` split; ``("train", "validation")`` for a
``files:`` data set or a TFDS data set with neither ``validation`` nor ``test``, whose documents are assigned to a
split by a hash of their text). Each unit is tokenised once into

    <cache root>/tokens/<data set>/<source>/<tokenizer fingerprint>/unit-NNNNNN.<split>.npy   (one per split)
    <cache root>/tokens/<data set>/<source>/<tokenizer fingerprint>/unit-NNNNNN.json         (written last)

(every document's tokens followed by the tokenizer's separator; the JSON file marks the unit complete and records
its token counts, documents, source bytes and the pid of the process that built it). ``<source>`` names the split,
text field and unit layout, so a changed layout never mixes with an old one.

A split's token array is the concatenation of its units' arrays over the *smallest prefix of units holding at
least ``need`` tokens* (all units when ``need`` is None): a function of the data, the tokenizer and ``need`` only,
never of what happens to be cached, so a run sees the same tokens whether the cache was empty, partly built or
built further by a larger run. :func:`tokens` builds the missing units of that prefix in parallel (a window of
units at a time, sized from the tokens per unit seen so far, so at most about one window is built beyond the
need), reuses what is cached, and extends the cache when a later call needs more.

Workers are ``python -m chinchilla.data.tokenize_worker`` subprocesses (not ``multiprocessing``: nothing re-imports
the caller's ``__main__``, and a JAX process is never forked), each given a fixed share of a window's units
(unit i of a window goes to worker i mod n) over stdin, answering one JSON line per unit. Each unit is built
under a file lock (``cache.build_once``), so concurrent runs, sweep workers or hosts sharing the cache directory
build every unit once; with ``process_count`` > 1 each process first builds the units ``u`` with
``u % process_count == process_index`` and only then the others' (already built, on a shared file system).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from chinchilla.data import cache

UNIT_BYTES = 16 << 20  # target source bytes per unit of a record-based (TFDS) source
HELDOUT_FRACTION = 0.01  # the validation share of a TFDS data set that has neither validation nor test
ENV_WORKERS = "CHINCHILLA_DATA_WORKERS"


@dataclasses.dataclass(frozen=True)
class Source:
    """How one split is read: ``reader`` (a picklable, JSON-able description), ``units``, ``outputs`` (splits
    written per unit), ``fraction`` (the validation share when ``outputs`` has two splits) and ``key``
    (the cache sub-directory)."""

    dataset: str
    reader: tuple
    units: tuple
    outputs: tuple[str, ...]
    fraction: float
    key: str
    sizes: tuple[int, ...]  # source bytes (files) or records (TFDS) per unit: for estimates

    @property
    def describe(self) -> str:
        return f"dataset={self.dataset!r} ({len(self.units)} units)"


def layout_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def default_workers() -> int:
    value = os.environ.get(ENV_WORKERS)
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{ENV_WORKERS}={value!r} must be a whole number >= 1")
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.int32)


# -- the token array of a split: shards seen as one array ----------------------------------------------------------
class ShardedTokens(Sequence):
    """Several 1-D token arrays (memory-mapped unit files) indexed as their concatenation.

    Supports ``len``, integer and slice indexing, fancy indexing with integer arrays of any shape (what packed
    batches use; a window that crosses a shard boundary is gathered from both), ``np.asarray`` (materialises the
    whole array: tests and small splits only) and ``shards()`` (to stream over it)."""

    def __init__(self, arrays: Sequence[np.ndarray], dtype=np.uint8):
        self._arrays = [a for a in arrays if len(a)]
        lengths = np.array([len(a) for a in self._arrays], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.dtype = np.dtype(self._arrays[0].dtype if self._arrays else dtype)

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    @property
    def size(self) -> int:
        return len(self)

    ndim = 1

    def shards(self) -> list[np.ndarray]:
        return list(self._arrays)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return np.asarray(self)[index]
            return self._take_range(start, stop)
        if isinstance(index, (int, np.integer)):
            position = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= position < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} tokens")
            shard = int(np.searchsorted(self._starts, position, side="right")) - 1
            return self._arrays[shard][position - self._starts[shard]]
        flat = np.asarray(index, dtype=np.int64)
        if len(self._arrays) == 1:
            return np.asarray(self._arrays[0][flat])
        shard = np.searchsorted(self._starts, flat, side="right") - 1
        out = np.empty(flat.shape, dtype=self.dtype)
        for s in np.unique(shard):
            mask = shard == s
            out[mask] = self._arrays[s][flat[mask] - self._starts[s]]
        return out

    def _take_range(self, start: int, stop: int) -> np.ndarray:
        pieces = []
        for s, array in enumerate(self._arrays):
            lo, hi = max(start, self._starts[s]), min(stop, self._starts[s + 1])
            if lo < hi:
                pieces.append(np.asarray(array[lo - self._starts[s] : hi - self._starts[s]]))
        return np.concatenate(pieces) if pieces else np.zeros(0, self.dtype)

    def __array__(self, dtype=None, copy=None):
        whole = self._take_range(0, len(self))
        return whole if dtype is None else whole.astype(dtype)

    def __iter__(self) -> Iterator:
        for array in self._arrays:
            yield from array

    def __repr__(self) -> str:
        return f"ShardedTokens({len(self):,} tokens in {len(self._arrays)} shards, dtype={self.dtype})"


# -- reading the documents of a unit -------------------------------------------------------------------------------
_READERS: dict = {}


def unit_documents(reader: tuple, unit: tuple) -> Iterator[bytes]:
    """The documents (UTF-8 bytes) of one unit."""
    kind = reader[0]
    if kind == "files":
        from chinchilla.data import files

        spec = files.FilesSpec(**reader[1])
        yield from files.unit_documents(spec, unit)
        return
    if kind == "records":
        _, dataset, split, data_dir, text_key = reader
        key = (dataset, split, data_dir, text_key)
        if key not in _READERS:
            from chinchilla.data import records

            _READERS[key] = records.documents(dataset, split, data_dir=data_dir, text_key=text_key)
        start, stop = unit
        yield from _READERS[key].read(start, stop)
        return
    raise ValueError(f"unknown reader {reader!r}")


# -- tokenising a unit ---------------------------------------------------------------------------------------------
def tokenizer_spec(tokenizer) -> tuple | None:
    """A description a worker process can rebuild the tokenizer from, or None (tokenise in this process)."""
    from chinchilla.data.tokenizers import ByteTokenizer, SentencePieceTokenizer

    if type(tokenizer) is ByteTokenizer:
        return ("byte",)
    if type(tokenizer) is SentencePieceTokenizer:
        return ("sentencepiece", str(tokenizer.model_file))
    return None


_TOKENIZERS: dict = {}


def _rebuild_tokenizer(spec: tuple):
    if spec not in _TOKENIZERS:
        from chinchilla.data.tokenizers import ByteTokenizer, SentencePieceTokenizer

        _TOKENIZERS[spec] = ByteTokenizer() if spec[0] == "byte" else SentencePieceTokenizer(spec[1])
    return _TOKENIZERS[spec]


def _unit_stem(directory: Path, index: int) -> Path:
    return directory / f"unit-{index:06d}"


def read_unit(directory: Path, index: int) -> dict | None:
    """The completion record of a built unit, or None."""
    path = _unit_stem(directory, index).with_suffix(".json")
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def build_unit(
    reader: tuple, unit: tuple, index: int, outputs: Sequence[str], fraction: float, tokenizer, directory: Path
) -> dict:
    """Tokenise one unit into ``directory`` (once, under a lock) and return its completion record."""
    directory = Path(directory)
    marker = _unit_stem(directory, index).with_suffix(".json")

    def write(tmp: Path) -> None:
        record = _tokenize_unit(reader, unit, outputs, fraction, tokenizer, directory, index)
        tmp.write_text(json.dumps(record, sort_keys=True))

    directory.mkdir(parents=True, exist_ok=True)
    cache.build_once(marker, write)
    return json.loads(marker.read_text())


def _tokenize_unit(reader, unit, outputs, fraction, tokenizer, directory, index) -> dict:
    from chinchilla.data import files

    dtype = token_dtype(tokenizer.vocab_size)
    is_bytes = getattr(tokenizer, "fingerprint", None) == "byte"
    texts: dict[str, list[bytes]] = {split: [] for split in outputs}
    arrays: dict[str, list[np.ndarray]] = {split: [] for split in outputs}
    separator = np.array([tokenizer.separator_id], dtype=dtype)
    documents, source_bytes, pending = 0, 0, 0

    def flush(split: str) -> None:
        batch = texts[split]
        if not batch:
            return
        if is_bytes:  # bytes are their own tokens: join in one step
            arrays[split].append(np.frombuffer(b"\0".join(batch) + b"\0", dtype=np.uint8))
        else:
            encode_batch = getattr(tokenizer, "encode_batch", None)
            encoded = (
                encode_batch([d.decode("utf-8") for d in batch])
                if encode_batch
                else [tokenizer.encode(d.decode("utf-8")) for d in batch]
            )
            for ids in encoded:
                arrays[split].append(np.asarray(ids).astype(dtype))
                arrays[split].append(separator)
        texts[split] = []

    for document in unit_documents(reader, unit):
        split = outputs[0] if len(outputs) == 1 else files.split_of(document, fraction)
        if split not in texts:
            continue
        texts[split].append(document)
        documents += 1
        source_bytes += len(document)
        pending += len(document)
        if pending >= 1 << 20:
            for name in outputs:
                flush(name)
            pending = 0
    counts = {}
    for split in outputs:
        flush(split)
        tokens = np.concatenate(arrays[split]) if arrays[split] else np.zeros(0, dtype)
        path = _unit_stem(directory, index).with_suffix(f".{split}.npy")
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        try:
            cache.write_npy(tmp, tokens, path)  # a full disk: an OSError naming the file and the room it needed
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):  # a partial file would only hold on to the space that ran out
                os.unlink(tmp)
        counts[split] = int(len(tokens))
    return {
        "tokens": counts,
        "documents": documents,
        "bytes": source_bytes,
        "pid": os.getpid(),
        "tokenizer": tokenizer.fingerprint,
    }


def load_unit(directory: Path, index: int, split: str) -> np.ndarray:
    path = _unit_stem(directory, index).with_suffix(f".{split}.npy")
    array = np.load(path, mmap_mode=None if path.stat().st_size < 4096 else "r")
    return array


# -- worker processes ----------------------------------------------------------------------------------------------
class Workers:
    """``n`` worker subprocesses; ``run(tasks)`` gives task i to worker i mod n and returns the records in order."""

    def __init__(self, n: int):
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        env.setdefault("JAX_PLATFORMS", "cpu")  # workers never use JAX; never let one grab an accelerator
        # stderr to a file, not a pipe: a worker logging more than a pipe holds (TFDS warnings) would block
        self.logs = [tempfile.TemporaryFile(mode="w+") for _ in range(n)]
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "chinchilla.data.tokenize_worker"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
            )
            for log in self.logs
        ]

    def run(self, tasks: list[dict]) -> list[dict]:
        n = len(self.processes)
        for i, task in enumerate(tasks):
            self.processes[i % n].stdin.write(json.dumps(task) + "\n")
        for process in self.processes:
            process.stdin.flush()
        results: list[dict | None] = [None] * len(tasks)
        for w, process in enumerate(self.processes):
            for i in range(w, len(tasks), n):
                line = process.stdout.readline()
                if not line:
                    process.wait()
                    self.logs[w].seek(0)
                    tail = self.logs[w].read().strip().splitlines()[-1:] or [""]
                    self.close(kill=True)
                    raise RuntimeError(
                        f"a tokenizer worker (pid {process.pid}) exited with code {process.returncode}: {tail[0]}"
                    )
                answer = json.loads(line)
                if "error" in answer:
                    self.close(kill=True)  # the others' units are not needed any more
                    raise ValueError(answer["error"])
                results[i] = answer["record"]
        return results

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def close(self, kill: bool = False) -> None:
        """End the workers: they finish their current unit and exit, or with ``kill`` are killed (a unit cut
        short leaves no marker and is rebuilt by whoever needs it)."""
        for process in self.processes:
            if kill and process.poll() is None:
                process.kill()
            try:
                process.stdin.close()
            except OSError:
                pass
        for process in self.processes:
            try:
                process.wait(timeout=None if kill else 600)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
        for log in self.logs:
            log.close()
        self.processes, self.logs = [], []

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _task(source: Source, index: int, spec: tuple, directory: Path) -> dict:
    return {
        "reader": list(source.reader),
        "unit": list(source.units[index]),
        "index": index,
        "outputs": list(source.outputs),
        "fraction": source.fraction,
        "tokenizer": list(spec),
        "directory": str(directory),
    }


def _run_task(task: dict) -> dict:
    reader = _tuple(task["reader"])
    return build_unit(
        reader,
        tuple(task["unit"]),
        task["index"],
        task["outputs"],
        task["fraction"],
        _rebuild_tokenizer(tuple(task["tokenizer"])),
        Path(task["directory"]),
    )


def _tuple(value):
    return tuple(_tuple(v) if isinstance(v, list) else v for v in value)


def _worker_main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        try:
            answer = {"record": _run_task(task)}
        except Exception as error:  # reported to the parent as one line, which raises it
            message = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
            answer = {"error": message.splitlines()[0] if message else type(error).__name__}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


# -- the driver ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class BuildStats:
    """What one :func:`tokens` call did: units used / built here, documents and tokens it tokenised, workers."""

    units_used: int = 0
    units_built: int = 0
    documents_read: int = 0
    tokens_built: int = 0
    workers: int = 0
    builder_pids: set = dataclasses.field(default_factory=set)


def tokens(
    source: Source,
    split: str,
    tokenizer,
    *,
    root: Path,
    need: int | None = None,
    workers: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    stats: BuildStats | None = None,
) -> ShardedTokens:
    """The token array of ``split`` over the smallest prefix of ``source``'s units with at least ``need`` tokens
    (every unit when None), building missing units on ``workers`` processes (default: every usable core)."""
    if split not in source.outputs:
        raise ValueError(f"{source.describe} writes splits {source.outputs}, not {split!r}")
    if need is not None and need < 1:
        raise ValueError(f"need={need!r} must be a number of tokens >= 1 (or None for the whole split)")
    stats = stats if stats is not None else BuildStats()
    directory = Path(root) / "tokens" / source.key / tokenizer.fingerprint
    workers = default_workers() if workers is None else int(workers)
    spec = tokenizer_spec(tokenizer)
    pool: Workers | None = None
    chosen, total, position = [], 0, 0
    n_units = len(source.units)
    try:
        while position < n_units and (need is None or total < need):
            if need is None:
                window = n_units - position
            else:
                seen = [read_unit(directory, j) for j in chosen[-64:]]
                per_unit = np.mean([r["tokens"][split] for r in seen]) if seen else 0.0
                window = math.ceil((need - total) / per_unit) if per_unit > 0 else max(1, workers)
                window = max(1, min(n_units - position, window + (-window) % max(1, workers)))
            indices = list(range(position, position + window))
            missing = [j for j in indices if read_unit(directory, j) is None]
            if missing:  # this process's own units first, then the others' (already built on a shared cache)
                missing.sort(key=lambda j: (j % process_count != process_index, j))
                if spec is None or workers <= 1 or len(missing) == 1:
                    records = [
                        build_unit(
                            source.reader, source.units[j], j, source.outputs, source.fraction, tokenizer, directory
                        )
                        for j in missing
                    ]
                else:
                    if pool is None:
                        pool = Workers(min(workers, max(2, len(missing))))
                        stats.workers = len(pool.processes)
                    records = pool.run([_task(source, j, spec, directory) for j in missing])
                for record in records:
                    if record["pid"] in (pool.pids if pool else []) or record["pid"] == os.getpid():
                        stats.units_built += 1
                        stats.documents_read += record["documents"]
                        stats.tokens_built += sum(record["tokens"].values())
                        stats.builder_pids.add(record["pid"])
            for j in indices:
                record = read_unit(directory, j)
                total += record["tokens"][split]
                chosen.append(j)
                position = j + 1
                if need is not None and total >= need:
                    break
    finally:
        if pool is not None:
            pool.close()
    stats.units_used = len(chosen)
    dtype = token_dtype(tokenizer.vocab_size)
    return ShardedTokens(
        [load_unit(directory, j, split) for j in chosen if read_unit(directory, j)["tokens"][split]], dtype=dtype
    )


def cached_prefix(source: Source, split: str, tokenizer, root: Path) -> tuple[int, int, int]:
    """(units built in a row from the first, their tokens of ``split``, their size) without building anything."""
    directory = Path(root) / "tokens" / source.key / tokenizer.fingerprint
    units = total = size = 0
    for j in range(len(source.units)):
        record = read_unit(directory, j)
        if record is None:
            break
        units, total, size = units + 1, total + record["tokens"][split], size + source.sizes[j]
    return units, total, size
