"""Device mesh and partition rules: where every array of the training run lives.

The mesh has two axes: `data` (batch parallelism) and `fsdp` (the batch is split over it
too, and large parameters and their optimiser state are sharded over it, ZeRO-3 style).
All placement decisions are made here, so the trainer, the checkpoint restore and the
evaluators agree on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from weaksup.errors import UsageError

AXES = ("data", "fsdp")
# The batch dimension is split over both axes: fsdp replicas also see different data.
BATCH_AXES = ("data", "fsdp")
# Parameters below this many elements stay replicated: sharding them saves little
# memory and costs a collective each.
MIN_FSDP_SIZE = 2**14


class ShardingError(UsageError, ValueError):
    """A mesh or batch layout that cannot work on the available devices."""


def mesh_shape(mesh_config: Mapping[str, Any] | None, num_devices: int) -> tuple[int, int]:
    """(data, fsdp) sizes; a -1 (or missing) data size takes the remaining devices."""
    mesh_config = dict(mesh_config or {})
    unknown = set(mesh_config) - set(AXES)
    if unknown:
        raise ShardingError(f"unknown mesh axes {sorted(unknown)} (known: {', '.join(AXES)})")
    fsdp = int(mesh_config.get("fsdp", 1) or 1)
    data = int(mesh_config.get("data", -1))
    if fsdp < 1:
        raise ShardingError(f"mesh.fsdp must be >= 1, got {fsdp}")
    if data == -1:
        if num_devices % fsdp:
            raise ShardingError(f"mesh.fsdp={fsdp} does not divide the {num_devices} devices")
        data = num_devices // fsdp
    if data * fsdp != num_devices:
        raise ShardingError(f"mesh data={data} x fsdp={fsdp} != {num_devices} devices")
    return data, fsdp


def make_mesh(mesh_config: Mapping[str, Any] | None = None, devices: Any = None) -> Mesh:
    """A ("data", "fsdp") mesh over all (or the given) devices."""
    devices = jax.devices() if devices is None else list(devices)
    shape = mesh_shape(mesh_config, len(devices))
    # Auto axes: the classic jit-with-shardings model (jax.make_mesh defaults to Explicit).
    # Devices keep jax's process-major order, so each process's share of the batch is a
    # contiguous block, as make_array_from_process_local_data expects.
    return Mesh(np.asarray(devices).reshape(shape), AXES, axis_types=(AxisType.Auto,) * len(AXES))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over every device of the mesh."""
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    """The same full array on every device."""
    return NamedSharding(mesh, P())


def fsdp_spec(shape: tuple[int, ...], fsdp_size: int, min_size: int = MIN_FSDP_SIZE) -> P:
    """Shards the largest axis divisible by the fsdp size; small arrays stay replicated."""
    if fsdp_size <= 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return P()
    candidates = [(size, i) for i, size in enumerate(shape) if size % fsdp_size == 0]
    if not candidates:
        return P()
    _, axis = max(candidates)
    spec: list[Any] = [None] * len(shape)
    spec[axis] = "fsdp"
    return P(*spec)


def tree_shardings(abstract_tree: Any, mesh: Mesh, min_size: int = MIN_FSDP_SIZE) -> Any:
    """NamedShardings for a pytree of arrays or ShapeDtypeStructs under the fsdp rule."""
    fsdp_size = mesh.shape["fsdp"]
    return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), fsdp_size, min_size)), abstract_tree)


def check_batch_layout(global_batch_size: int, mesh: Mesh, process_count: int | None = None) -> int:
    """Validates a global batch against the mesh and processes; returns the per-process batch."""
    process_count = jax.process_count() if process_count is None else process_count
    n = mesh.shape["data"] * mesh.shape["fsdp"]
    if global_batch_size % n:
        raise ShardingError(
            f"global batch {global_batch_size} is not divisible by the {n} devices of the mesh "
            f"(data={mesh.shape['data']} x fsdp={mesh.shape['fsdp']})"
        )
    if global_batch_size % process_count:
        raise ShardingError(f"global batch {global_batch_size} is not divisible by {process_count} processes")
    return global_batch_size // process_count


def to_host(x: jax.Array) -> np.ndarray:
    """A global array gathered whole onto this host (every process gets all of it)."""
    if jax.process_count() == 1:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def make_global_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles each process's share of a batch into global arrays split over the mesh."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}
