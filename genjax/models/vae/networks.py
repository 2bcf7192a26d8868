"""VAE encoder and decoder (Kingma & Welling 2014), MLP and convolutional.

The encoder maps images [B, H, W, C] to the mean and log-variance [B, Z] of a
diagonal Gaussian posterior q(z | x). The decoder maps z [B, Z] to the
parameters of p(x | z) per pixel: Bernoulli logits, or a Gaussian mean with a
fixed log-variance or one learned per pixel. The MLP variant with two layers
of 200 tanh units and Z = 50 is the one-stochastic-layer VAE of Burda et al.
(2016), whose MNIST test NLL is 86.76 nats.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn import layers

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

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    dense = functools.partial(nn.Dense, kernel_init=WEIGHT_INITS[self.weight_init])
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = ACTIVATIONS[self.activation](dense(width)(h))
    return dense(self.latent_dim)(h), dense(self.latent_dim)(h)


class ConvEncoder(nn.Module):
  latent_dim: int = 16
  width: int = 32
  activation: str = "relu"

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    act = ACTIVATIONS[self.activation]
    h = act(nn.Conv(self.width, (4, 4), strides=(2, 2))(x))
    h = act(nn.Conv(2 * self.width, (4, 4), strides=(2, 2))(h))
    h = act(nn.Dense(8 * self.width)(h.reshape(h.shape[0], -1)))
    return nn.Dense(self.latent_dim)(h), nn.Dense(self.latent_dim)(h)


class _Head(nn.Module):
  """Per-pixel likelihood parameters from features [B, H, W, C]."""

  likelihood: str
  learn_variance: bool
  fixed_logvar: float

  @nn.compact
  def __call__(self, out: jax.Array) -> dict[str, jax.Array]:
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

  @nn.compact
  def __call__(self, z: jax.Array) -> dict[str, jax.Array]:
    dense = functools.partial(nn.Dense, kernel_init=WEIGHT_INITS[self.weight_init])
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

  @nn.compact
  def __call__(self, z: jax.Array) -> dict[str, jax.Array]:
    act = ACTIVATIONS[self.activation]
    size, _, channels = self.image_shape
    start = size // 4
    h = act(nn.Dense(8 * self.width)(z))
    h = act(nn.Dense(start * start * 2 * self.width)(h)).reshape(z.shape[0], start, start, -1)
    h = act(layers.Upsample2x(self.width)(h))
    out = layers.Upsample2x(channels)(h)
    return _Head(self.likelihood, self.learn_variance, self.fixed_logvar)(out)
