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
from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES: tuple[str, ...] = ("data", "fsdp", "tensor")
BATCH_AXES: tuple[str, ...] = ("data", "fsdp")

# logical axis name -> mesh axis (or axes, or None = replicated)
LOGICAL_RULES: Mapping[str, str | tuple[str, ...] | None] = {
    "batch": BATCH_AXES,
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


def logical_to_spec(logical_axes: tuple[str | None, ...], shape: tuple[int, ...], mesh: Mesh,
                    rules: Mapping[str, Any] = LOGICAL_RULES) -> PartitionSpec:
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


def global_batch(local_batch: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from this process's rows of the batch (its dimension after the leading ones).

    Each process reads different rows (``chinchilla.data`` shards by process), so the ``data`` x ``fsdp`` axes must
    span the processes and ``tensor`` must stay within one host, the usual layout.
    """
    return jax.make_array_from_process_local_data(sharding, local_batch)


def maybe_initialize_distributed() -> bool:
    """Call ``jax.distributed.initialize()`` when this process is one of several: on a multi-host TPU slice, or when
    the coordinator is named in the environment (``JAX_COORDINATOR_ADDRESS``, SLURM, Open MPI). Idempotent. Returns
    whether it initialised. Must run before any other JAX call."""
    if jax.distributed.is_initialized():
        return False
    launched = any(key in os.environ for key in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))
    tpu_pod = "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")
    if not (launched or tpu_pod):
        return False
    jax.distributed.initialize()
    return True
