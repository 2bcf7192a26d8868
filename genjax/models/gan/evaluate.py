"""GAN evaluations during training: a grid of samples from fixed latents.

Sample metrics (FID, KID, ...) are computed by the loop for every family
with a sampler (genjax.metrics.scores), so this is the grid alone.
"""

import jax
import ml_collections

from genjax import images, viz
from genjax.models.gan import step as gan


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test_data):
  """state -> ({'samples': grid}, {}): samples of the same latents every time."""
  del test_data
  sample_fn = jax.jit(lambda state: gan.sample(state, key, config.num_eval_samples, config))

  def evaluate(state):
    return {"samples": viz.grid(images.to_uint8(sample_fn(state)))}, {}

  return evaluate
