"""Image conventions shared by every part of genjax.

Images are uint8 [0, 255] on disk, in datasets and in sample files, and
float32 in [-1, 1] inside models and steps. Batches are NHWC.
"""

import jax
import jax.numpy as jnp
import numpy as np


def to_float(images_u8):
  """uint8 [0, 255] -> float32 [-1, 1]; numpy in, numpy out; jax in, jax out."""
  return images_u8.astype(np.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
  """float [-1, 1] (any array) -> uint8 [0, 255] numpy, rounded and clipped."""
  x = np.asarray(images, dtype=np.float32)
  return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def random_crop_flip(images: jax.Array, key: jax.Array, size: int = 0,
                     flip: bool = False) -> jax.Array:
  """A random `size` x `size` crop of each image [B, H, W, C] (none when
  `size` is 0 or the full size), then a left-right flip of each with
  probability 1/2 when `flip`."""
  b, h, _, c = images.shape
  crop_key, flip_key = jax.random.split(key)
  if size and size < h:
    offsets = jax.random.randint(crop_key, (b, 2), 0, h - size + 1)
    images = jax.vmap(lambda im, o: jax.lax.dynamic_slice(
        im, (o[0], o[1], 0), (size, size, c)))(images, offsets)
  if flip:
    mirrored = jax.random.bernoulli(flip_key, 0.5, (b, 1, 1, 1))
    images = jnp.where(mirrored, images[:, :, ::-1], images)
  return images


def map_in_batches(fn, inputs: np.ndarray, batch: int, progress=None) -> list:
  """[fn(chunk) for chunks of `batch` rows of `inputs`] as numpy, each chunk
  padded to `batch` rows so that a jitted `fn` compiles once, and each
  output (an array or a tuple of arrays, batch-major) trimmed back.

  A single chunk smaller than `batch` is passed as it is (one shape anyway).
  `progress(rows_done)` is called after each chunk.
  """
  outputs = []
  for i in range(0, len(inputs), batch):
    chunk = inputs[i:i + batch]
    n = len(chunk)
    if n < batch and len(inputs) > batch:
      chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
    outputs.append(jax.tree.map(lambda a: np.asarray(a)[:n], fn(chunk)))
    if progress is not None:
      progress(i + n)
  return outputs
