"""Progressive GAN networks (Karras et al. 2018, "Progressive Growing of GANs").

Both networks are built from one block per resolution, 4x4, 8x8, ..., and
every block exists from the start: a network is called at a `level` (a
Python int: level l works at 4 * 2^l pixels) and a fade-in weight `alpha`
(an array), and uses the blocks up to that level only. The parameters of the
others are untouched (their gradients are zero), so the parameter pytree has
one shape for the whole run.

Generator at level l > 0 (section 2 of the paper):

    out = (1 - alpha) * upsample(to_rgb[l-1](h[l-1])) + alpha * to_rgb[l](h[l])

where h[l] = block[l](h[l-1]) is a nearest-neighbour 2x upsampling and two
3x3 convolutions. The discriminator mirrors it:

    h = (1 - alpha) * from_rgb[l-1](avgpool(x)) + alpha * block[l](from_rgb[l](x))

with blocks of two 3x3 convolutions and a 2x average pooling, then the 4x4
head: the minibatch standard deviation, a 3x3 and a 4x4 convolution (a dense
layer) and a linear output. alpha = 1 gives exactly the new path.

Section 4 of the paper, all here: equalised learning rate (every weight
drawn from N(0, 1) and multiplied at run time by He's constant
gain / sqrt(fan_in), so that Adam's per-parameter step sizes are the same
for every layer), pixelwise feature normalisation after every convolution
of the generator, and the minibatch standard deviation in the discriminator.
Leaky ReLU 0.2 everywhere, a linear generator output.

`dtype` (config.precision) is the compute dtype of both networks: the
equalised layers scale their float32 weights, then cast them to it. Pixel
norm and the minibatch standard deviation are computed in float32, and the
outputs (images, scores) are float32.
"""

import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn import precision

START = 4  # side of the first resolution

_DIMS = ("NHWC", "HWIO", "NHWC")


def num_levels(resolution: int) -> int:
  """Resolutions 4, 8, ..., `resolution` (a power of two >= 4): their count."""
  if resolution < START or resolution & (resolution - 1):
    raise ValueError(f"A progressive GAN grows to a power of two >= {START}, not {resolution}.")
  return int(math.log2(resolution // START)) + 1


def resolution_of(level: int) -> int:
  return START * 2**level


def widths(final_width: int, max_width: int, levels: int) -> tuple[int, ...]:
  """Channels of each level's features, level 0 first: `final_width` at the
  last level, doubled per level below it, at most `max_width`."""
  return tuple(min(final_width * 2 ** (levels - 1 - l), max_width) for l in range(levels))


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Each pixel's feature vector scaled to unit root mean square:
  b = a / sqrt(mean_c(a_c^2) + eps) (the paper's section 4.2), in float32,
  returned in x's dtype."""
  y = precision.to_float32(x)
  return (y * jax.lax.rsqrt(jnp.mean(y * y, axis=-1, keepdims=True) + eps)).astype(x.dtype)


def minibatch_stddev(x: jax.Array, group_size: int = 4, eps: float = 1e-8) -> jax.Array:
  """x [B, H, W, C] -> [B, H, W, C + 1] (the paper's section 3).

  The batch is split into groups of `group_size` consecutive examples (all
  of it when smaller); within a group, the standard deviation of every
  feature at every pixel, averaged over features and pixels, is one number,
  appended to each member's features as a constant map. Consecutive groups
  keep the real and fake halves of a concatenated batch apart when B is a
  multiple of the group size. The statistic is computed in float32.
  """
  b, h, w, c = x.shape
  g = min(group_size, b)
  y = precision.to_float32(x).reshape(b // g, g, h, w, c)
  y = y - jnp.mean(y, axis=1, keepdims=True)
  std = jnp.sqrt(jnp.mean(y * y, axis=1) + eps)  # [B/g, H, W, C]
  s = jnp.mean(std, axis=(1, 2, 3))  # [B/g]
  s = jnp.broadcast_to(s[:, None, None, None, None], (b // g, g, h, w, 1)).reshape(b, h, w, 1)
  return jnp.concatenate([x, s.astype(x.dtype)], axis=-1)


def upsample(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling [B, H, W, C] -> [B, fH, fW, C]."""
  if factor == 1:
    return x
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return x.reshape(b, h * factor, w * factor, c)


def downsample(x: jax.Array, factor: int = 2) -> jax.Array:
  """Average pooling [B, H, W, C] -> [B, H/f, W/f, C]."""
  if factor == 1:
    return x
  b, h, w, c = x.shape
  return jnp.mean(x.reshape(b, h // factor, factor, w // factor, factor, c), axis=(2, 4))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: jax.Array, kernel: jax.Array, padding: tuple[int, int]) -> jax.Array:
  """Stride-1 convolution, x [B, H, W, C], kernel [kh, kw, C, F], `padding`
  (low, high) on both spatial axes; lax's values, with every derivative (the
  gradient penalty's second ones too) written as the same canonical NHWC/HWIO
  convolution of transposed operands.

  XLA:CPU rewrites a convolution's gradients into that form before running
  them, but not inside the branches of a `lax.switch`, where they fall to a
  generic loop: 3x3, 32 -> 32 channels at 32x32, batch 64, takes 6.5 s for
  both gradients instead of 0.05 s. Giving the rewritten form here keeps the
  train step's per-resolution branches at full speed.

  The kernel is computed in x's dtype (bfloat16 activations with float32
  weights: config.precision); its gradient is returned in its own dtype.
  """
  return jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), (1, 1), (padding, padding),
                                      dimension_numbers=_DIMS)


def _conv2d_fwd(x, kernel, padding):
  return conv2d(x, kernel, padding), (x, kernel)


def _conv2d_bwd(padding, residuals, dy):
  x, w = residuals
  kernel = w.astype(x.dtype)
  k = kernel.shape[0]
  low, high = padding
  # dx: dy correlated with the flipped kernel, its in/out channels swapped.
  dx = conv2d(dy, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2), (k - 1 - low, k - 1 - high))
  # dW[u, v, c, f] = sum_{b,i,j} x_pad[b, i+u, j+v, c] dy[b, i, j, f]: channels as the batch,
  # the batch as the channels.
  dw = conv2d(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), padding)
  return dx, dw.transpose(1, 2, 0, 3).astype(w.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def he_scale(fan_in: int, gain: float = math.sqrt(2.0)) -> float:
  """He's constant gain / sqrt(fan_in): the run-time weight multiplier."""
  return gain / math.sqrt(fan_in)


class EqualDense(nn.Module):
  """x [..., C] -> [..., F]: weights ~ N(0, 1), used as w * gain / sqrt(C)."""

  features: int
  gain: float = math.sqrt(2.0)
  dtype: Any = None  # compute dtype; the variables are float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.normal(1.0), (fan_in, self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    x, kernel, bias = precision.cast(self.dtype, x, kernel * he_scale(fan_in, self.gain), bias)
    y = x @ kernel
    return y + bias.reshape((1,) * (y.ndim - 1) + (-1,))


class EqualConv(nn.Module):
  """SAME k x k convolution [B, H, W, C] -> [B, H, W, F]: weights ~ N(0, 1),
  used as w * gain / sqrt(k * k * C). A 1x1 convolution is a matrix product."""

  features: int
  kernel_size: int = 3
  gain: float = math.sqrt(2.0)
  dtype: Any = None  # compute dtype; the variables are float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, c = self.kernel_size, x.shape[-1]
    kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, c, self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    x, kernel, bias = precision.cast(self.dtype, x, kernel * he_scale(k * k * c, self.gain), bias)
    if k == 1:
      y = x @ kernel[0, 0]
    else:
      y = conv2d(x, kernel, ((k - 1) // 2, k // 2))  # SAME
    return y + bias.reshape(1, 1, 1, -1)


def _act(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, 0.2)


class GeneratorBlock(nn.Module):
  """[B, H, W, C] -> [B, 2H, 2W, F]: upsample, then (conv 3x3, leaky ReLU, pixel norm) x 2."""

  features: int
  dtype: Any = None

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    h = upsample(h)
    h = pixel_norm(_act(EqualConv(self.features, dtype=self.dtype)(h)))
    return pixel_norm(_act(EqualConv(self.features, dtype=self.dtype)(h)))


class DiscriminatorBlock(nn.Module):
  """[B, H, W, C] -> [B, H/2, W/2, F]: (conv 3x3, leaky ReLU) to C then F, average pool."""

  features: int
  dtype: Any = None

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    h = _act(EqualConv(h.shape[-1], dtype=self.dtype)(h))
    h = _act(EqualConv(self.features, dtype=self.dtype)(h))
    return downsample(h)


class Generator(nn.Module):
  """z [B, Z] -> images [B, 4 * 2^level, 4 * 2^level, C] (unbounded; the data
  are in [-1, 1]). `widths[l]`: channels of level l's features."""

  widths: Sequence[int]
  channels: int = 1
  dtype: Any = None  # compute dtype; parameters and images are float32

  def setup(self):
    dt = self.dtype
    self.head = EqualDense(START * START * self.widths[0], gain=math.sqrt(2.0) / 4, dtype=dt)
    self.head_conv = EqualConv(self.widths[0], dtype=dt)
    self.blocks = [GeneratorBlock(w, dtype=dt) for w in self.widths[1:]]
    self.to_rgb = [EqualConv(self.channels, kernel_size=1, gain=1.0, dtype=dt)
                   for _ in self.widths]

  def features(self, z: jax.Array, level: int) -> list[jax.Array]:
    """[h_0, ..., h_level]: h_l [B, 4 * 2^l, 4 * 2^l, widths[l]]."""
    h = self.head(pixel_norm(z)).reshape(z.shape[0], START, START, self.widths[0])
    h = pixel_norm(_act(h))
    hs = [pixel_norm(_act(self.head_conv(h)))]
    for block in self.blocks[:level]:
      hs.append(block(hs[-1]))
    return hs

  def __call__(self, z: jax.Array, level: int, alpha: jax.Array | float = 1.0) -> jax.Array:
    hs = self.features(z, level)
    new = precision.to_float32(self.to_rgb[level](hs[level]))
    if level == 0:
      return new
    old = precision.to_float32(upsample(self.to_rgb[level - 1](hs[level - 1])))
    return (1.0 - alpha) * old + alpha * new

  def all_levels(self, z: jax.Array) -> list[jax.Array]:
    """Every level's image (for `init`: creates every block's parameters)."""
    hs = self.features(z, len(self.widths) - 1)
    return [precision.to_float32(to_rgb(h)) for to_rgb, h in zip(self.to_rgb, hs)]


class Discriminator(nn.Module):
  """images [B, 4 * 2^level, 4 * 2^level, C] -> scores [B]. `widths[l]`:
  channels at level l, the generator's mirror image."""

  widths: Sequence[int]
  group_size: int = 4  # minibatch standard deviation groups
  dtype: Any = None  # compute dtype; parameters and scores are float32

  def setup(self):
    dt = self.dtype
    self.from_rgb = [EqualConv(w, kernel_size=1, dtype=dt) for w in self.widths]
    # blocks[l - 1] takes level l's features down to level l - 1's
    self.blocks = [DiscriminatorBlock(w, dtype=dt) for w in self.widths[:-1]]
    self.head_conv = EqualConv(self.widths[0], dtype=dt)
    self.head_dense = EqualDense(self.widths[0], dtype=dt)
    self.out = EqualDense(1, gain=1.0, dtype=dt)

  def head(self, h: jax.Array) -> jax.Array:
    """Level 0's features [B, 4, 4, widths[0]] -> scores [B]."""
    h = minibatch_stddev(h, self.group_size)
    h = _act(self.head_conv(h))
    h = _act(self.head_dense(h.reshape(h.shape[0], -1)))  # the paper's 4x4 'valid' convolution
    return precision.to_float32(self.out(h)[:, 0])

  def __call__(self, x: jax.Array, level: int, alpha: jax.Array | float = 1.0) -> jax.Array:
    h = _act(self.from_rgb[level](x))
    if level > 0:
      new = self.blocks[level - 1](h)
      old = _act(self.from_rgb[level - 1](downsample(x)))
      h = (1.0 - alpha) * old + alpha * new
      for l in range(level - 1, 0, -1):
        h = self.blocks[l - 1](h)
    return self.head(h)

  def all_levels(self, x: jax.Array) -> jax.Array:
    """Scores [B] of the last level, touching every from_rgb (for `init`)."""
    for l in range(len(self.widths) - 1):
      self.from_rgb[l](downsample(x, 2 ** (len(self.widths) - 1 - l)))
    return self(x, len(self.widths) - 1, 0.5)
