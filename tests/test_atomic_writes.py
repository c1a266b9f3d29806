"""Every temp-then-rename writer leaves nothing behind when the disk is full: the write or the rename raises
OSError(ENOSPC), the temporary file is removed, the error reaches the caller, and the previous file is intact."""

from __future__ import annotations

import errno
import os

import pytest
from etils import epath

from chinchilla import runfiles

WRITERS = {
    "runfiles.rewrite_jsonl": lambda path: runfiles.rewrite_jsonl(path, [{"step": 1}]),
    "runfiles.write_json_atomic": lambda path: runfiles.write_json_atomic(path, {"new": 1}),
    "runfiles.write_text_atomic": lambda path: runfiles.write_text_atomic(epath.Path(path), "new\n"),
}


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _write_then_full_disk(self, data, *args, **kwargs):
    with open(os.fspath(self), "w"):  # the temporary is created (empty), then the disk fills up
        pass
    _full_disk()


@pytest.mark.parametrize("failing", ["write", "rename"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_failed_atomic_write_leaves_no_temporary_and_the_old_file(tmp_path, monkeypatch, writer, failing):
    target = tmp_path / "summary.json"
    target.write_text('{"old": 0}\n')
    if failing == "write":
        monkeypatch.setattr(type(epath.Path(tmp_path)), "write_text", _write_then_full_disk)
    else:
        monkeypatch.setattr(os, "replace", _full_disk)
    with pytest.raises(OSError) as raised:
        WRITERS[writer](target)
    assert raised.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    assert target.read_text() == '{"old": 0}\n'


@pytest.mark.parametrize("writer", list(WRITERS))
def test_atomic_write_replaces_the_file(tmp_path, writer):
    target = tmp_path / "summary.json"
    target.write_text('{"old": 0}\n')
    WRITERS[writer](target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    assert "old" not in target.read_text()


def test_read_jsonl_skips_a_garbled_binary_line(tmp_path):
    """A line of non-UTF-8 bytes (a disk error, a stray write) costs only itself, like a torn JSON line, rather than
    a UnicodeDecodeError naming no file and every other line lost."""
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n\xff\xfe\x00\x81\n{"step": 2}\n')
    assert [r["step"] for r in runfiles.read_jsonl(path)] == [1, 2]


def test_dead_writers_temporaries_are_removed_and_live_or_foreign_ones_kept(tmp_path):
    """A writer SIGKILLed between write and rename leaves its temporary; the next sweep on the host removes it, but
    never a live writer's or another host's (a sweep directory shared between hosts)."""
    import subprocess
    import sys

    from chinchilla import runfiles

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    host = runfiles._host()
    names = {
        "dead": f".results.csv.{host}-{dead}-0123abcd.tmp",
        "live": f".results.csv.{host}-{os.getpid()}-0123abcd.tmp",
        "foreign": f".results.csv.elsewhere-{dead}-0123abcd.tmp",
        "file": "results.csv",
    }
    for name in names.values():
        (tmp_path / name).write_text("x")
    removed = runfiles.remove_dead_temporaries(epath.Path(tmp_path))
    assert removed == [names["dead"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(v for k, v in names.items() if k != "dead")
    assert runfiles.remove_dead_temporaries(epath.Path(tmp_path / "missing")) == []
    runfiles.write_text_atomic(epath.Path(tmp_path / "results.csv"), "y")  # its own temporary carries host and pid
    assert (tmp_path / "results.csv").read_text() == "y"


def test_temporaries_of_dotted_hosts_and_impossible_pids(tmp_path, monkeypatch):
    """A fully qualified host name (dots) still parses back to the writer's host; a pid no process can have (>= 2**31)
    is left alone instead of crashing every later sweep (os.kill raised OverflowError)."""
    import socket
    import subprocess
    import sys

    from chinchilla import runfiles

    monkeypatch.setattr(socket, "gethostname", lambda: "node1.cluster.local")
    host = runfiles._host()
    assert "." not in host and "-" not in host
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    mine = f".results.csv.{host}-{dead}-0123abcd.tmp"
    huge = f".results.csv.{host}-99999999999999999999-0123abcd.tmp"
    too_big = f".results.csv.{host}-{2**31}-0123abcd.tmp"
    newline = f".results.csv.{host}-{dead}-0123abcd.tmp\n"
    for name in (mine, huge, too_big, newline):
        (tmp_path / name).write_text("x")
    assert runfiles.remove_dead_temporaries(epath.Path(tmp_path)) == [mine]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([huge, too_big, newline])
