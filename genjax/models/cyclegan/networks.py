"""CycleGAN networks (Zhu et al. 2017): a ResNet generator and a PatchGAN discriminator.

As in the authors' code: reflection padding, instance normalisation without
affine parameters, ReLU in G and leaky ReLU (0.2) in D, weights drawn from
N(0, 0.02). The generator is c7s1-w, d(2w), d(4w), R(4w) x blocks, u(2w),
u(w), c7s1-C, tanh; for 28/32 px images use fewer, narrower layers
(`width=32, num_blocks=6`). The discriminator's output is a map of logits,
one per overlapping patch: with `num_layers=3` each sees 70x70 pixels.

`dtype` (config.precision) is the compute dtype of both networks; their
parameters and instance-norm statistics (Flax's force_float32_reductions)
stay float32, and their outputs are float32.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.nn import layers
from genjax.nn import precision

_init = nn.initializers.normal(0.02)
_norm = functools.partial(nn.InstanceNorm, use_scale=False, use_bias=False, epsilon=1e-5)


def _reflected(n: int, p: int) -> np.ndarray:
  """Source index of each position of a length-n axis reflect-padded by p."""
  return np.pad(np.arange(n), p, mode="reflect")


def reflect_pad(x: jax.Array, p: int) -> jax.Array:
  """`jnp.pad(x, ..., mode="reflect")` of H and W, as a gather along each axis:
  the same values, and on XLA:CPU a faster backward pass (one scatter-add per
  axis instead of the pad's slices and reversals)."""
  x = jnp.take(x, _reflected(x.shape[1], p), axis=1)
  return jnp.take(x, _reflected(x.shape[2], p), axis=2)


class ResidualBlock(nn.Module):
  features: int
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, padding="VALID", kernel_init=_init, dtype=self.dtype)
    h = conv(self.features, (3, 3))(reflect_pad(x, 1))
    h = nn.relu(_norm(dtype=self.dtype)(h))
    h = conv(self.features, (3, 3))(reflect_pad(h, 1))
    return x + _norm(dtype=self.dtype)(h)


class ResnetGenerator(nn.Module):
  """images [B, H, W, C] in [-1, 1] -> images [B, H, W, out_channels] in [-1, 1]."""

  out_channels: int = 3
  width: int = 64
  num_blocks: int = 9  # 9 at 256 px, 6 at 128 px in the paper
  num_down: int = 2  # H and W must be divisible by 2**num_down
  upsample: layers.UpsampleMethod = "transpose"
  dtype: Any = None  # compute dtype; parameters and output are float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, kernel_init=_init, dtype=self.dtype)
    norm = functools.partial(_norm, dtype=self.dtype)
    h = conv(self.width, (7, 7), padding="VALID")(reflect_pad(x, 3))
    h = nn.relu(norm()(h))
    for i in range(self.num_down):
      h = conv(self.width * 2 ** (i + 1), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))(h)
      h = nn.relu(norm()(h))
    for _ in range(self.num_blocks):
      h = ResidualBlock(self.width * 2**self.num_down, dtype=self.dtype)(h)
    for i in reversed(range(self.num_down)):
      h = layers.Upsample2x(self.width * 2**i, self.upsample, kernel_size=3, dtype=self.dtype)(h)
      h = nn.relu(norm()(h))
    h = conv(self.out_channels, (7, 7), padding="VALID")(reflect_pad(h, 3))
    return precision.to_float32(jnp.tanh(h))


class PatchDiscriminator(nn.Module):
  """images [B, H, W, C] -> patch logits [B, h, w] (70x70 patches at num_layers=3)."""

  width: int = 64
  num_layers: int = 3
  dtype: Any = None  # compute dtype; parameters and logits are float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, kernel_size=(4, 4), padding=((1, 1), (1, 1)),
                             kernel_init=_init, dtype=self.dtype)
    norm = functools.partial(_norm, dtype=self.dtype)
    h = nn.leaky_relu(conv(self.width, strides=(2, 2))(x), 0.2)
    for n in range(1, self.num_layers):
      h = conv(self.width * min(2**n, 8), strides=(2, 2))(h)
      h = nn.leaky_relu(norm()(h), 0.2)
    h = conv(self.width * min(2**self.num_layers, 8), strides=(1, 1))(h)
    h = nn.leaky_relu(norm()(h), 0.2)
    return precision.to_float32(conv(1, strides=(1, 1))(h)[..., 0])


def receptive_field(num_layers: int) -> int:
  """Pixels seen by one output logit of PatchDiscriminator(num_layers)."""
  field = 4  # the last conv: kernel 4, stride 1
  field = field + 3  # the stride-1 conv before it
  for _ in range(num_layers):
    field = 2 * field + 2  # kernel 4, stride 2: r -> 2r + (4 - 2)
  return field
