"""Faults from outside are said as what they are, not as our bug: a sweep worker process killed
(SIGKILL, as the kernel's out-of-memory killer sends), a scheduler's SIGTERM, and ``JAX_PLATFORMS`` naming a backend
this installation does not have."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chinchilla.cli import describe_error

ROOT = Path(__file__).resolve().parents[1]
# 6 runs of 2 s each (40 points, 0.05 s apart): the sweep is still running when a test kills it right after its
# first run logged a point, and a rerun (2 jobs) finishes in about 6 s.
SLOW_PRESET = """
from chinchilla import zoo
from chinchilla.fit.allocate import ChinchillaParams
from chinchilla.preset import Preset
from chinchilla.sweep.synthetic import SyntheticTrainer

SURFACE = ChinchillaParams(E=1.2, A=60.0, B=300.0, alpha=0.4, beta=0.35, source="test")
PRESET = Preset(
    name="slow", description="synthetic runs that take a while", ladder=zoo.ladder("tiny"), budgets=(1e11, 3e11),
    hparams=lambda model, tokens: {"batch_size": 8, "lr": 0.01}, center=(1e12, 2.4e4, SURFACE.a),
    sizes_per_budget=3, convention="non_embedding", min_steps=100,
    trainer=SyntheticTrainer(surface=SURFACE, log_points=40, delay_s=0.05, convention="non_embedding"),
)
"""


def start_sweep(tmp_path: Path, **popen) -> tuple[subprocess.Popen, Path]:
    preset = tmp_path / "slow.py"
    preset.write_text(SLOW_PRESET)
    out = tmp_path / "sweep"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "default"}
    process = subprocess.Popen(
        [sys.executable, "-m", "chinchilla.cli", "sweep", "--preset", str(preset), "--out", str(out), "--jobs", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
    deadline = time.time() + 240
    while not list(out.glob("runs/*/metrics.jsonl")):  # a worker is training
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no run started"
        time.sleep(0.2)
    return process, out


def pool_workers(pid: int) -> list[int]:
    """The sweep's worker processes: children of ``pid`` started by multiprocessing's spawn (not its resource
    tracker)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]


def rerun_finishes(tmp_path: Path, out: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chinchilla.cli",
            "sweep",
            "--preset",
            str(tmp_path / "slow.py"),
            "--out",
            str(out),
            "--jobs",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads children from /proc")
def test_a_worker_killed_from_outside_is_said_and_a_rerun_resumes(tmp_path):
    process, out = start_sweep(tmp_path)
    workers = pool_workers(process.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)  # what the kernel's out-of-memory killer does
    _, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert process.returncode == 1, err
    assert len(lines) == 1, err
    assert lines[0].startswith("chinchilla sweep: error: ") and "internal error" not in err
    assert f"pid {workers[0]}" in lines[0] and "SIGKILL" in lines[0] and "out-of-memory" in lines[0]
    assert "rerun the same command to resume" in lines[0]
    rerun_finishes(tmp_path, out)


@pytest.mark.slow
@pytest.mark.parametrize("whom", ["process", "group"])
def test_sigterm_ends_with_one_line_and_no_resource_tracker_warning(tmp_path, whom):
    """A scheduler sends SIGTERM to the job's process (or, as SLURM does, to every process of its group)."""
    process, out = start_sweep(tmp_path, start_new_session=True)
    if whom == "group":
        os.killpg(process.pid, signal.SIGTERM)
    else:
        os.kill(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines() == ["chinchilla sweep: terminated by SIGTERM (rerun the same command to resume)"]
    rerun_finishes(tmp_path, out)


CUDA_INSTALLED = any(importlib.util.find_spec(name) for name in ("jax_cuda12_plugin", "jax_cuda13_plugin"))


@pytest.mark.skipif(CUDA_INSTALLED, reason="a CUDA plugin is installed here")
@pytest.mark.parametrize("platform", ["gpu", "cuda"])
def test_a_missing_gpu_backend_says_how_to_install_one(tmp_path, platform):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chinchilla.cli",
            "train",
            "--model",
            "tiny-00004k",
            "--tokens",
            "1e5",
            "--out",
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": platform},
        timeout=300,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"chinchilla train: error: JAX_PLATFORMS='{platform}' asks for a GPU backend")
    assert 'pip install -U "jax[cuda12]"' in lines[0] and "jax[cuda13]" in lines[0]
    assert "internal error" not in done.stderr


def test_a_backend_that_is_installed_but_does_not_start_is_said_with_its_reason(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    error = RuntimeError(
        "Unable to initialize backend 'cuda': FAILED_PRECONDITION: No visible GPU devices. (set "
        "JAX_PLATFORMS='' to automatically choose an available backend)"
    )
    message, status = describe_error(error)
    assert status == 2 and "installed but did not start" in message and "No visible GPU devices" in message
    monkeypatch.setenv("JAX_PLATFORMS", "tpu")
    message, status = describe_error(
        RuntimeError(
            "Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so: cannot open shared object file"
        )
    )
    assert status == 2 and 'pip install -U "jax[tpu]"' in message and "libtpu is not installed" in message
    assert describe_error(RuntimeError("something else"))[0].startswith("internal error")
