"""Several processes (hosts): the environment a launch reads (no second process needed), and a real two-process run
on this machine (a local coordinator, gloo CPU collectives, 4 fake CPU devices per process) against one process with
all 8 devices: the same losses, disjoint rows per process, one writer of the run's files, and checkpoints that resume
across process counts in both directions (into two processes over an interleaved device order)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from chinchilla import cli, data, sharding, zoo
from chinchilla.train import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIO = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
SLURM = {"SLURM_JOB_ID": "77", "SLURM_STEP_NODELIST": "node[001-004]", "SLURM_PROCID": "2", "SLURM_LOCALID": "0"}


# -- what the environment asks for ------------------------------------------------------------------------------


def test_no_variables_means_one_process():
    assert sharding.distributed_settings({}) is None
    assert sharding.distributed_settings({"PATH": "/bin", "SLURM_JOB_ID": "5"}) is None  # an allocation, one task


def test_the_three_variables_become_initialize_arguments():
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:8476", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert sharding.distributed_settings(env) == {
        "coordinator_address": "10.0.0.1:8476",
        "num_processes": 4,
        "process_id": 3,
    }
    assert sharding.distributed_settings({**env, "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"}) is None
    assert sharding.distributed_settings({"JAX_NUM_PROCESSES": "1"}) is None
    assert sharding.distributed_settings({**env, "CHINCHILLA_DISTRIBUTED": "off"}) is None


@pytest.mark.parametrize(
    "given, missing",
    [
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:8476"}, "JAX_NUM_PROCESSES, JAX_PROCESS_ID not"),
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:8476", "JAX_NUM_PROCESSES": "2"}, "JAX_PROCESS_ID not"),
        ({"JAX_PROCESS_ID": "1", "JAX_NUM_PROCESSES": "2"}, "JAX_COORDINATOR_ADDRESS not"),
    ],
)
def test_a_half_specified_setup_is_one_line_naming_what_is_missing(given, missing):
    with pytest.raises(ValueError, match="half-specified multi-process setup") as error:
        sharding.distributed_settings(given)
    assert missing in str(error.value) and "\n" not in str(error.value)
    for key, value in given.items():
        assert f"{key}={value}" in str(error.value)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "must be host:port"),
        ({"JAX_COORDINATOR_ADDRESS": "h:99999", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "must be host:port"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "not an integer"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, r"must be in \[0, "),
        ({"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "0", "JAX_PROCESS_ID": "0"}, "at least 1"),
        ({"CHINCHILLA_DISTRIBUTED": "yes"}, "'auto', 'off' or unset"),
        ({**SLURM, "SLURM_NTASKS": "many"}, "SLURM_NTASKS='many' is not an integer"),
    ],
)
def test_malformed_values_are_named(env, message):
    with pytest.raises(ValueError, match=message):
        sharding.distributed_settings(env)


def test_launchers_jax_detects_itself_initialise_with_what_is_set():
    assert sharding.distributed_settings({**SLURM, "SLURM_NTASKS": "4"}) == {}
    assert sharding.distributed_settings({**SLURM, "SLURM_NTASKS": "1"}) is None  # one task: no coordinator
    # with a launcher, one variable may override what JAX would detect (no half-specified error)
    assert sharding.distributed_settings({**SLURM, "SLURM_NTASKS": "4", "JAX_COORDINATOR_ADDRESS": "n1:9000"}) == {
        "coordinator_address": "n1:9000"
    }
    mpi = {"OMPI_MCA_orte_hnp_uri": "123.0;tcp://10.0.0.1:5000", "OMPI_COMM_WORLD_SIZE": "2"}
    assert sharding.distributed_settings(mpi) == {}
    assert sharding.distributed_settings({**mpi, "OMPI_COMM_WORLD_SIZE": "1"}) is None
    assert sharding.distributed_settings({"TPU_WORKER_HOSTNAMES": "t-0,t-1,t-2,t-3"}) == {}
    assert sharding.distributed_settings({"TPU_WORKER_HOSTNAMES": "t-0"}) is None  # a one-host TPU VM
    assert sharding.distributed_settings({"CHINCHILLA_DISTRIBUTED": "auto"}) == {}  # e.g. a GCE TPU VM pod slice


def test_maybe_initialize_passes_the_settings_to_jax_once(monkeypatch):
    import jax

    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
    env = {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:8476", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    assert sharding.maybe_initialize_distributed(env) is True
    assert calls == [
        {
            "coordinator_address": "127.0.0.1:8476",
            "num_processes": 2,
            "process_id": 1,
            "initialization_timeout": 300 + sharding.TIMEOUT_GRACE_S,
        }
    ]
    assert sharding.maybe_initialize_distributed({}) is False and len(calls) == 1
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: True)
    assert sharding.maybe_initialize_distributed(env) is False and len(calls) == 1


def test_the_train_command_refuses_a_half_specified_setup_in_one_line(tmp_path, monkeypatch, capsys):
    for key in TRIO:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:8476")
    code = cli.main(["train", "--model", "tiny-00004k", "--tokens", "2e4", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("chinchilla train: error: half-specified multi-process setup")
    assert err.count("\n") == 1 and "JAX_NUM_PROCESSES, JAX_PROCESS_ID not" in err
    assert not (tmp_path / "run").exists()  # refused before anything was created


@pytest.mark.parametrize(
    "process_id, awaited, error",
    [
        (
            "0",
            "waiting for the 1 other process to join at 127.0.0.1:{port}",
            "the 1 other process did not join at 127.0.0.1:{port}; start all 2 processes with the same",
        ),
        (
            "1",
            "waiting for the coordinator (process 0) at 127.0.0.1:{port}",
            "the coordinator (process 0) at 127.0.0.1:{port} did not answer; start process 0 there",
        ),
    ],
)
def test_a_missing_peer_or_coordinator_is_one_line_after_the_stated_wait(tmp_path, process_id, awaited, error):
    """`train` says what it waits for and ends with one line after CHINCHILLA_DISTRIBUTED_TIMEOUT, rather than
    printing nothing for 5 minutes (JAX's default) and aborting with a native stack trace and "another task died"."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in TRIO}
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
        JAX_NUM_PROCESSES="2",
        JAX_PROCESS_ID=process_id,
        CHINCHILLA_DISTRIBUTED_TIMEOUT="3",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chinchilla.cli",
            "train",
            "--model",
            "tiny-00004k",
            "--tokens",
            "2e4",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines[0] == (
        f"process {process_id} of 2: joining the JAX distributed service at 127.0.0.1:{port} "
        "(waiting up to 3 s: CHINCHILLA_DISTRIBUTED_TIMEOUT)"
    ), done.stderr
    assert f"process {process_id} of 2: {awaited.format(port=port)} (1 s of 3)" in lines, done.stderr
    assert lines[-1].startswith(f"chinchilla: error: process {process_id} of 2: {error.format(port=port)}")
    assert lines[-1].endswith("(waited 3 s, CHINCHILLA_DISTRIBUTED_TIMEOUT)")
    assert "Check failure" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()  # nothing was written


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf"])
def test_a_bad_distributed_timeout_is_one_line(tmp_path, monkeypatch, capsys, value):
    for key in TRIO:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CHINCHILLA_DISTRIBUTED_TIMEOUT", value)
    with pytest.raises(ValueError, match=f"CHINCHILLA_DISTRIBUTED_TIMEOUT='{value}' must be a positive number"):
        sharding.maybe_initialize_distributed()
    code = cli.main(["train", "--model", "tiny-00004k", "--tokens", "2e4", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "CHINCHILLA_DISTRIBUTED_TIMEOUT=" in err
    assert sharding.distributed_timeout({"CHINCHILLA_DISTRIBUTED_TIMEOUT": " 45 "}) == 45.0
    assert sharding.distributed_timeout({}) == sharding.DEFAULT_TIMEOUT_S == 300


def test_in_one_process_every_batch_row_is_this_processes_and_a_split_layout_is_refused():
    import jax

    mesh = sharding.make_mesh()
    batch = sharding.batch_sharding(mesh, leading_dims=1)
    shape = (1, 2 * jax.device_count(), 5)
    np.testing.assert_array_equal(sharding.process_batch_rows(batch, shape, 1), np.arange(shape[1]))
    np.testing.assert_array_equal(sharding.process_rows(batch, shape, 1, 1), np.arange(shape[1]))
    # were this process one of two, its devices would hold every row: the batch replicated across processes
    with pytest.raises(ValueError, match=r"devices hold batch rows .* not a 1/2 share: the batch is replicated"):
        sharding.process_rows(batch, shape, 1, 2)


def test_last_starts_names_the_rows_each_process_read():
    kwargs = dict(seq_len=32, seed=5)  # the default cache, as the training runs below use
    whole = data.batches(batch_size=6, **kwargs)
    shards = [data.batches(batch_size=3, process_index=i, process_count=2, **kwargs) for i in range(2)]
    tokens = data.split_tokens()
    for _ in range(3):
        rows = [next(shard) for shard in shards]
        expected = next(whole)
        assert not set(shards[0].last_starts) & set(shards[1].last_starts)
        np.testing.assert_array_equal(np.concatenate([s.last_starts for s in shards]), whole.last_starts)
        for shard, part in zip(shards, rows):
            np.testing.assert_array_equal(tokens[shard.last_starts[:, None] + np.arange(33)], part)
        np.testing.assert_array_equal(np.concatenate(rows), expected)


# -- two real processes -----------------------------------------------------------------------------------------

STEPS, HALF = 48, 24  # a run of STEPS steps, checkpointed at HALF and at the end
CONFIG = dict(
    tokens=STEPS * 8 * 128, batch_size=8, steps_per_dispatch=8, checkpoint_every=HALF, log_every=1, eval_batches=2
)
LOSS_TOLERANCE = 1e-4  # absolute, on losses ~4 nats: float32 sums reduced in another order (gloo across processes)
# measured: at most 9.5e-7 over 48 steps; a process reading another process's rows changes step 1's loss by ~1e-2.

WORKER = textwrap.dedent("""
    import functools, json, os, sys
    from chinchilla import metrics, runfiles, zoo
    from chinchilla.data import pipeline
    from chinchilla.train import TrainConfig, train_run

    out, record = sys.argv[1], sys.argv[2]
    import jax
    measure_peak = functools.partial(metrics.cpu_matmul_peak, sizes=(128,), repeats=2)  # quick
    peak_devices = []  # (process_index, id) of every device the CPU peak measurement put an array on
    def recording_peak():
        put = jax.device_put
        def recording_put(x, device=None, *args, **kwargs):
            peak_devices.append([device.process_index, device.id])
            return put(x, device, *args, **kwargs)
        jax.device_put = recording_put
        try:
            return measure_peak()
        finally:
            jax.device_put = put
    metrics.cpu_matmul_peak = recording_peak
    writes, rows = [], []
    for name in ("write_json_atomic", "append_jsonl", "rewrite_jsonl"):  # every write of a run file, by name
        def spy(path, *args, _write=getattr(runfiles, name), _name=name, **kwargs):
            writes.append([_name, os.path.basename(str(path))])
            return _write(path, *args, **kwargs)
        setattr(runfiles, name, spy)
    next_batch = pipeline.PackedBatches.__next__
    def recording_next(self):
        position = self.get_state()
        batch = next_batch(self)
        rows.append([self.description["split"], position["epoch"], position["step"], self.last_starts.tolist(),
                     self.rows.tolist()])
        return batch
    pipeline.PackedBatches.__next__ = recording_next

    if os.environ.get("DEVICE_ORDER"):  # the mesh over the global devices in this order, as jax.make_mesh on a
        from chinchilla import sharding      # multi-host TPU slice may lay them out (hosts interleaved)
        order = [int(i) for i in os.environ["DEVICE_ORDER"].split(",")]
        make_mesh = sharding.make_mesh
        sharding.make_mesh = lambda *sizes, devices=None: make_mesh(
            *sizes, devices=[jax.devices()[i] for i in order] if devices is None else devices)
    config = TrainConfig(model=zoo.get_model("tiny-00004k"), **json.loads(sys.argv[3]))
    summary = train_run(config, out, progress=False)
    saw_summary = os.path.exists(os.path.join(out, "summary.json"))  # train_run returns once the file is there
    with open(record, "w") as file:
        json.dump({"process": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count(),
                   "local_devices": jax.local_device_count(), "writes": writes, "rows": rows, "summary": summary,
                   "saw_summary": saw_summary, "peak_devices": peak_devices},
                  file)
""")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(
    out, processes: int, records, config: dict = CONFIG, order: list[int] | None = None
) -> list[tuple[subprocess.Popen, str]]:
    """Start one run in ``processes`` processes (8 CPU devices in all); each writes its record to records/<i>.json.
    ``order``: the global device order of the run's mesh (default: jax.devices())."""
    port = _free_port()
    launched = []
    for index in range(processes):
        env = {key: value for key, value in os.environ.items() if key not in TRIO}
        env.update(
            JAX_PLATFORMS="cpu",
            XLA_FLAGS=f"--xla_force_host_platform_device_count={8 // processes}",
            DEVICE_ORDER=",".join(map(str, order or [])),
        )
        if processes > 1:
            env.update(
                JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                JAX_NUM_PROCESSES=str(processes),
                JAX_PROCESS_ID=str(index),
                JAX_ENABLE_COMPILATION_CACHE="false",
            )
            # Only process 0 writes JAX's persistent cache and on CPU the others miss it, so with a warm cache
            # process 0 would reach the first cross-process collective a whole compile ahead of process 1; gloo
            # waits 30 s for its peers there. Compiling cold in both keeps them in step on a loaded machine.
        record = records / f"{out.name}-{index}"
        command = [sys.executable, "-c", WORKER, str(out), f"{record}.json", json.dumps(config)]
        with open(f"{record}.log", "w") as log:  # a file, not a pipe: nothing blocks on a full pipe
            launched.append(
                (subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), str(record))
            )
    return launched


def _log(record: str) -> str:
    with open(f"{record}.log") as log:
        return log.read()[-3000:]


def _finish(*runs) -> list[list[dict]]:
    """Wait for every process of ``runs`` (stopping all of them if one fails); their records, per run."""
    launched = [pair for run in runs for pair in run]
    deadline = time.monotonic() + 400
    try:
        while any(proc.poll() is None for proc, _ in launched):  # one failed process fails the test at once
            failed = [record for proc, record in launched if proc.returncode not in (None, 0)]
            assert not failed, "\n".join(_log(record) for record in failed)
            assert time.monotonic() < deadline, "timed out:\n" + "\n".join(_log(record) for _, record in launched)
            time.sleep(0.2)
        for proc, record in launched:
            assert proc.returncode == 0, _log(record)
    finally:
        for proc, _ in launched:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [[json.loads(open(f"{record}.json").read()) for _, record in run] for run in runs]


def _losses(run, steps: int = STEPS) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [row["step"] for row in rows]
    assert logged == list(range(1, steps + 1)), logged  # each step logged once: one writer
    return {row["step"]: row["loss"] for row in rows}


def _cut_at_half(source, target) -> None:
    """A copy of a finished run as it stood after its checkpoint at HALF (as if stopped there)."""
    shutil.copytree(source, target)
    (target / "summary.json").unlink()
    shutil.rmtree(target / "checkpoints" / str(STEPS))


INTERLEAVED = [
    0,
    4,
    2,
    6,
    1,
    5,
    3,
    7,
]  # a global device order: process 0 holds devices 0-3, at mesh positions 0, 2, 4, 6


@pytest.mark.slow
def test_two_processes_train_like_one_and_checkpoints_resume_across_process_counts(tmp_path):
    """Two processes against one, then each run's checkpoint resumed in the other process count. The resume in two
    processes lays the mesh over an interleaved device order, as jax.make_mesh on a multi-host TPU slice may: each
    process then holds rows [0, 2, 4, 6] or [1, 3, 5, 7] of every global batch and reads exactly those (neither
    refused at start-up for not being rows [0, 4) and [4, 8), nor reading those). It rides on the resume because
    every two-process launch costs each process a cold compile (the persistent cache is off for them, see _launch)."""
    TrainConfig(model=zoo.get_model("tiny-00004k"), **CONFIG)  # the worker's config is valid
    records = tmp_path / "records"
    records.mkdir()
    one, two = tmp_path / "one", tmp_path / "two"
    [solo], pair = _finish(_launch(one, 1, records), _launch(two, 2, records))

    # the launch: two processes of 4 devices each, one global mesh of 8
    assert [r["process"] for r in pair] == [0, 1] and solo["process"] == 0
    assert all(r["processes"] == 2 and r["devices"] == 8 and r["local_devices"] == 4 for r in pair)
    assert solo["processes"] == 1 and solo["devices"] == solo["local_devices"] == 8

    # the same losses, eval loss and summary as one process on the same global batch
    expected, got = _losses(one), _losses(two)
    assert max(abs(got[s] - expected[s]) for s in expected) < LOSS_TOLERANCE
    summaries = [json.loads((run / "summary.json").read_text()) for run in (one, two)]
    assert summaries[1]["processes"] == 2 and summaries[1]["steps"] == STEPS
    assert abs(summaries[1]["eval_loss"] - summaries[0]["eval_loss"]) < LOSS_TOLERANCE
    assert pair[1]["summary"]["eval_loss"] == pair[0]["summary"]["eval_loss"]  # every process returns one summary
    # each process measures the CPU peak on a device of its own (on another process's device nothing runs: ~1e16).
    # Checked by where the measurement put its arrays, never by comparing timings (a loaded machine skews those).
    for record in pair:
        assert record["peak_devices"], "the CPU peak was not measured"
        assert {process for process, _ in record["peak_devices"]} == {record["process"]}, record["peak_devices"]

    # each process read its own half of every global batch: disjoint rows, together the single process's rows
    def batches(record, split):
        return {(epoch, step): starts for name, epoch, step, starts, _ in record["rows"] if name == split}

    for split in ("train", "validation"):
        whole, halves = batches(solo, split), [batches(r, split) for r in pair]
        assert halves[0].keys() == halves[1].keys() == whole.keys() and whole
        for position, starts in whole.items():
            assert len(halves[0][position]) == len(halves[1][position]) == 4
            assert not set(halves[0][position]) & set(halves[1][position])
            assert halves[0][position] + halves[1][position] == starts

    # process 0 wrote every run file; process 1 wrote none (and its checkpoint shards went through orbax)
    assert {name for _, name in pair[0]["writes"]} == {"config.json", "metrics.jsonl", "summary.json"}
    assert pair[1]["writes"] == []
    assert all(record["saw_summary"] for record in pair)
    assert sorted(p.name for p in two.iterdir()) == [
        "checkpoints",
        "config.json",
        "metrics.jsonl",
        "run.lock",
        "summary.json",
    ]  # run.lock: process 0's (runlock.py)
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == [str(HALF), str(STEPS)]

    # a checkpoint written by two processes resumes in one, and one written by one process resumes in two
    two_to_one, one_to_two = tmp_path / "two_to_one", tmp_path / "one_to_two"
    _cut_at_half(two, two_to_one)
    _cut_at_half(one, one_to_two)
    [resumed_solo], resumed_pair = _finish(
        _launch(two_to_one, 1, records), _launch(one_to_two, 2, records, order=INTERLEAVED)
    )
    for run, record in ((two_to_one, resumed_solo), (one_to_two, resumed_pair[0])):
        first = next(row for row in record["rows"] if row[0] == "train")
        assert first[1:3] == [0, HALF]  # resumed at the checkpoint, not restarted
        losses = _losses(run)
        assert max(abs(losses[s] - expected[s]) for s in range(HALF + 1, STEPS + 1)) < LOSS_TOLERANCE
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == STEPS
        assert abs(summary["train_loss_tail"] - summaries[0]["train_loss_tail"]) < LOSS_TOLERANCE
    assert resumed_pair[1]["writes"] == [] and all(record["saw_summary"] for record in resumed_pair)
    # interleaved: each process read its own rows of every batch, together exactly the single process's rows, none
    # twice; which rows of the global batch follows the mesh, not the process index
    whole = batches(solo, "train")
    halves = [batches(record, "train") for record in resumed_pair]
    assert halves[0].keys() == halves[1].keys() and len(halves[0]) == STEPS - HALF
    for position, starts in halves[0].items():
        assert not set(starts) & set(halves[1][position])
        assert sorted(starts + halves[1][position]) == sorted(whole[position])
    first = [next(row for row in record["rows"] if row[0] == "train") for record in resumed_pair]
    assert [row[4] for row in first] == [[0, 2, 4, 6], [1, 3, 5, 7]]
