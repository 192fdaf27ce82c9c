"""The device mesh ('data', 'fsdp', 'time') from the config's `mesh` section."""
from __future__ import annotations

import math

import jax
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

from lumiere_jax.names import MESH_AXES
from lumiere_jax.settings import ConfigError, MeshSettings

# Auto axes: the compiler propagates shardings through the model (reshapes that fold time into
# batch included); the parts that need explicit communication are written with jax.shard_map.
AXIS_TYPES = (AxisType.Auto,) * len(MESH_AXES)


def mesh_shape(settings: MeshSettings, device_count: int) -> dict[str, int]:
    """Axis sizes with -1 resolved; refuses sizes whose product is not `device_count`."""
    sizes = {axis: getattr(settings, axis) for axis in MESH_AXES}
    fixed = math.prod(size for size in sizes.values() if size != -1)
    wildcard = [axis for axis, size in sizes.items() if size == -1]
    if wildcard and device_count % fixed == 0:
        sizes[wildcard[0]] = device_count // fixed
    if math.prod(sizes.values()) != device_count:
        given = " x ".join(f"{axis}={getattr(settings, axis)}" for axis in MESH_AXES)
        raise ConfigError(
            f"config.mesh {given} does not fit the {device_count} device(s): the axis sizes must "
            f"multiply to {device_count} (one axis may be -1: the devices the others leave).")
    return sizes


def make_mesh(settings: MeshSettings, devices=None) -> Mesh:
    """A mesh over `devices` (default: every device of every process) with Auto axis types.

    On a TPU torus `jax.make_mesh` gives each mesh axis whole physical axes; a shape it cannot
    lay out that way (fsdp=8 on v5p's 4x4x4) is laid out by splitting a physical axis."""
    devices = jax.devices() if devices is None else list(devices)
    sizes = mesh_shape(settings, len(devices))
    shape = tuple(sizes[axis] for axis in MESH_AXES)
    try:
        return jax.make_mesh(shape, MESH_AXES, axis_types=AXIS_TYPES, devices=devices)
    except NotImplementedError:
        grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
        return Mesh(grid, MESH_AXES, axis_types=AXIS_TYPES)
