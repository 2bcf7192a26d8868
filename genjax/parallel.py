"""Device mesh and shardings: the batch is split over a `data` axis, parameters
are replicated.

One code path from one CPU to a multi-host TPU pod: a `jax.sharding.Mesh`
over all devices of all processes, `NamedSharding`s given to `jax.jit`, and
XLA's SPMD partitioner inserting the collectives (the gradient all-reduce).
The mesh axis is of type `Auto`: shardings are placed by jit's
`in_shardings`/`out_shardings` and `with_sharding_constraint`, not carried in
array types.
"""

import os
import uuid

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed() -> None:
  """Joins a multi-process run when one is configured; no-op otherwise.

  Either set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID
  (any cluster, or several processes on one machine), or set
  GENJAX_DISTRIBUTED=1 where JAX detects them itself (TPU pod slices, SLURM).
  """
  if jax.distributed.is_initialized():
    return
  if "JAX_COORDINATOR_ADDRESS" in os.environ or os.environ.get("GENJAX_DISTRIBUTED") == "1":
    # Collectives between CPU processes (several processes on one machine
    # standing in for hosts); accelerators use their own interconnect.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if "JAX_COORDINATOR_ADDRESS" in os.environ:
    jax.distributed.initialize(
        coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]),
    )
  elif os.environ.get("GENJAX_DISTRIBUTED") == "1":
    jax.distributed.initialize()


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier called `name`."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def shared_run_id() -> str:
  """A fresh random id, the same in every process of the run (process 0's).

  A collective in a multi-process run: every process must call it.
  """
  run_id = np.frombuffer(uuid.uuid4().bytes, np.uint8)
  if jax.process_count() > 1:
    run_id = multihost_utils.broadcast_one_to_all(run_id)
  return bytes(np.asarray(run_id, np.uint8)).hex()


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh with axis `data` over `devices` (default: all devices)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def unroll_steps(mesh: Mesh, convolutional: bool) -> bool:
  """Whether several train steps in one call run unrolled rather than in a
  rolled `lax.scan`: on CPU meshes, for steps with convolutions
  (`Family.convolutional`). XLA:CPU runs a conv net inside a while loop
  many times slower than the same operations unrolled, while a step of
  dense layers runs faster rolled (docs/performance.md); GPUs and TPUs run
  the rolled loop at full speed and compile it once."""
  return convolutional and mesh.devices.flat[0].platform == "cpu"


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
  """Splits dimension `batch_axis` over the `data` axis of the mesh."""
  return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  n = mesh.shape[DATA_AXIS]
  if batch_size % n:
    raise ValueError(
        f"config.batch_size={batch_size} must be divisible by the {n} devices "
        f"of the mesh; use a multiple of {n}."
    )


def replicate_on_mesh(tree, mesh: Mesh):
  """Puts a host pytree (numpy or jax arrays) on every device of the mesh."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)
