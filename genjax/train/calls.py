"""The compiled calls the loop runs: k train steps in one `jax.jit` call.

Inside a call each step's batch is drawn on device (or, streamed, read by the
host beforehand), and its key is `fold_in(train_key, step)`, so a resumed run
repeats an uninterrupted one. The steps of a call run in a `lax.scan`,
unrolled on CPU for convolutional steps (`parallel.unroll_steps`).
"""

import functools

import jax
import ml_collections

from genjax import images as images_lib
from genjax import models, parallel

MAX_QUIET_UNROLL = 10  # steps per call unrolled on CPU without a note


def multi_step(state, dataset, train_key, data_key, *, train_step, draw_batch, num_steps,
               batch_size, num_batches, sharding, unroll):
  """`num_steps` train steps in one compiled call; metrics stacked [num_steps].

  The batch of each step is drawn on device from `dataset`.
  `unroll`: unroll the steps instead of a rolled `lax.scan`.
  """

  def body(state, _):
    step = state.step
    batch = draw_batch(dataset, step, data_key, batch_size, num_batches)
    batch = jax.lax.with_sharding_constraint(batch, sharding)
    return train_step(state, batch, jax.random.fold_in(train_key, step))

  if num_steps == 1:
    state, metrics = body(state, None)
    return state, jax.tree.map(lambda m: m[None], metrics)
  return jax.lax.scan(body, state, length=num_steps, unroll=True if unroll else 1)


def multi_step_streamed(state, batches, train_key, *, train_step, sharding, unroll):
  """The steps of `batches` (uint8 images [k, n, B, H, W, C] and labels read
  by the host, genjax.data.stream) in one compiled call; metrics [k]."""

  def body(state, batch):
    batch = {"image": images_lib.to_float(batch["image"]), "label": batch["label"]}
    batch = jax.lax.with_sharding_constraint(batch, sharding)
    return train_step(state, batch, jax.random.fold_in(train_key, state.step))

  return jax.lax.scan(body, state, batches, unroll=True if unroll else 1)


def steps_unrolled(family: models.Family, config: ml_collections.ConfigDict, mesh) -> bool:
  """Whether the loop unrolls the steps of one call (`parallel.unroll_steps`)."""
  return parallel.unroll_steps(mesh, family.convolutional(config))


def make_train_call(family: models.Family, config: ml_collections.ConfigDict, mesh,
                    num_steps: int, streamed: bool = False, state_sharding=None,
                    unroll: bool | None = None):
  """The jitted call the loop runs.

  Device path: (state, dataset, train_key, data_key) -> (state after
  `num_steps` steps, metrics [num_steps]); streamed: (state, batches,
  train_key). The state is donated and placed as `state_sharding` (default
  replicated; a population's from `family.state_sharding`); each step's
  batch as `family.batch_sharding` says (split over the mesh's `data` axis).
  `unroll`: unroll the steps (True) or roll them (False) instead of
  `parallel.unroll_steps`'s choice (for measurements).
  """
  if unroll is None:
    unroll = steps_unrolled(family, config, mesh)
  train_step = family.make_train_step(config)
  sharding = family.batch_sharding(mesh)
  replicated = parallel.replicated(mesh)
  out = (replicated if state_sharding is None else state_sharding, replicated)
  if streamed:
    fn = functools.partial(multi_step_streamed, train_step=train_step, sharding=sharding,
                           unroll=unroll)
  else:
    fn = functools.partial(
        multi_step, train_step=train_step, draw_batch=family.make_draw_batch(config),
        num_steps=num_steps, batch_size=config.batch_size,
        num_batches=family.batches_per_step(config), sharding=sharding, unroll=unroll)
  return jax.jit(fn, donate_argnums=0, out_shardings=out)


def unroll_note(config: ml_collections.ConfigDict, mesh) -> str | None:
  """A note when a CPU mesh would unroll more than MAX_QUIET_UNROLL steps into
  one compiled call (`parallel.unroll_steps`): compile time grows with them."""
  k = config.steps_per_call
  if not steps_unrolled(models.get(config.family), config, mesh) or k <= MAX_QUIET_UNROLL:
    return None
  return (f"Note: config.steps_per_call={k}: on CPU the {k} steps of a call are unrolled "
          f"into one program, whose compilation grows with them (minutes for large "
          f"networks); --config.steps_per_call=1 compiles a single step.")
