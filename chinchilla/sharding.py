"""One device mesh with named axes, and a small table from the model's logical axis names to mesh axes.

The mesh has three axes (sizes multiply to the device count):

- ``data``: pure data parallelism (parameters replicated, batch split);
- ``fsdp``: the batch split *and* parameters split along their ``embed`` dimension (ZeRO-3 style; GSPMD gathers them
  for the matmuls);
- ``tensor``: Megatron-style model parallelism over heads, the feed-forward width and the vocabulary.

All axes are ``AxisType.Auto``: GSPMD propagates shardings from the annotated parameters and batch
(``jax.make_mesh`` defaults to Explicit axes, under which a dense layer with a sharded contracting dimension fails).

Logical names (carried by every ``nnx.Param`` as ``logical_axes`` metadata, see ``chinchilla.model``) map to mesh
axes by ``LOGICAL_RULES``. A mesh axis is dropped from a dimension it does not divide (that dimension stays
replicated over it), and never used twice in one array, so any model runs on any mesh.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES: tuple[str, ...] = ("data", "fsdp", "tensor")
BATCH_AXES: tuple[str, ...] = ("data", "fsdp")

# logical axis name -> mesh axis (or axes, or None = replicated)
LOGICAL_RULES: Mapping[str, str | tuple[str, ...] | None] = {
    "batch": BATCH_AXES,
    "layers": None,  # the stacked layers' axis (chinchilla.model.Blocks): every device holds every layer's slice
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "mlp": "tensor",
    "kv": None,
    "qkv": None,
    "norm": None,
}


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices: list | None = None) -> Mesh:
    """A ``(data, fsdp, tensor)`` mesh over ``devices`` (default: all devices of all processes).

    One size may be -1: it takes whatever the others leave. Raises ValueError naming the sizes when they do not
    multiply to the device count.
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = {"data": data, "fsdp": fsdp, "tensor": tensor}
    for name, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or (size <= 0 and size != -1):
            raise ValueError(f"mesh axis {name}={size!r} must be a positive int or -1")
    free = [name for name, size in sizes.items() if size == -1]
    if len(free) > 1:
        raise ValueError(f"mesh axes {free} are all -1; at most one axis may take the remaining devices")
    fixed = math.prod(size for size in sizes.values() if size != -1)
    if free:
        if len(devices) % fixed:
            raise ValueError(f"{len(devices)} devices cannot be split into mesh {sizes}")
        sizes[free[0]] = len(devices) // fixed
    if math.prod(sizes.values()) != len(devices):
        raise ValueError(f"mesh {sizes} needs {math.prod(sizes.values())} devices, but there are {len(devices)}")
    shape = tuple(sizes[name] for name in MESH_AXES)
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)


def logical_to_spec(
    logical_axes: tuple[str | None, ...], shape: tuple[int, ...], mesh: Mesh, rules: Mapping[str, Any] = LOGICAL_RULES
) -> PartitionSpec:
    """The PartitionSpec of an array of ``shape`` whose dimensions carry ``logical_axes``.

    Each logical name maps to mesh axes through ``rules``; a mesh axis that does not divide the dimension, or that an
    earlier dimension already uses, is left out (replicated).
    """
    if len(logical_axes) != len(shape):
        raise ValueError(f"logical_axes={logical_axes} has {len(logical_axes)} names for shape {shape}")
    used: set[str] = set()
    spec = []
    for name, size in zip(logical_axes, shape):
        if name is not None and name not in rules:
            raise ValueError(f"logical axis {name!r} has no rule; known: {sorted(rules)}")
        target = rules[name] if name is not None else None
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        chosen = []
        for axis in axes:
            span = mesh.shape[axis] * math.prod(mesh.shape[a] for a in chosen)
            if axis not in used and mesh.shape[axis] > 1 and size % span == 0:
                chosen.append(axis)
        used.update(chosen)
        spec.append(None if not chosen else chosen[0] if len(chosen) == 1 else tuple(chosen))
    return PartitionSpec(*spec)


def param_shardings(abstract_state: Any, mesh: Mesh) -> Any:
    """NamedShardings for an NNX state whose ``Param`` leaves carry ``logical_axes`` metadata, as a pure dict tree
    (the layout of ``nnx.to_pure_dict(state)``). Leaves without metadata are replicated."""
    from flax import nnx

    def one(variable: Any) -> NamedSharding:
        axes = variable.get_metadata().get("logical_axes") if isinstance(variable, nnx.Variable) else None
        shape = tuple(variable.shape)
        spec = PartitionSpec() if axes is None else logical_to_spec(tuple(axes), shape, mesh)
        return NamedSharding(mesh, spec)

    tree = jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    return nnx.to_pure_dict(tree)


def like_params(tree: Any, params: Any, shardings: Any, mesh: Mesh) -> Any:
    """Shardings for a pytree (an optimizer state) whose array leaves mirror parameters: a leaf whose key path ends
    with a parameter's path and has its shape gets that parameter's sharding; any other leaf (step counts) is
    replicated."""
    by_path = {}
    for (path, leaf), sharding in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(shardings)):
        by_path[tuple(path)] = (tuple(leaf.shape), sharding)
    replicated = NamedSharding(mesh, PartitionSpec())

    def one(path: tuple, leaf: Any) -> NamedSharding:
        for start in range(len(path)):
            match = by_path.get(tuple(path[start:]))
            if match is not None and match[0] == tuple(np.shape(leaf)):
                return match[1]
        return replicated

    return jax.tree_util.tree_map_with_path(one, tree)


def batch_sharding(mesh: Mesh, leading_dims: int = 0) -> NamedSharding:
    """Batches [*leading, B, T]: the batch dimension split over ``data`` x ``fsdp``, sequences whole."""
    return NamedSharding(mesh, PartitionSpec(*([None] * leading_dims), BATCH_AXES, None))


def batch_divisor(mesh: Mesh) -> int:
    """The number of batch shards: a global batch size must be a multiple of it."""
    return math.prod(mesh.shape[axis] for axis in BATCH_AXES)


def process_batch_rows(sharding: NamedSharding, global_shape: tuple[int, ...], dim: int) -> np.ndarray:
    """The indices along dimension ``dim`` of a global array of ``global_shape`` laid out by ``sharding`` that this
    process's devices hold, sorted: the rows of the global batch that this process must supply to
    ``global_batch`` (``jax.make_array_from_process_local_data`` maps its local rows onto them in this order)."""
    held: set[int] = set()
    for index in sharding.addressable_devices_indices_map(tuple(global_shape)).values():
        held.update(range(*index[dim].indices(global_shape[dim])))
    return np.array(sorted(held), dtype=np.int64)


def process_rows(sharding: NamedSharding, global_shape: tuple[int, ...], dim: int, process_count: int) -> np.ndarray:
    """The rows of dimension ``dim`` that this process must read for a global batch of ``global_shape`` laid out by
    ``sharding``: ``process_batch_rows``, checked to be this process's share (size / process_count rows).

    Any device order works: ``jax.make_mesh`` on a multi-host TPU slice may interleave the hosts' devices (e.g.
    ``[0, 4, 2, 6, 1, 5, 3, 7]``), so a process may hold rows ``[0, 1, 4, 5, ...]``; it reads exactly those
    (``chinchilla.data.batches(rows=...)``). Refused with ValueError: a mesh under which processes hold more
    than their share (batch rows replicated across hosts, e.g. a ``tensor`` axis that spans hosts), since every
    process would then have to read rows another also reads.
    """
    size = global_shape[dim]
    rows = process_batch_rows(sharding, global_shape, dim)
    if size % process_count or len(rows) != size // process_count:
        shown = rows.tolist() if len(rows) <= 16 else f"{len(rows)} rows from {rows[0]} to {rows[-1]}"
        raise ValueError(
            f"this process's devices hold batch rows {shown} of {size}, not a 1/{process_count} share: "
            "the batch is replicated across processes (a tensor axis spanning hosts?); use a mesh "
            "whose data x fsdp axes span the processes and whose tensor axis stays within one host"
        )
    return rows


def global_batch(local_batch: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from this process's rows of the batch (its dimension after the leading ones): the rows
    ``process_rows`` names, in that (sorted) order, which is how ``jax.make_array_from_process_local_data`` places
    them on this process's devices."""
    return jax.make_array_from_process_local_data(sharding, local_batch)


# -- several processes (hosts) -----------------------------------------------------------------------------------

ENV_ADDRESS, ENV_COUNT, ENV_ID = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"
ENV_MODE = "CHINCHILLA_DISTRIBUTED"


def _cluster(environ: Mapping[str, str]) -> str | None:
    """A launcher of several processes that ``jax.distributed.initialize()`` detects by itself, named, or None.

    Only launches of more than one process count: a one-task SLURM job or a one-host TPU VM runs as one process
    without a coordinator."""

    def count(name: str) -> int:
        value = environ.get(name, "1")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an integer") from None

    # the variables JAX's own detectors (jax._src.clusters) require
    if (
        all(
            key in environ
            for key in ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
        )
        and count("SLURM_NTASKS") > 1
    ):
        return f"SLURM (SLURM_NTASKS={environ['SLURM_NTASKS']})"
    if "OMPI_MCA_orte_hnp_uri" in environ and count("OMPI_COMM_WORLD_SIZE") > 1:
        return f"Open MPI (OMPI_COMM_WORLD_SIZE={environ['OMPI_COMM_WORLD_SIZE']})"
    for key in ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES"):
        if "," in environ.get(key, ""):
            return f"TPU pod slice ({key} lists {environ[key].count(',') + 1} hosts)"
    return None


def distributed_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The arguments for ``jax.distributed.initialize`` that the environment asks for, or None for one process.

    - ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0, reachable from every host), ``JAX_NUM_PROCESSES`` and
      ``JAX_PROCESS_ID`` (0 .. N-1, a different one per process): all three, or none. ``JAX_NUM_PROCESSES=1`` means
      one process (no coordinator).
    - Otherwise a launcher that JAX detects itself: SLURM (``srun`` with more than one task), Open MPI (``mpirun``
      with more than one process), a TPU pod slice on GKE (``TPU_WORKER_HOSTNAMES`` listing several hosts). Any of
      the three variables above, when set, overrides what JAX would detect.
    - ``CHINCHILLA_DISTRIBUTED=auto``: call ``jax.distributed.initialize()`` and let JAX detect everything (a
      multi-host TPU VM pod slice, whose hosts JAX finds through the GCE metadata server);
      ``CHINCHILLA_DISTRIBUTED=off``: one process whatever the environment says (independent tasks of one job).

    Raises ValueError with one line naming the variables when the setup is half-specified (some of the three set,
    no launcher to supply the rest) or a value is malformed.
    """
    environ = os.environ if environ is None else environ
    mode = environ.get(ENV_MODE, "").strip().lower()
    if mode not in ("", "auto", "off"):
        raise ValueError(f"{ENV_MODE}={environ[ENV_MODE]!r} must be 'auto', 'off' or unset")
    if mode == "off":
        return None
    given = {key: environ[key].strip() for key in (ENV_ADDRESS, ENV_COUNT, ENV_ID) if environ.get(key, "").strip()}
    settings: dict[str, Any] = {}
    if ENV_ADDRESS in given:
        address = given[ENV_ADDRESS]
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"{ENV_ADDRESS}={address!r} must be host:port (the address of process 0 and a free "
                "port on it), e.g. 10.0.0.1:8476"
            )
        settings["coordinator_address"] = address
    for key, name in ((ENV_COUNT, "num_processes"), (ENV_ID, "process_id")):
        if key in given:
            try:
                settings[name] = int(given[key])
            except ValueError:
                raise ValueError(f"{key}={given[key]!r} is not an integer") from None
    count, rank = settings.get("num_processes"), settings.get("process_id")
    if count is not None and count < 1:
        raise ValueError(f"{ENV_COUNT}={count} must be at least 1")
    if count is not None and rank is not None and not 0 <= rank < count:
        raise ValueError(f"{ENV_ID}={rank} must be in [0, {ENV_COUNT}={count})")
    if rank is not None and rank < 0:
        raise ValueError(f"{ENV_ID}={rank} must be >= 0")
    if mode == "auto":
        return settings
    cluster = _cluster(environ)
    if cluster is None and (not given or count == 1):
        return None
    if len(given) < 3 and cluster is None:
        missing = [key for key in (ENV_ADDRESS, ENV_COUNT, ENV_ID) if key not in given]
        shown = ", ".join(f"{key}={value}" for key, value in given.items())
        raise ValueError(
            f"half-specified multi-process setup: {shown} set but {', '.join(missing)} not; set all "
            f"of {ENV_ADDRESS}, {ENV_COUNT}, {ENV_ID} (or none, for one process)"
        )
    return settings


ENV_TIMEOUT = "CHINCHILLA_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0  # jax.distributed.initialize's own default
TIMEOUT_GRACE_S = 60  # JAX's own limit lies this far past ours, so that ours (one line) ends the wait, not its abort


def distributed_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds to wait for every process (and the coordinator) to join: ``CHINCHILLA_DISTRIBUTED_TIMEOUT``, else
    300. Raises ValueError in one line for a value that is not a positive number of seconds."""
    environ = os.environ if environ is None else environ
    text = environ.get(ENV_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"{ENV_TIMEOUT}={environ[ENV_TIMEOUT]!r} must be a positive number of seconds (default "
            f"{DEFAULT_TIMEOUT_S:g})"
        )
    return value


class _JoinWatch:
    """While ``jax.distributed.initialize`` waits for the other processes (it releases the GIL), say every
    ``interval`` seconds what is awaited; at ``timeout`` print one error line and exit with status 2, before JAX's
    own limit would abort the process with a native stack trace ("another task died")."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        timeout: float,
        environ: Mapping[str, str],
        stream: Any = None,
        interval: float | None = None,
    ):
        self.address = settings.get("coordinator_address") or environ.get(ENV_ADDRESS) or "the launcher's coordinator"
        self.count, self.rank = settings.get("num_processes"), settings.get("process_id")
        self.timeout = timeout
        self.interval = interval or min(10.0, max(timeout / 3, 0.5))
        self.stream = stream
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="chinchilla-distributed-join", daemon=True)

    def _say(self, line: str) -> None:
        print(line, file=self.stream or sys.stderr, flush=True)

    @property
    def who(self) -> str:
        rank = "?" if self.rank is None else self.rank
        return f"process {rank} of {'?' if self.count is None else self.count}"

    def _coordinator_answers(self) -> bool | None:
        host, _, port = str(self.address).rpartition(":")
        if not host or not port.isdigit():
            return None
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return True
        except OSError:
            return False

    def _awaited(self) -> tuple[str, str]:
        """(what this process waits for, the error if it never comes)."""
        others = f"{self.count - 1} other process{'es' if self.count != 2 else ''}" if self.count else "the others"
        fix = (
            f"start all {self.count or 'N'} processes with the same {ENV_ADDRESS} and {ENV_COUNT} and each its "
            f"own {ENV_ID}, or set {ENV_COUNT}=1 for one process"
        )
        if self.rank == 0:
            return (
                f"waiting for the {others} to join at {self.address}",
                f"the {others} did not join at {self.address}; {fix}",
            )
        if self._coordinator_answers() is False:
            return (
                f"waiting for the coordinator (process 0) at {self.address}",
                f"the coordinator (process 0) at {self.address} did not answer; start process 0 there (or fix "
                f"{ENV_ADDRESS}: host and port reachable from this host)",
            )
        return (
            f"connected to {self.address}, waiting for every process to join",
            f"not every process joined at {self.address}; {fix}",
        )

    def _watch(self) -> None:
        start = time.monotonic()
        self._say(
            f"{self.who}: joining the JAX distributed service at {self.address} (waiting up to "
            f"{self.timeout:g} s: {ENV_TIMEOUT})"
        )
        while not self.done.wait(min(self.interval, max(self.timeout - (time.monotonic() - start), 0))):
            elapsed = time.monotonic() - start
            waiting, error = self._awaited()
            if elapsed >= self.timeout:
                self._say(f"chinchilla: error: {self.who}: {error} (waited {self.timeout:g} s, {ENV_TIMEOUT})")
                os._exit(2)
            self._say(f"{self.who}: {waiting} ({elapsed:.0f} s of {self.timeout:g})")

    def __enter__(self) -> _JoinWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done.set()
        self.thread.join()


def maybe_initialize_distributed(environ: Mapping[str, str] | None = None) -> bool:
    """Call ``jax.distributed.initialize(**distributed_settings())`` when this process is one of several (see
    ``distributed_settings`` for the variables read). On CPU, cross-process collectives use gloo. Idempotent.
    Returns whether it initialised. Must run before any other JAX computation (JAX raises otherwise).

    While it waits for the other processes it says so on stderr, every 10 s (a third of the limit if shorter); a
    process or coordinator still missing after ``CHINCHILLA_DISTRIBUTED_TIMEOUT`` seconds (default 300) ends this
    process with one error line and exit status 2 (JAX alone would abort with a native stack trace).
    Raises ValueError for a half-specified or malformed setup."""
    environ = os.environ if environ is None else environ
    timeout = distributed_timeout(environ)
    if jax.distributed.is_initialized():
        return False
    settings = distributed_settings(environ)
    if settings is None:
        return False
    if getattr(jax.config, "jax_cpu_collectives_implementation", "gloo") in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # older JAX defaulted to "none"
    with _JoinWatch(settings, timeout, environ):
        jax.distributed.initialize(**settings, initialization_timeout=math.ceil(timeout) + TIMEOUT_GRACE_S)
    return True
