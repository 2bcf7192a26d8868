"""Small datasets held on device, with batches drawn inside the compiled step.

The whole split lives on every device as uint8; each step gathers its batch
from an epoch permutation derived from the step number, so no host input
pipeline runs and a resumed run draws exactly the batches an uninterrupted
one would.
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from genjax import parallel


@flax.struct.dataclass
class DeviceData:
  images: jax.Array  # [N, H, W, C] uint8
  labels: jax.Array  # [N] int32


def to_device(images: np.ndarray, labels: np.ndarray, mesh: Mesh) -> DeviceData:
  return parallel.replicate_on_mesh(
      DeviceData(np.asarray(images, np.uint8), np.asarray(labels, np.int32)), mesh
  )


def to_float(images_u8: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images_u8.astype(jnp.float32) / 127.5 - 1.0


def draw_batch(data: DeviceData, step: jax.Array, key: jax.Array, batch_size: int,
               num_batches: int = 1) -> dict[str, jax.Array]:
  """The `num_batches` batches of step `step`, without replacement per epoch.

  An epoch is N // (num_batches * batch_size) steps; the examples left over
  by the division are different ones each epoch.

  Returns:
    {'image': float32 [num_batches, B, H, W, C] in [-1, 1],
     'label': int32 [num_batches, B]}
  """
  n = data.images.shape[0]
  per_step = num_batches * batch_size
  steps_per_epoch = n // per_step
  epoch, position = jnp.divmod(step, steps_per_epoch)
  order = jax.random.permutation(jax.random.fold_in(key, epoch), n)
  idx = jax.lax.dynamic_slice_in_dim(order, position * per_step, per_step)
  idx = idx.reshape(num_batches, batch_size)
  return {"image": to_float(data.images[idx]), "label": data.labels[idx]}
