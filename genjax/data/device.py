"""Small datasets held on device, with batches drawn inside the compiled step.

The whole split lives on every device as uint8; each step gathers its batch
from an epoch permutation derived from the step number, so no host input
pipeline runs and a resumed run draws exactly the batches an uninterrupted
one would.

The permutation is a keyed bijection of [0, N) evaluated at the batch's
positions only (`permuted_index`), so a step costs O(batch), not the
O(N log N) sort of `jax.random.permutation` (26 ms a step for N = 60,000 on
a 2-core CPU, against under 1 ms).
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from genjax import images as images_lib
from genjax import parallel


@flax.struct.dataclass
class DeviceData:
  images: jax.Array  # [N, H, W, C] uint8
  labels: jax.Array  # [N] int32


def to_device(images: np.ndarray, labels: np.ndarray, mesh: Mesh) -> DeviceData:
  return parallel.replicate_on_mesh(
      DeviceData(np.asarray(images, np.uint8), np.asarray(labels, np.int32)), mesh
  )


_FEISTEL_ROUNDS = 6


def _mix(x: jax.Array, key: jax.Array) -> jax.Array:
  """A 32-bit integer hash of x under key (uint32 in, uint32 out)."""
  x = (x ^ key) * jnp.uint32(0x9E3779B1)
  x = (x ^ (x >> 15)) * jnp.uint32(0x85EBCA77)
  return x ^ (x >> 13)


def permuted_index(positions: jax.Array, n: int, key: jax.Array) -> jax.Array:
  """The images at `positions` of a random permutation of [0, n) chosen by `key`.

  A balanced Feistel network over the smallest even number of bits that
  holds n is a bijection of [0, 2^bits); applying it again to values >= n
  ("cycle walking") leaves a bijection of [0, n). Fewer than 4 applications
  are needed on average (2^bits < 4n). For any key, distinct positions give
  distinct indices.
  """
  bits = max(2, int(n - 1).bit_length() + (int(n - 1).bit_length() % 2))
  half = bits // 2
  mask = jnp.uint32((1 << half) - 1)
  round_keys = jax.random.bits(key, (_FEISTEL_ROUNDS,), jnp.uint32)

  def feistel(x):
    left, right = x >> half, x & mask
    for r in range(_FEISTEL_ROUNDS):
      left, right = right, left ^ (_mix(right, round_keys[r]) & mask)
    return (left << half) | right

  x = feistel(jnp.asarray(positions, jnp.uint32))
  x = jax.lax.while_loop(lambda x: jnp.any(x >= n),
                         lambda x: jnp.where(x >= n, feistel(x), x), x)
  return x.astype(jnp.int32)


def draw_batch(data: DeviceData, step: jax.Array, key: jax.Array, batch_size: int,
               num_batches: int = 1) -> dict[str, jax.Array]:
  """The `num_batches` batches of step `step`, without replacement per epoch.

  An epoch is N // (num_batches * batch_size) steps; the examples left over
  by the division are different ones each epoch.

  Returns:
    {'image': float32 [num_batches, B, H, W, C] in [-1, 1],
     'label': int32 [num_batches, B]}
  """
  idx = step_indices(step, data.images.shape[0], key, num_batches * batch_size)
  idx = idx.reshape(num_batches, batch_size)
  return {"image": images_lib.to_float(data.images[idx]), "label": data.labels[idx]}


def step_indices(step, n: int, key: jax.Array, per_step: int) -> jax.Array:
  """The example indices [per_step] of step `step`: positions of an epoch
  permutation, a fresh one (keyed by `fold_in(key, epoch)`) every epoch of
  n // per_step steps."""
  steps_per_epoch = n // per_step
  epoch, position = jnp.divmod(step, steps_per_epoch)
  positions = position * per_step + jnp.arange(per_step)
  return permuted_index(positions, n, jax.random.fold_in(key, epoch))
