"""Optimisers whose numbers live in their state, not in Python constants.

Every family builds its optimisers here. The learning rate and the
optimiser's other numbers (Adam's b1, b2, eps; RMSProp's decay) are arrays
in the optimiser state (`optax.inject_hyperparams`), so that one compiled
step serves members of a population that differ in them
(genjax.population): the members' states carry their own values, and the
step's program is the same. A schedule is a multiplier of the learning rate,
a function of the update count that starts at 1.

    state = optim.train_state(module.apply, params, learning_rate=2e-4,
                              b1=0.5, b2=0.999)
"""

from typing import Any, Callable, Optional

import jax.numpy as jnp
import optax

from genjax.state import TrainState

Multiplier = Callable[[Any], Any]  # update count -> factor of the learning rate


def _with_schedule(inner: optax.GradientTransformation, learning_rate,
                   schedule: Optional[Multiplier]) -> optax.GradientTransformation:
  steps = [inner]
  if schedule is not None:
    steps.append(optax.scale_by_schedule(schedule))
  steps.append(optax.scale(-1.0 * learning_rate))
  return optax.chain(*steps)


def _adam(learning_rate, b1, b2, eps, *, schedule=None):
  return _with_schedule(optax.scale_by_adam(b1=b1, b2=b2, eps=eps), learning_rate, schedule)


def _rmsprop(learning_rate, decay, eps, *, schedule=None):
  return _with_schedule(optax.scale_by_rms(decay=decay, eps=eps), learning_rate, schedule)


# name -> (the optimiser's numbers with their defaults, its constructor)
OPTIMIZERS = {
    "adam": ({"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8}, _adam),
    "rmsprop": ({"learning_rate": 1e-3, "decay": 0.9, "eps": 1e-8}, _rmsprop),
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
