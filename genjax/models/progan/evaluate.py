"""Progressive GAN evaluations during training: a grid of samples from fixed
latents at the run's current resolution, upsampled (nearest) to the final
size so that the grids of every phase line up, and the progress scalars
`resolution` and `alpha` of the last step trained.

Sample metrics (FID, KID, ...) are computed by the loop from
`genjax.models.progan.step.sample`, which draws the same way.
"""

import jax
import ml_collections

from genjax import images, viz
from genjax.models.progan import networks as nets
from genjax.models.progan import step as progan


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test_data):
  """state -> ({'samples': grid}, {'resolution', 'alpha'})."""
  del test_data
  sample_fn = jax.jit(lambda state: progan.sample(state, key, config.num_eval_samples, config))

  def evaluate(state):
    sched = progan.schedule(config, state.image_size)
    level, alpha = jax.device_get(progan.trained_progress(state.step, sched))
    scalars = {"resolution": float(nets.resolution_of(int(level))), "alpha": float(alpha)}
    return {"samples": viz.grid(images.to_uint8(sample_fn(state)))}, scalars

  return evaluate
