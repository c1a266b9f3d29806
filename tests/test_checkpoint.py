"""Resuming from a run directory whose newest checkpoint step is incomplete (a copy or sync that stopped half-way):
the run resumes from the newest complete step, warns naming the skipped directory, keeps it aside, and ends with
exactly the losses of an uninterrupted run."""

from __future__ import annotations

import json
import shutil

import pytest

from chinchilla import zoo
from chinchilla.checkpoint import IncompleteCheckpointWarning
from chinchilla.train import TrainConfig, train_run

CONFIG = TrainConfig(
    model=zoo.get_model("tiny-00004k"),
    tokens=40 * 8 * 128,
    steps_per_dispatch=8,
    checkpoint_every=8,
    keep_checkpoints=3,
    log_every=1,
)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    train_run(CONFIG, out, progress=False)
    return out


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _drop_meta(step_dir):
    shutil.rmtree(step_dir / "meta")  # restored as is: KeyError: 'Item "meta" was not found in the checkpoint'


def _drop_state_metadata(step_dir):
    (step_dir / "state" / "_METADATA").unlink()


def _drop_arrays(step_dir):  # every array file gone, the metadata left: found only by trying to restore
    for path in list((step_dir / "state").rglob("*")):
        if path.is_file() and path.parent.name == "d":
            path.unlink()


@pytest.mark.parametrize("damage", [_drop_meta, _drop_state_metadata, _drop_arrays])
def test_an_incomplete_newest_step_is_skipped_with_a_warning_and_the_run_ends_as_if_uninterrupted(
    uninterrupted, tmp_path, damage
):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    (out / "summary.json").unlink()  # the copy stopped before the end: no summary, newest step half there
    damage(out / "checkpoints" / "40")
    with pytest.warns(IncompleteCheckpointWarning, match=r"checkpoints/40 is incomplete"):
        summary = train_run(CONFIG, out, progress=False)
    assert summary["status"] == "finished" and summary["steps"] == 40
    expected, got = _rows(uninterrupted), _rows(out)
    assert [r["step"] for r in got] == list(range(1, 41))
    for key in ("loss", "lr", "grad_norm"):
        assert [r[key] for r in got] == [r[key] for r in expected], key
    whole = json.loads((uninterrupted / "summary.json").read_text())
    assert summary["train_loss_tail"] == whole["train_loss_tail"] and summary["eval_loss"] == whole["eval_loss"]
    aside = list((out / "checkpoints.incomplete").iterdir())
    assert [p.name.split("-")[0] for p in aside] == ["40"]  # kept for the user, out of orbax's way
    assert (out / "checkpoints" / "40" / "meta" / "metadata").exists()  # step 40 saved again, complete


def test_orbax_temporary_directories_are_still_ignored(uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    (out / "summary.json").unlink()
    shutil.copytree(out / "checkpoints" / "40", out / "checkpoints" / "48.orbax-checkpoint-tmp-1234567")
    shutil.rmtree(out / "checkpoints" / "40")  # the newest complete step is 32; the tmp directory is not a step
    summary = train_run(CONFIG, out, progress=False)
    assert summary["steps"] == 40 and not (out / "checkpoints.incomplete").exists()
    assert [r["loss"] for r in _rows(out)] == [r["loss"] for r in _rows(uninterrupted)]


def test_when_no_step_restores_the_error_names_it_and_nothing_is_moved(uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    (out / "summary.json").unlink()
    for step_dir in (out / "checkpoints").iterdir():
        _drop_arrays(step_dir)
    with pytest.raises(ValueError, match=r"no checkpoint in .*checkpoints restores: step 40: it does not restore"):
        train_run(CONFIG, out, progress=False)
    assert not (out / "checkpoints.incomplete").exists()
