"""Live metrics: with CHINCHILLA_TENSORBOARD (or `chinchilla sweep --tensorboard`), every metrics.jsonl row's numbers
also go to TensorBoard event files, read back here with an event reader of our own (TFRecord framing + tensorboardX's
Event proto) and compared with metrics.jsonl, also after a resume; without tensorboardX the request is one line
naming the pip command."""

from __future__ import annotations

import shutil
import struct
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from chinchilla import cli, metrics, runfiles, zoo
from chinchilla.train import TrainConfig, train_run

STEPS = 32
CONFIG = dict(
    tokens=STEPS * 8 * 128,
    batch_size=8,
    steps_per_dispatch=8,
    log_every=1,
    eval_every=16,
    checkpoint_every=16,
    eval_batches=2,
)


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} as TensorBoard shows them: every event file in the order written, where a
    SessionLog START at step s (a resumed writer's purge_step) hides the values earlier files logged at steps >= s
    (without it, a resumed run's repeated steps would show twice)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    scalars: dict[str, list[tuple[int, float]]] = {}
    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {logdir}"
    for path in files:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            record = data[offset + 12 : offset + 12 + length]  # after the length and its CRC; the data's CRC follows
            offset += 12 + length + 4
            event = event_pb2.Event.FromString(record)
            if event.HasField("session_log") and event.session_log.status == event.session_log.START:
                for tag, values in scalars.items():
                    scalars[tag] = [(step, value) for step, value in values if step < event.step]
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def assert_events_equal_rows(logdir: Path, run_dir: Path) -> None:
    rows = runfiles.read_jsonl(run_dir / "metrics.jsonl")
    scalars = read_scalars(logdir)
    assert set(scalars) == {
        name for name in metrics.TENSORBOARD_SCALARS if any(row.get(name) is not None for row in rows)
    }
    assert {"loss", "eval_loss", "lr", "grad_norm", "tokens_per_s", "mfu"} <= set(scalars)
    for name, values in scalars.items():
        expected = [(row["step"], np.float32(row[name])) for row in rows if row.get(name) is not None]
        assert sorted(values) == expected, name  # every logged value once, at its step (float32 in the events)
    assert [step for step, _ in scalars["loss"]] == list(range(1, STEPS + 1))
    assert [step for step, _ in scalars["eval_loss"]] == [16, 32]


def test_the_events_hold_every_metrics_row_also_after_a_resume(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    monkeypatch.setenv("CHINCHILLA_TENSORBOARD", "1")
    run = tmp_path / "run"
    train_run(TrainConfig(model=zoo.get_model("tiny-00004k"), **CONFIG), run, progress=False)
    assert_events_equal_rows(run / "tensorboard", run)
    # stopped after its checkpoint at 16 (with events past it), then resumed: the view equals metrics.jsonl again
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    (cut / "summary.json").unlink()
    shutil.rmtree(cut / "checkpoints" / str(STEPS))
    train_run(TrainConfig(model=zoo.get_model("tiny-00004k"), **CONFIG), cut, progress=False)
    assert len(list((cut / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert_events_equal_rows(cut / "tensorboard", cut)
    monkeypatch.setenv("CHINCHILLA_TENSORBOARD", "0")
    plain = tmp_path / "plain"
    train_run(
        TrainConfig(model=zoo.get_model("tiny-00004k"), **{**CONFIG, "tokens": 8 * 8 * 128}), plain, progress=False
    )
    assert not (plain / "tensorboard").exists()  # off unless asked for


def test_where_the_events_go():
    run = Path("/sweep/runs/isoflop-c1e11-tiny-00004k-s0")
    assert metrics.tensorboard_dir(run, {}) is None
    for off in ("0", "off", "", "false"):
        assert metrics.tensorboard_dir(run, {"CHINCHILLA_TENSORBOARD": off}) is None
    for on in ("1", "on", "true", "YES"):
        assert str(metrics.tensorboard_dir(run, {"CHINCHILLA_TENSORBOARD": on})) == f"{run}/tensorboard"
    assert str(metrics.tensorboard_dir(run, {"CHINCHILLA_TENSORBOARD": "/tb"})) == f"/tb/{run.name}"


def test_without_tensorboardx_asking_for_events_is_one_line_naming_the_pip_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed: importing it raises ImportError
    monkeypatch.setenv("CHINCHILLA_TENSORBOARD", "1")
    with pytest.raises(
        ValueError,
        match=r"CHINCHILLA_TENSORBOARD='1' writes TensorBoard event files, which needs "
        r"tensorboardX: pip install 'chinchilla-scaling\[tensorboard\]'",
    ) as error:
        train_run(
            TrainConfig(model=zoo.get_model("tiny-00004k"), **{**CONFIG, "tokens": 8 * 8 * 128}),
            tmp_path / "run",
            progress=False,
        )
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # refused before training
    monkeypatch.delenv("CHINCHILLA_TENSORBOARD")
    assert cli.main(["sweep", "--preset", "synthetic", "--out", str(tmp_path / "sweep"), "--tensorboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "chinchilla sweep: error: --tensorboard writes TensorBoard event files, which needs tensorboardX: pip install"
    )
    assert not (tmp_path / "sweep").exists()
    assert cli.main(["sweep", "--preset", "synthetic", "--plan-only", "--tensorboard"]) == 2
    assert "--tensorboard would be ignored: --plan-only trains nothing" in capsys.readouterr().err


PRESET = textwrap.dedent("""
    from chinchilla import zoo
    from chinchilla.preset import Preset

    PRESET = Preset(name="tb_test", description="one tiny real run", ladder=zoo.ladder("tiny")[:1], budgets=(3.2e9,),
                    hparams=lambda model, tokens: {{"batch_size": 8, "lr": 3e-3, "log_every": 1, "eval_batches": 2,
                                                   "steps_per_dispatch": 8, "eval_every": 16}})
""")


def test_the_sweep_flag_reaches_runs_in_worker_processes(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    monkeypatch.delenv("CHINCHILLA_TENSORBOARD", raising=False)  # restored after the test: the flag sets it
    (tmp_path / "tb_preset.py").write_text(PRESET.format())
    out, board = tmp_path / "sweep", tmp_path / "board"
    assert (
        cli.main(
            [
                "sweep",
                "--preset",
                str(tmp_path / "tb_preset.py"),
                "--out",
                str(out),
                "--jobs",
                "1",
                "--tensorboard",
                str(board),
            ]
        )
        == 0
    )
    [run] = list((out / "runs").iterdir())
    assert_events_equal_rows(board / run.name, run)  # written by the run's worker process, one directory per run
