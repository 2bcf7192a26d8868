"""config.precision: the compute dtype of the networks.

A policy, not a rewrite: every family's Flax modules take a `dtype` (Flax's:
activations and matrix products in it) and keep `param_dtype` float32, so
parameters, their gradients and the optimiser state stay float32. Each
module casts what it returns (images, logits, means and log-variances) to
float32, so losses, penalties and likelihoods are computed in float32;
normalisation statistics (Flax's `force_float32_reductions`, pixel norm,
the minibatch standard deviation) and spectral norm's power iteration are
float32 too. With "float32" every cast is the identity: the programs are
those of a run without the key.
"""

import jax
import jax.numpy as jnp
import ml_collections

from genjax import configs

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
assert tuple(DTYPES) == configs.PRECISIONS


def compute_dtype(config: ml_collections.ConfigDict):
  """The networks' compute dtype named by config.precision."""
  return DTYPES[config.precision]


def to_float32(tree):
  """Every floating array of `tree` as float32 (a network's outputs, before a loss)."""
  return jax.tree.map(
      lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)

