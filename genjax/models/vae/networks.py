"""VAE encoder and decoder (Kingma & Welling 2014), MLP and convolutional.

The encoder maps images [B, H, W, C] to the mean and log-variance [B, Z] of a
diagonal Gaussian posterior q(z | x). The decoder maps z [B, Z] to the
parameters of p(x | z) per pixel: Bernoulli logits, or a Gaussian mean with a
fixed log-variance or one learned per pixel. The MLP variant with two layers
of 200 tanh units and Z = 50 is the one-stochastic-layer VAE of Burda et al.
(2016), whose MNIST test NLL is 86.76 nats.

`dtype` (config.precision) is the compute dtype of the layers; parameters
stay float32, and every output (mean, log-variance, logits) is float32, so
the KL and likelihood terms are computed in float32.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn import layers
from genjax.nn import precision

ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu, "elu": nn.elu}
LIKELIHOODS = ("bernoulli", "gaussian")
# The MLP's weight initialisers: "" is Flax's (LeCun normal); "glorot" is
# Glorot & Bengio's uniform, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)),
# as in Burda et al.'s code. Biases start at zero either way.
WEIGHT_INITS = {"": nn.linear.default_kernel_init, "glorot": nn.initializers.glorot_uniform()}


class MLPEncoder(nn.Module):
  latent_dim: int = 50
  hidden: Sequence[int] = (200, 200)
  activation: str = "tanh"
  weight_init: str = ""  # a key of WEIGHT_INITS
  dtype: Any = None  # compute dtype; parameters and outputs are float32

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    dense = functools.partial(nn.Dense, kernel_init=WEIGHT_INITS[self.weight_init],
                              dtype=self.dtype)
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = ACTIVATIONS[self.activation](dense(width)(h))
    return precision.to_float32((dense(self.latent_dim)(h), dense(self.latent_dim)(h)))


class ConvEncoder(nn.Module):
  latent_dim: int = 16
  width: int = 32
  activation: str = "relu"
  dtype: Any = None  # compute dtype; parameters and outputs are float32

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    act = ACTIVATIONS[self.activation]
    conv = functools.partial(nn.Conv, dtype=self.dtype)
    dense = functools.partial(nn.Dense, dtype=self.dtype)
    h = act(conv(self.width, (4, 4), strides=(2, 2))(x))
    h = act(conv(2 * self.width, (4, 4), strides=(2, 2))(h))
    h = act(dense(8 * self.width)(h.reshape(h.shape[0], -1)))
    return precision.to_float32((dense(self.latent_dim)(h), dense(self.latent_dim)(h)))


class _Head(nn.Module):
  """Per-pixel likelihood parameters from features [B, H, W, C]."""

  likelihood: str
  learn_variance: bool
  fixed_logvar: float

  @nn.compact
  def __call__(self, out: jax.Array) -> dict[str, jax.Array]:
    out = precision.to_float32(out)  # the likelihood's parameters in float32 at any dtype
    if self.likelihood == "bernoulli":
      return {"logits": out}
    if self.learn_variance:
      logvar = self.param("logvar", nn.initializers.zeros, out.shape[1:])
    else:
      logvar = jnp.full(out.shape[1:], self.fixed_logvar)
    return {"mean": out, "logvar": jnp.broadcast_to(logvar[None], out.shape)}


class MLPDecoder(nn.Module):
  image_shape: Sequence[int] = (28, 28, 1)
  hidden: Sequence[int] = (200, 200)
  activation: str = "tanh"
  likelihood: str = "bernoulli"
  learn_variance: bool = True
  fixed_logvar: float = 0.0
  weight_init: str = ""  # a key of WEIGHT_INITS
  dtype: Any = None  # compute dtype; parameters and outputs are float32

  @nn.compact
  def __call__(self, z: jax.Array) -> dict[str, jax.Array]:
    dense = functools.partial(nn.Dense, kernel_init=WEIGHT_INITS[self.weight_init],
                              dtype=self.dtype)
    h = z
    for width in self.hidden:
      h = ACTIVATIONS[self.activation](dense(width)(h))
    size = functools.reduce(lambda a, b: a * b, self.image_shape)
    out = dense(size)(h).reshape(z.shape[0], *self.image_shape)
    return _Head(self.likelihood, self.learn_variance, self.fixed_logvar)(out)


class ConvDecoder(nn.Module):
  image_shape: Sequence[int] = (28, 28, 1)
  width: int = 32
  activation: str = "relu"
  likelihood: str = "bernoulli"
  learn_variance: bool = True
  fixed_logvar: float = 0.0
  dtype: Any = None  # compute dtype; parameters and outputs are float32

  @nn.compact
  def __call__(self, z: jax.Array) -> dict[str, jax.Array]:
    act = ACTIVATIONS[self.activation]
    size, _, channels = self.image_shape
    start = size // 4
    dense = functools.partial(nn.Dense, dtype=self.dtype)
    h = act(dense(8 * self.width)(z))
    h = act(dense(start * start * 2 * self.width)(h)).reshape(z.shape[0], start, start, -1)
    h = act(layers.Upsample2x(self.width, dtype=self.dtype)(h))
    out = layers.Upsample2x(channels, dtype=self.dtype)(h)
    return _Head(self.likelihood, self.learn_variance, self.fixed_logvar)(out)
