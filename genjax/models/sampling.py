"""What each family reports at an evaluation, beside the shared sample metrics.

One module per family (`gan`, `vae`, `cyclegan`), each with
`make_evaluator(config, key, test) -> evaluate(state) -> (grids, scalars)`
for the training loop and, where the family has its own measures,
`evaluate_metrics(...)` for `genjax.evaluate`. This module holds what they
share: drawing samples in fixed-size compiled chunks.
"""

import jax
import numpy as np

from genjax import images as images_lib


class Sampler:
  """`sampler(state, num, key, labels=None)`: uint8 [num, H, W, C], `batch` per
  compiled call (compiled once, reused for every state of the same shape).

  `sample_fn(state, key, num, config, labels=None)` is a family's sampler.
  """

  def __init__(self, sample_fn, config, batch: int = 500):
    self.batch = batch
    self._sample = jax.jit(lambda s, k: sample_fn(s, k, batch, config))
    self._sample_labels = jax.jit(lambda s, k, y: sample_fn(s, k, batch, config, labels=y))

  def chunks(self, state, num: int, key: jax.Array, labels=None):
    """uint8 [<= batch, H, W, C] arrays, one per compiled call, that together
    are `self(state, num, key, labels)`: what a caller writes as they come
    holds one batch in memory, whatever `num`. `labels`: anything sliced
    as [start:stop] to an int array (e.g. the label list of `num`)."""
    for i in range(-(-num // self.batch)):
      k = jax.random.fold_in(key, i)
      n = min(self.batch, num - i * self.batch)
      if labels is None:
        out = self._sample(state, k)
      else:
        y = np.resize(np.asarray(labels[i * self.batch:i * self.batch + n], np.int32),
                      self.batch)
        out = self._sample_labels(state, k, y)
      yield images_lib.to_uint8(np.asarray(out)[:n])

  def __call__(self, state, num: int, key: jax.Array, labels=None) -> np.ndarray:
    images = None
    done = 0
    for chunk in self.chunks(state, num, key, labels):
      if images is None:  # one uint8 array, filled: no float copy of all of them
        images = np.empty((num, *chunk.shape[1:]), np.uint8)
      images[done:done + len(chunk)] = chunk
      done += len(chunk)
    return images


def draw(sample_fn, state, config, num: int, key: jax.Array, batch: int = 500,
         labels=None) -> np.ndarray:
  """uint8 [num, H, W, C] samples of `state`, `batch` per compiled call."""
  return Sampler(sample_fn, config, min(batch, num))(state, num, key, labels)
