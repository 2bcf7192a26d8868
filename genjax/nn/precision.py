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

# None: Flax's default, the dtype of the inputs and parameters (float32; float64
# under `jax.enable_x64` with float64 parameters, as the gradient tests run).
DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}
assert tuple(DTYPES) == configs.PRECISIONS


def compute_dtype(config: ml_collections.ConfigDict):
  """The networks' compute dtype named by config.precision (None: inferred)."""
  return DTYPES[config.precision]


def cast(dtype, *arrays):
  """`arrays` in the compute dtype `dtype`; unchanged when it is None."""
  return arrays if dtype is None else tuple(a.astype(dtype) for a in arrays)


def to_float32(tree):
  """Every floating array of `tree` narrower than float32 (bfloat16, float16)
  as float32: a network's outputs, before a loss. Float32 and wider (float64
  under `jax.enable_x64`, as the gradient tests run) pass unchanged."""
  def cast(x):
    if jnp.issubdtype(x.dtype, jnp.floating) and jnp.finfo(x.dtype).bits < 32:
      return x.astype(jnp.float32)
    return x
  return jax.tree.map(cast, tree)

