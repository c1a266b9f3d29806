"""Worker processes for concurrent sweeps: each trains one run at a time with XLA's CPU thread pool of size one.

Why one thread per worker: runs of a sweep are independent, and the tiny models of a CPU sweep keep barely more than
one core busy each, so ``jobs`` single-threaded processes use a machine's cores better than one multi-threaded one.
Why the *same* thread count whatever ``jobs`` is: XLA's CPU matmuls split their work by the size of the thread pool,
which changes the float32 rounding (measured, jax 0.10.2: tiny-02975k's losses differ in the last bit between the
default pool and a one-thread pool; tiny-00099k's do not). With one thread in every worker, a sweep's losses are
bitwise the same for every ``jobs``.

How: XLA sizes its pool from the CPUs the process may run on when the backend starts, so a worker pins itself to one
CPU, starts the backend, then widens the affinity of every one of its threads again (the pool keeps its size; the OS
may move its one thread to any free core; widening only the calling thread would leave XLA's threads on the first
CPU, so all workers would share one core). ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` is not used: it changes
the numbers (another code path) and, per jax-ml/jax#1539, does not bound every pool. Workers are started with
``spawn`` (forking a process that already runs JAX threads is unsafe) and, on Linux, die with their parent
(``PR_SET_PDEATHSIG``), so a killed sweep leaves no orphan training a run that the next invocation resumes.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor

JOBS_AUTO = "auto"


class WorkerDied(RuntimeError):
    """A worker process of a sweep ended while runs were under way: killed from outside (a signal: the kernel's
    out-of-memory killer sends SIGKILL) or exited with a status. Not a bug of ours; a rerun resumes. The command line
    prints its message as one error line (``outside_fault``)."""

    outside_fault = True


def worker_exits(pool: ProcessPoolExecutor, wait_s: float = 5.0) -> list[tuple[int, int | None]]:
    """(pid, exit code) of the pool's worker processes, once one of them has ended (waiting at most ``wait_s``
    seconds; None: still running). A negative code -N: ended by signal N. Read before ``stop_pool``."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    deadline = time.monotonic() + wait_s
    while processes and all(p.exitcode is None for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [(process.pid, process.exitcode) for process in processes]


def worker_death_text(exits: list[tuple[int, int | None]]) -> str:
    """What happened to a broken pool, in one line: which worker ended how, the likely cause, what to do."""
    ended = [(pid, code) for pid, code in exits if code is not None]
    # The pool ends the other workers with SIGTERM once one has died: the first cause is any other ending.
    cause = next(((p, c) for p, c in ended if c != -signal.SIGTERM), None) or (ended[0] if ended else None)
    resume = (
        "rerun the same command to resume: finished runs are kept, and the interrupted runs resume from "
        "their last checkpoint"
    )
    if cause is None:
        return f"a sweep worker process ended while training (how is unknown); {resume}"
    pid, code = cause
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        likely = {
            "SIGKILL": "most likely the kernel's out-of-memory killer (see `dmesg`, or the job's memory limit; "
            "fewer --jobs need less memory), or a scheduler or user that killed it",
            "SIGTERM": "something outside stopped it (a scheduler, a user)",
            "SIGSEGV": "a crash in native code (XLA, a driver, a library)",
            "SIGBUS": "a memory fault in native code, or a file it had mapped was truncated or its disk went away",
            "SIGABRT": "native code aborted (XLA or a library; its message is printed above)",
        }.get(name, "a signal from outside")
        return (
            f"a sweep worker process (pid {pid}) was killed by {name} while training: {likely}; not a fault "
            f"of the sweep; {resume}"
        )
    return (
        f"a sweep worker process (pid {pid}) exited with status {code} while training (its own error is "
        f"printed above); {resume}"
    )


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int | str | None) -> int | None:
    """``"auto"`` -> on the CPU backend, the number of usable cores (2 workers on the idle 2-core machine: 1.28x the
    in-process runner's FLOPs per wall-second, BENCHMARKS.md); on an accelerator None (its runs share the device:
    one at a time, in this process). An int >= 1
    as given; None stays None (train in the calling process). Raises ValueError otherwise."""
    if jobs is None:
        return None
    if jobs == JOBS_AUTO:
        import jax

        return usable_cores() if jax.default_backend() == "cpu" else None
    if isinstance(jobs, str) and jobs.isdigit():
        jobs = int(jobs)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be a positive integer or {JOBS_AUTO!r}")
    return jobs


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def init_worker(parent_pid: int) -> None:
    """Process-pool initializer: die with the parent, then start JAX's CPU backend with a one-thread pool."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    # A scheduler's SIGTERM goes to every process of the job: the parent stops cleanly and kills its workers, so a
    # worker waits for that instead of dying first (which would read as a worker killed from outside).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    one_thread_backend()


def one_thread_backend() -> None:
    """Start JAX's backend in this process with XLA's CPU thread pool of size one (see the module docstring).
    Must run before anything else in the process uses JAX."""
    if not hasattr(os, "sched_setaffinity"):
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        import jax

        jax.devices()
    finally:
        widen_all_threads(allowed)


def widen_all_threads(allowed: set[int]) -> None:
    """Give every thread of this process the affinity ``allowed``. ``sched_setaffinity(0, ...)`` sets the calling
    thread's mask only; the threads XLA started while the process was pinned keep the one CPU they were born with,
    so without this every worker's compute ran on the same CPU (measured: 2 workers kept 1.06 cores busy)."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: only this thread can be reached
        threads = [0]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, allowed)
        except OSError:  # the thread ended meanwhile
            pass


def make_pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` spawned worker processes, each with a one-thread XLA backend, that die with this process."""
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(os.getpid(),),
    )


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and kill the workers now (a killed run resumes from its last checkpoint)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # before shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
