"""Optimisers whose numbers live in their state, not in Python constants.

Every family builds its optimisers here. The learning rate and the
optimiser's other numbers (Adam's b1, b2, eps; RMSProp's decay) are arrays
in the optimiser state (`optax.inject_hyperparams`), so that one compiled
step serves members of a population that differ in them
(genjax.train.population): the members' states carry their own values, and the
step's program is the same. A schedule is a multiplier of the learning rate,
a function of the update count that starts at 1.

    state = optim.train_state(module.apply, params, learning_rate=2e-4,
                              b1=0.5, b2=0.999)
"""

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from genjax.state import TrainState

Multiplier = Callable[[Any], Any]  # update count -> factor of the learning rate


def linear_decay(num_steps: int, decay_start: int) -> Multiplier:
  """1 until `decay_start`, then linear to 0 at `num_steps` (CycleGAN's and
  pix2pix's schedule)."""
  decay_steps = max(num_steps - decay_start, 1)
  return optax.join_schedules(
      [optax.constant_schedule(1.0), optax.linear_schedule(1.0, 0.0, decay_steps)],
      [decay_start])


def _with_schedule(inner: optax.GradientTransformation, learning_rate,
                   schedule: Optional[Multiplier]) -> optax.GradientTransformation:
  steps = [inner]
  if schedule is not None:
    steps.append(optax.scale_by_schedule(schedule))
  steps.append(optax.scale(-1.0 * learning_rate))
  return optax.chain(*steps)


def _adam(learning_rate, b1, b2, eps, *, schedule=None):
  return _with_schedule(optax.scale_by_adam(b1=b1, b2=b2, eps=eps), learning_rate, schedule)


class BurdaAdamState(NamedTuple):
  count: jax.Array  # [] int32, updates so far
  mu: optax.Updates  # first moments
  nu: optax.Updates  # second moments


def scale_by_burda_adam(b1, b2, eps, grad_scale) -> optax.GradientTransformation:
  """Adam as Burda et al.'s code runs it (yburda/iwae, optimizers.py), which
  differs from Kingma and Ba's in three ways: the second moments start at 1
  rather than 0; update t (from 1) moves by the moments of the updates
  before it, so the first moves nothing, times sqrt(1 - b2^t) / (1 - b1^t);
  and their gradient is of the batch's summed bound where genjax's losses
  are means, which `grad_scale` (the batch size) restores, since the moments'
  start at 1 and eps make the update depend on the gradient's scale."""

  def init(params):
    return BurdaAdamState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params),
                          jax.tree.map(jnp.ones_like, params))

  def update(updates, state, params=None):
    del params
    t = (state.count + 1).astype(jnp.float32)
    alpha = jnp.sqrt(1 - b2**t) / (1 - b1**t)
    out = jax.tree.map(lambda m, v: alpha * m / (jnp.sqrt(v) + eps), state.mu, state.nu)
    grads = jax.tree.map(lambda g: grad_scale * g, updates)
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
    return out, BurdaAdamState(optax.safe_increment(state.count), mu, nu)

  return optax.GradientTransformation(init, update)


def _adam_burda(learning_rate, b1, b2, eps, grad_scale, *, schedule=None):
  return _with_schedule(scale_by_burda_adam(b1, b2, eps, grad_scale), learning_rate, schedule)


def _rmsprop(learning_rate, decay, eps, *, schedule=None):
  return _with_schedule(optax.scale_by_rms(decay=decay, eps=eps), learning_rate, schedule)


# name -> (the optimiser's numbers with their defaults, its constructor)
OPTIMIZERS = {
    "adam": ({"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8}, _adam),
    "rmsprop": ({"learning_rate": 1e-3, "decay": 0.9, "eps": 1e-8}, _rmsprop),
    # Burda et al.'s code's Adam (scale_by_burda_adam) with its numbers.
    "adam_burda": ({"learning_rate": 1e-3, "b1": 0.99, "b2": 0.999, "eps": 1e-4,
                    "grad_scale": 1.0}, _adam_burda),
}


def make(name: str = "adam", schedule: Optional[Multiplier] = None) -> optax.GradientTransformation:
  """The optimiser `name`, its numbers injected (placeholders until
  `with_numbers` sets them in a state)."""
  if name not in OPTIMIZERS:
    raise ValueError(f"Unknown optimiser {name!r}; choose one of {sorted(OPTIMIZERS)}.")
  defaults, constructor = OPTIMIZERS[name]
  return optax.inject_hyperparams(constructor, static_args=("schedule",))(
      **defaults, schedule=schedule)


def with_numbers(state: TrainState, **numbers) -> TrainState:
  """`state` with the optimiser's numbers (learning_rate=..., b1=...) set.

  The values may be traced arrays (a population's per-member values); they
  are stored as float32 scalars, replacing the placeholders of `make`.
  """
  hyper = dict(state.opt_state.hyperparams)
  unknown = set(numbers) - set(hyper)
  if unknown:
    raise ValueError(f"The optimiser has no numbers {sorted(unknown)}; it has {sorted(hyper)}.")
  hyper.update({k: jnp.asarray(v, jnp.float32) for k, v in numbers.items()})
  return state.replace(opt_state=state.opt_state._replace(hyperparams=hyper))


def numbers(state: TrainState) -> dict:
  """The optimiser's numbers as stored in `state` (arrays)."""
  return dict(state.opt_state.hyperparams)


def train_state(apply_fn, params, batch_stats=None, *, name: str = "adam",
                schedule: Optional[Multiplier] = None, **numbers_) -> TrainState:
  """A TrainState whose optimiser `name` has `numbers_` (learning_rate, b1, ...)
  in its state; numbers not given keep the optimiser's defaults."""
  state = TrainState.create(apply_fn=apply_fn, params=params,
                            batch_stats={} if batch_stats is None else batch_stats,
                            tx=make(name, schedule))
  defaults = OPTIMIZERS[name][0]
  return with_numbers(state, **{**defaults, **numbers_})
