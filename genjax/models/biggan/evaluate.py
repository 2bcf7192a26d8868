"""BigGAN evaluations during training: grids of the EMA generator's samples.

Sample metrics (FID, KID, ...) are computed by the loop for every family
with a sampler (genjax.metrics.scores), as for the gan family's folder runs:
in Inception-v3's features when its weights are on disk, else in a network
trained on the folder's own classes. This module draws the
grids: `samples` from the full normal, `samples_truncated` with the
truncation trick at 0.5, both of the same latents every time and, for a
conditional run, one row per class.
"""

import jax
import jax.numpy as jnp
import ml_collections

from genjax import images, viz
from genjax.models.biggan import networks as nets
from genjax.models.biggan import step as biggan

GRID_TRUNCATION = 0.5


def grid_labels(num: int, num_classes: int) -> tuple[jax.Array | None, int]:
  """(labels [K * per], per): `per` samples of each class in turn, one grid
  row per class, `per` = num // K (at least 1); (None, 0) when unconditional."""
  if not num_classes:
    return None, 0
  per = max(num // num_classes, 1)
  return jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), per), per


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test_data):
  """state -> ({'samples': grid, 'samples_truncated': grid}, {})."""
  del test_data

  def draw(state, truncation):
    labels, _ = grid_labels(config.num_eval_samples, nets.num_label_classes(
        state.generator.params))
    num = config.num_eval_samples if labels is None else labels.shape[0]
    return biggan.sample(state, key, num, config, labels, truncation)

  full = jax.jit(lambda state: draw(state, None))
  truncated = jax.jit(lambda state: draw(state, GRID_TRUNCATION))

  def evaluate(state):
    _, per = grid_labels(config.num_eval_samples, nets.num_label_classes(
        state.generator.params))
    grid = lambda x: viz.grid(images.to_uint8(x), per or None)
    return {"samples": grid(full(state)), "samples_truncated": grid(truncated(state))}, {}

  return evaluate
