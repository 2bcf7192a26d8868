"""Training state pytrees: everything a run needs to continue, in one pytree.

A state is what is jitted, sharded, checkpointed and restored. Each network
has its own `TrainState` (params, optimiser state, batch statistics); each
family's state (GANState in steps/gan.py, VAEState in steps/vae.py) adds the
global step and whatever else the family carries.
"""

from typing import Any

import flax
import jax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the network's non-trainable collections."""

  batch_stats: Any = flax.struct.field(default_factory=dict)

  def variables(self, params=None) -> dict[str, Any]:
    """The `variables` dict for `apply_fn`, with `params` overriding."""
    out = {"params": self.params if params is None else params}
    if self.batch_stats:
      out["batch_stats"] = self.batch_stats
    return out


def param_count(params) -> int:
  return sum(x.size for x in jax.tree.leaves(params))
