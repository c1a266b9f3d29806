"""Faults that could cost data or hide it: a damaged metrics line on resume, two writers on one run, damaged run
files in a sweep, failure reasons and missing runs in the results and the report, errors as one line."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chinchilla import cli, runfiles, runlock, zoo
from chinchilla.analysis.render import render_markdown
from chinchilla.analysis.report import AnalysisSettings, analyze, summary
from chinchilla.step import Trainer
from chinchilla.sweep import collect_results, plan_isoflop, read_results_table, run_sweep
from chinchilla.sweep.synthetic import SyntheticTrainer
from chinchilla.train import QUARANTINE_FILE, TrainConfig, train_run

ROOT = Path(__file__).resolve().parents[1]
TINY = zoo.get_model("tiny-00004k")


def small_plan():
    return plan_isoflop((1e11, 3e11), zoo.ladder("tiny")[:4], hparams=lambda m, tokens: {"batch_size": 8})


# ---- a resume keeps every logged row it can read, and quarantines the rest ----


def test_a_damaged_metrics_line_costs_no_other_row_on_resume(tmp_path, monkeypatch, capsys):
    config = TrainConfig(model=TINY, tokens=64 * 8 * 128, steps_per_dispatch=8, checkpoint_every=32, log_every=1)
    out = tmp_path / "run"
    real_train, calls = Trainer.train, []

    def dies_in_dispatch_6(self, state, batches):  # steps 41-48: after the checkpoint at 32 and 40 logged rows
        calls.append(1)
        if len(calls) == 6:
            raise RuntimeError("killed")
        return real_train(self, state, batches)

    monkeypatch.setattr(Trainer, "train", dies_in_dispatch_6)
    with pytest.raises(RuntimeError, match="killed"):
        train_run(config, out, progress=False)
    monkeypatch.setattr(Trainer, "train", real_train)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 41))
    lines[9], lines[19], lines[24] = "", '{"step": 20, "lo', "[25]"  # blank, torn, a JSON list
    (out / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    capsys.readouterr()

    summary_ = train_run(config, out, progress=False)
    assert summary_["status"] == "finished"
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [s for s in range(1, 65) if s not in (10, 20, 25)]  # 11-19, 21-24, 26-32 kept too
    quarantined = [json.loads(line) for line in (out / QUARANTINE_FILE).read_text().splitlines()]
    assert [(q["line"], q["text"]) for q in quarantined] == [(20, '{"step": 20, "lo'), (25, "[25]")]
    said = [line for line in capsys.readouterr().err.splitlines() if "metrics.jsonl" in line]
    assert len(said) == 1 and "20, 25" in said[0] and QUARANTINE_FILE in said[0] and "1 blank" in said[0]


# ---- one writer per run directory ----

HOLDER = """
import sys, time
from chinchilla import runlock
with runlock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_frees_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(runlock.RunLockedError, match=f"pid {holder.pid} on host {socket.gethostname()}"):
            with runlock.hold(out):
                pass
        argv = ["train", "--model", "tiny-00004k", "--tokens", "2e4", "--out", str(out), "--quiet"]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid}" in err[0] and "since 20" in err[0], err
        assert not (out / "config.json").exists() and not (out / "metrics.jsonl").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed owner: the kernel drops its lock
        holder.wait()
    with runlock.hold(out) as me:
        assert me["pid"] == os.getpid()


def test_without_kernel_locks_a_stale_lock_of_this_host_is_taken_over_and_another_hosts_needs_break_lock(
    tmp_path, monkeypatch
):
    def no_locks(handle, operation):  # a FUSE mount (Drive) or a file system without flock
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / runlock.LOCK_FILE).write_text(
        json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "since": "2026-01-01T00:00:00Z"})
    )
    with runlock.hold(out):  # its pid is gone on this host: stale
        with pytest.raises(runlock.RunLockedError, match=f"pid {os.getpid()}"):  # and now it is held
            with runlock.hold(out):
                pass
    assert not (out / runlock.LOCK_FILE).exists()  # released
    other = {"host": "another-host", "pid": 1, "since": "2026-01-01T00:00:00Z"}
    (out / runlock.LOCK_FILE).write_text(json.dumps(other))
    with pytest.raises(runlock.RunLockedError, match="pid 1 on host another-host.*--break-lock"):
        with runlock.hold(out):
            pass
    with runlock.hold(out, break_lock=True) as me:
        assert json.loads((out / runlock.LOCK_FILE).read_text()) == me
    # A damaged lock naming this host with an impossible pid cannot be checked: refused, not an OverflowError.
    for pid in (2**40, 0, -5):
        (out / runlock.LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": pid}))
        with pytest.raises(runlock.RunLockedError, match="--break-lock"):
            with runlock.hold(out):
                pass


def test_a_lock_whose_pid_was_reused_by_another_process_is_stale(tmp_path, monkeypatch):
    """Without kernel locks a lock names its holder by pid and start time: a live pid that started at another time
    is another process (the holder died and the pid was reused: on a busy machine a sweep would otherwise skip a run
    as "held elsewhere"), while the holder itself, at its own start time, still holds."""
    monkeypatch.setattr(fcntl, "flock", lambda handle, operation: (_ for _ in ()).throw(OSError(errno.ENOLCK, "")))
    out = tmp_path / "run"
    out.mkdir()
    parent = os.getppid()  # alive, and not us
    started = runlock.process_start(parent)
    assert isinstance(started, int)
    holder = {"host": socket.gethostname(), "pid": parent, "since": "2026-01-01T00:00:00Z"}
    (out / runlock.LOCK_FILE).write_text(json.dumps({**holder, "started": started}))
    with pytest.raises(runlock.RunLockedError):  # the real holder: still held
        with runlock.hold(out):
            pass
    (out / runlock.LOCK_FILE).write_text(json.dumps({**holder, "started": started - 1}))
    with runlock.hold(out) as me:  # the pid now names another process: stale, taken over
        assert me["pid"] == os.getpid() and me["started"] == runlock.process_start(os.getpid())


def test_a_sweep_worker_skips_a_run_another_process_holds_and_goes_on(tmp_path):
    plan = small_plan()
    trainer = SyntheticTrainer()

    def locked_trainer(run, run_dir):  # as train_run does
        with runlock.hold(run_dir):
            return trainer(run, run_dir)

    busy = plan.runs[1].run_id
    with runlock.hold(tmp_path / "runs" / busy):
        outcome = run_sweep(plan, tmp_path, train_fn=locked_trainer, log=None)
    assert busy in outcome.skipped and busy not in outcome.failed and not outcome.failed
    assert len(outcome.trained) == len(plan.runs) - 1
    assert not (tmp_path / "runs" / busy / "failure.json").exists()
    statuses = {r["run_id"]: r["status"] for r in collect_results(tmp_path)}
    assert statuses[busy] == "pending"


# ---- damaged run files in a sweep: that run failed with the reason, the sweep and the report go on ----


def test_damaged_run_files_mark_that_run_failed_with_the_file_and_the_sweep_goes_on(tmp_path, capsys):
    plan = small_plan()
    run_sweep(plan, tmp_path, train_fn=SyntheticTrainer(), log=None)
    runs = [tmp_path / "runs" / r.run_id for r in plan.runs]
    (runs[0] / "summary.json").write_text("[1, 2]")
    (runs[1] / "summary.json").write_text(json.dumps({"steps": 3}))
    summary_ = json.loads((runs[2] / "summary.json").read_text())
    (runs[2] / "summary.json").write_text(json.dumps({**summary_, "tokens": "many"}))
    (runs[3] / "summary.json").write_text('{"status": "fini')
    (runs[4] / "run.json").write_text("[]")
    with (runs[5] / "metrics.jsonl").open("a") as handle:  # a metrics line that is a list: skipped, run fine
        handle.write("[1, 2]\n")

    outcome = run_sweep(plan, tmp_path, train_fn=SyntheticTrainer(), log=None)
    assert outcome.failed == () and len(outcome.skipped) >= 5
    rows = {r["run_id"]: r for r in read_results_table(tmp_path / "results.csv")}
    expected = {
        0: "summary.json holds a JSON list",
        1: "summary.json: status=None",
        2: "summary.json: tokens='many' is not a finite number",
        3: "summary.json is damaged",
    }
    for index, reason in expected.items():
        row = rows[plan.runs[index].run_id]
        assert row["status"] == "failed" and reason in row["error"], row
    assert rows[plan.runs[5].run_id]["status"] == "finished"
    assert cli.main(["report", str(tmp_path), "--no-figures", "--resamples", "0"]) == 0
    report = (tmp_path / "report.md").read_text()
    for index, reason in expected.items():
        assert f"| {plan.runs[index].run_id} | failed | {reason}" in report
    assert json.loads((tmp_path / "summary.json").read_text())["runs"]["failed"] == 5


# ---- failure reasons reach results.csv and the report; deleted runs count as missing ----


class NanTrainer(SyntheticTrainer):
    """Writes what train_run writes when the loss turns non-finite: a failed summary with the reason."""

    def __call__(self, run, run_dir):
        summary_ = super().__call__(run, run_dir)
        failed = {**summary_, "status": "failed", "reason": "non-finite loss nan at step 20"}
        runfiles.write_json_atomic(runfiles.as_path(run_dir) / runfiles.SUMMARY_FILE, failed)
        return failed


def test_failure_reasons_and_missing_runs_reach_the_results_and_the_report(tmp_path):
    plan = small_plan()
    nan_run, deleted = plan.runs[0].run_id, plan.runs[1].run_id
    ok = SyntheticTrainer()
    run_sweep(plan, tmp_path, train_fn=lambda run, d: (NanTrainer() if run.run_id == nan_run else ok)(run, d), log=None)
    shutil.rmtree(tmp_path / "runs" / deleted)
    rows = {r["run_id"]: r for r in collect_results(tmp_path)}
    assert rows[nan_run]["status"] == "failed" and rows[nan_run]["error"] == "non-finite loss nan at step 20"
    assert rows[deleted]["status"] == "missing" and "no run directory" in rows[deleted]["error"]
    assert len(rows) == len(plan.runs)
    analysis = analyze(tmp_path, AnalysisSettings(n_resamples=0, approach3_resamples=0))
    assert analysis.meta["runs"] == {"finished": len(plan.runs) - 2, "failed": 1, "pending": 0, "missing": 1}
    report = render_markdown(analysis, summary(analysis))
    assert "1 missing" in report and f"| {deleted} | missing |" in report
    assert f"| {nan_run} | failed | non-finite loss nan at step 20 |" in report


# ---- the right error is the one line; the detail goes to the run's log or behind --verbose ----


def test_a_checkpoint_error_is_one_line_and_the_library_log_goes_to_the_runs_log(tmp_path, capfd, monkeypatch):
    from absl import logging as absl_logging

    from chinchilla import checkpoint

    def full_disk(self, step, state, meta):  # what orbax does on a full disk: pages of logged tracebacks, then this
        try:
            raise ValueError("inner")
        except ValueError:
            absl_logging.error("Save Finalize thread failed (orbax detail)", exc_info=True)
        raise ValueError(
            "RESOURCE_EXHAUSTED: Failed writing: \"/x/ckpt\": No space left on device [os_error_code='28']"
        )

    monkeypatch.setattr(checkpoint.Checkpointer, "save", full_disk)
    out = tmp_path / "run"
    argv = [
        "train",
        "--model",
        "tiny-00004k",
        "--tokens",
        "2e4",
        "--batch-size",
        "4",
        "--seq-len",
        "64",
        "--out",
        str(out),
        "--quiet",
    ]
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "free some space" in lines[0], err
    assert "orbax detail" in (out / "train.log").read_text()
    assert cli.main(argv + ["--verbose"]) == 2  # --verbose: the traceback, and the library log stays where it was
    assert "Traceback" in capfd.readouterr().err


def test_an_unknown_dataset_is_one_line_and_leaves_no_lock_in_the_data_cache(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CHINCHILLA_DATA_DIR", str(cache))
    argv = [
        "train",
        "--model",
        "tiny-00004k",
        "--tokens",
        "2e4",
        "--dataset",
        "no_such_dataset",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    ]
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "dataset='no_such_dataset' is not available" in lines[0], lines
    assert len(lines[0]) < 600  # not TFDS's catalogue
    assert not list(cache.rglob("*.lock")) and not list(cache.rglob("*.npy"))
