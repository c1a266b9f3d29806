"""Who a sweep worker is: ``--worker``/``--num-workers``, or the index a batch system gives each task of an array.

Workers claim runs one at a time through the run lock (``chinchilla.sweep.runner``), so the index and count only
name a worker in its log lines: any mix of counts, any number of workers started at any time, trains every run
once. Read, in this order:

- the flags, when given;
- a SLURM job array (``sbatch --array=0-7``): ``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN`` (arrays may
  start at 1) of ``SLURM_ARRAY_TASK_COUNT``;
- a Kubernetes indexed job: ``JOB_COMPLETION_INDEX``, with the count given by ``--num-workers`` (Kubernetes does
  not export it);
- otherwise worker 0 of 1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SLURM_ID, SLURM_MIN, SLURM_COUNT = "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT"
K8S_INDEX = "JOB_COMPLETION_INDEX"


def _whole(environ: Mapping[str, str], name: str, low: int) -> int:
    text = environ[name].strip()
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={environ[name]!r} is not a whole number") from None
    if value < low:
        raise ValueError(f"{name}={value} must be at least {low}")
    return value


def worker_identity(
    worker: int | None = None, num_workers: int | None = None, environ: Mapping[str, str] | None = None
) -> tuple[int, int, str]:
    """(worker index, worker count, where they came from) for this sweep worker; see the module docstring.

    Raises ValueError, in one line naming the flag or variable, for a malformed or inconsistent value."""
    environ = os.environ if environ is None else environ
    if worker is None and environ.get(SLURM_ID, "").strip():
        task = _whole(environ, SLURM_ID, 0)
        low = _whole(environ, SLURM_MIN, 0) if environ.get(SLURM_MIN, "").strip() else 0
        if task < low:
            raise ValueError(f"{SLURM_ID}={task} lies below {SLURM_MIN}={low}")
        worker, source = task - low, f"{SLURM_ID}={task}"
        if num_workers is None and environ.get(SLURM_COUNT, "").strip():
            num_workers = _whole(environ, SLURM_COUNT, 1)
            source += f" of {SLURM_COUNT}={num_workers}"
        elif num_workers is None:
            raise ValueError(f"{SLURM_ID}={task} is set but {SLURM_COUNT} is not; give --num-workers")
    elif worker is None and environ.get(K8S_INDEX, "").strip():
        worker = _whole(environ, K8S_INDEX, 0)
        source = f"{K8S_INDEX}={worker}"
        if num_workers is None:
            raise ValueError(f"{K8S_INDEX}={worker} is set: give --num-workers N, the indexed job's completions")
    else:
        source = "--worker/--num-workers" if worker is not None or num_workers is not None else "default"
    worker = 0 if worker is None else worker
    num_workers = 1 if num_workers is None else num_workers
    if not 0 <= worker < num_workers:
        raise ValueError(
            f"worker {worker} (from {source}) must lie in [0, {num_workers}): the worker count is "
            "--num-workers, else SLURM_ARRAY_TASK_COUNT"
        )
    return worker, num_workers, source
