"""Flags and run directories that could mislead (outside the fitting filters): a flag's negative value
given after a space (``train --mesh -1,1,1``, the documented default), a full disk while building the data cache,
and ``train --model A`` on a finished run directory of model B whose config.json was deleted."""

from __future__ import annotations

import argparse
import errno
import json
from collections import namedtuple

import numpy as np
import pytest

from chinchilla import cli
from chinchilla.cli import build_parser, describe_error
from chinchilla.data import cache


def value_flags(parser: argparse.ArgumentParser, prefix=()):
    """(verb words, flag) for every option of every verb that takes one value."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from value_flags(sub, prefix + (name,))
        elif (
            action.option_strings
            and action.nargs is None
            and not isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction))
        ):
            yield prefix, action.option_strings[-1]


def test_a_negative_value_after_a_space_is_the_flags_value_for_every_flag(capsys):
    parser = build_parser()
    args = parser.parse_args(
        ["train", "--model", "tiny-00004k", "--tokens", "8192", "--out", "/tmp/x", "--mesh", "-1,1,1", "--quiet"]
    )
    assert args.mesh == "-1,1,1" and args.quiet
    flags = list(value_flags(parser))
    assert len(flags) > 20
    for verb, flag in flags:
        for value in ("-1,1,1", "-1e-3", "-2"):
            with pytest.raises(SystemExit):
                parser.parse_args([*verb, flag, value, "--no-such-flag"])  # stops at the unknown flag, or earlier
            err = capsys.readouterr().err
            assert "expected one argument" not in err, (verb, flag, value, err)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(root / "data"))
    out = root / "run"
    status = cli.main(
        ["train", "--model", "tiny-00004k", "--tokens", "8192", "--out", str(out), "--mesh", "-1,1,1", "--quiet"]
    )
    yield out, status
    monkeypatch.undo()


def test_train_takes_the_documented_mesh_after_a_space(finished_run):
    out, status = finished_run
    assert status == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_another_model_on_a_finished_run_without_its_config_is_refused_naming_both(finished_run, capsys, monkeypatch):
    out, _ = finished_run
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(out.parent / "data"))
    (out / "config.json").unlink()
    before = (out / "summary.json").read_text()
    capsys.readouterr()
    assert cli.main(["train", "--model", "tiny-00006k", "--tokens", "8192", "--out", str(out), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "'tiny-00004k'" in lines[0] and "'tiny-00006k'" in lines[0] and "config.json is missing" in lines[0]
    assert (out / "summary.json").read_text() == before
    # the same run again: still finished, its summary returned
    assert (
        cli.main(["train", "--model", "tiny-00004k", "--tokens", "8192", "--out", str(out), "--quiet", "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["model"] == "tiny-00004k"


def test_a_full_disk_while_building_the_data_cache_names_the_file_and_the_room_needed(tmp_path, monkeypatch):
    def short_write(handle, array, allow_pickle=False):  # what numpy's tofile raises on a full disk
        handle.write(b"\0" * 100)
        raise OSError(f"{array.nbytes} requested and 100 written")

    monkeypatch.setattr(np, "save", short_write)
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda path: namedtuple("usage", "total used free")(1, 1, 0))
    target = tmp_path / "tokens.npy"
    with pytest.raises(OSError) as caught:
        cache.build_once(target, cache.save_npy(lambda: np.zeros(1000, np.int64), name=target))
    error = caught.value
    assert error.errno == errno.ENOSPC and error.filename == str(target)
    assert "8,000 bytes" in str(error) and "0 bytes free" in str(error)
    assert not target.exists() and not list(tmp_path.glob("*.tmp"))
    message, status = describe_error(error)
    assert status == 2 and message.startswith("error: No space left on device")
    assert repr(str(target)) in message and "free some space" in message
