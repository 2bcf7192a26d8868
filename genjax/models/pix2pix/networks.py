"""pix2pix networks (Isola et al. 2017): a U-Net generator and a PatchGAN on
pairs; for super-resolution also SRGAN's residual generator (SRResNet).

As in the authors' code: 4x4 convolutions of stride 2 (leaky ReLU 0.2 in the
encoder, ReLU and transposed convolutions in the decoder), weights drawn from
N(0, 0.02), no normalisation on the outermost layers and the innermost
encoder layer, and each decoder layer's output concatenated with its mirror
encoder layer's (the skip connections). Dropout (0.5) on the decoder layers
just outside the innermost is the generator's only noise, and it is active
at test time too, as the paper's.

Normalisation is batch norm (the paper's) or instance norm (`norm`). Batch
norm always uses the statistics of the batch it is given, at test time too
(the paper: "we apply batch normalization using the statistics of the test
batch"); with batch size 1 it is instance norm with affine parameters. So
the networks keep no running statistics, and take a 'dropout' rng.

SRResNet (Ledig et al. 2017) works at the low resolution: residual blocks
(3x3 conv, norm, PReLU, 3x3 conv, norm, plus the block's input), a long skip
around them, and sub-pixel upsamplings (a 3x3 conv to 4x the channels,
depth-to-space by 2, PReLU) back to the target's size. Its input is the
family's super-resolution input, the bicubic image at the target's size,
rearranged losslessly to the low resolution by space-to-depth(scale), so the
data, the discriminator's pairs and `genjax.translate` are the U-Net's.

`dtype` (config.precision) is the compute dtype; parameters and norm
statistics stay float32, and outputs are float32.
"""

import functools
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn import layers, precision

_init = nn.initializers.normal(0.02)
Norm = Literal["batch", "instance"]


class BatchNorm(nn.Module):
  """Batch normalisation by the statistics of the batch given, always (no
  running averages): mean and variance over B, H, W in float32; scale drawn
  from N(1, 0.02) and bias 0, as the authors initialise theirs."""

  epsilon: float = 1e-5
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param("scale", lambda k, s: 1.0 + 0.02 * jax.random.normal(k, s), (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    x32 = x.astype(jnp.float32)
    # The sums over B, H, W and their gradients as matrix products with ones
    # (layers.channel_sum, per_channel): XLA:CPU's reductions are slower.
    centred = x32 - layers.per_channel(layers.channel_mean(x32), x32.shape)
    var = layers.channel_mean(jnp.square(centred))
    y = centred * layers.per_channel(jax.lax.rsqrt(var + self.epsilon) * scale, x32.shape) \
        + layers.per_channel(bias, x32.shape)
    return y.astype(x.dtype if self.dtype is None else self.dtype)


class _Conv4x4(nn.Module):
  """A 4x4 convolution of stride 2 with nn.Conv's variables (kernel, bias; named
  as flax's by the subclass's name, so checkpoints are unchanged), computed by
  the subclass's function in _STRIDE2."""

  features: int
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", _init, (4, 4, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x, kernel, bias = precision.cast(self.dtype, x, kernel, bias)
    y = _STRIDE2[type(self).__name__](x, kernel)
    return y + layers.per_channel(bias, y.shape)


class Conv(_Conv4x4):
  """nn.Conv(features, (4, 4), strides 2, padding 1): layers.conv4_stride2."""


class ConvTranspose(_Conv4x4):
  """nn.ConvTranspose(features, (4, 4), strides 2, 'SAME'): layers.conv_transpose4_stride2."""


_STRIDE2 = {"Conv": layers.conv4_stride2, "ConvTranspose": layers.conv_transpose4_stride2}


def _norm(kind: Norm, dtype):
  if kind == "batch":
    return BatchNorm(dtype=dtype)
  return nn.InstanceNorm(use_scale=False, use_bias=False, epsilon=1e-5, dtype=dtype)


def unet_widths(width: int, num_down: int) -> list[int]:
  """Channels of each encoder layer: width, 2w, 4w, 8w, 8w, ..."""
  return [width * min(2**i, 8) for i in range(num_down)]


class UNetGenerator(nn.Module):
  """inputs [B, H, W, C_in] in [-1, 1] -> outputs [B, H, W, out_channels] in [-1, 1].

  H and W must be divisible by 2**num_down (U-Net-256: num_down=8 at 256 px,
  down to 1x1). Needs a 'dropout' rng when dropout > 0.
  """

  out_channels: int = 3
  width: int = 64
  num_down: int = 8
  dropout: float = 0.5
  dropout_layers: int = 3  # decoder layers with dropout, just outside the innermost
  norm: Norm = "batch"
  dtype: Any = None  # compute dtype; parameters and output are float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(Conv, dtype=self.dtype)
    deconv = functools.partial(ConvTranspose, dtype=self.dtype)
    widths = unet_widths(self.width, self.num_down)
    inner = self.num_down - 1
    skips = []  # the encoder's outputs, outermost first
    h = x
    for i, w in enumerate(widths):
      if i > 0:
        h = nn.leaky_relu(h, 0.2)
      h = conv(w)(h)
      if 0 < i < inner:
        h = _norm(self.norm, self.dtype)(h)
      skips.append(h)
    for i in reversed(range(self.num_down)):  # level i: back to the resolution of its input
      if i < inner:
        h = jnp.concatenate([skips[i], h], axis=-1)
      h = deconv(self.out_channels if i == 0 else widths[i - 1])(nn.relu(h))
      if i == 0:
        return precision.to_float32(jnp.tanh(h))
      h = _norm(self.norm, self.dtype)(h)
      if self.dropout and inner - self.dropout_layers <= i < inner:
        h = nn.Dropout(self.dropout, deterministic=False)(h)
    raise AssertionError("unreachable")


def _prelu():
  return layers.PReLU(negative_slope_init=0.25)  # PyTorch's initial slope, as SRGAN's code


class ResidualBlock(nn.Module):
  """SRGAN's block: conv-norm-PReLU-conv-norm, plus its input."""

  norm: Norm = "batch"
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(layers.Conv, x.shape[-1], (3, 3), kernel_init=_init,
                             dtype=self.dtype)
    h = _prelu()(_norm(self.norm, self.dtype)(conv()(x)))
    return x + _norm(self.norm, self.dtype)(conv()(h))


def upsample_steps(scale: int) -> list[int]:
  """The factors of SRResNet's sub-pixel upsamplings: x2 each for a power of
  two (SRGAN's), else one step of `scale`."""
  if scale & (scale - 1) == 0:
    return [2] * (scale.bit_length() - 1)
  return [scale]


class SRResNet(nn.Module):
  """Bicubic inputs [B, H, W, C] in [-1, 1] (H, W divisible by `scale`) ->
  outputs [B, H, W, out_channels] in [-1, 1], computed at H/scale x W/scale."""

  out_channels: int = 3
  scale: int = 4
  width: int = 64  # SRGAN's
  num_blocks: int = 16  # SRGAN's
  norm: Norm = "batch"
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(layers.Conv, kernel_size=(3, 3), kernel_init=_init,
                             dtype=self.dtype)
    (x,) = precision.cast(self.dtype, x)
    h = skip = _prelu()(
        conv(self.width)(layers.space_to_depth(x, self.scale)))
    for _ in range(self.num_blocks):
      h = ResidualBlock(self.norm, self.dtype)(h)
    h = skip + _norm(self.norm, self.dtype)(conv(self.width)(h))
    for factor in upsample_steps(self.scale):
      # PReLU (one slope) before the pixel shuffle, which only reorders
      # values: the same function, and XLA:CPU does not carry the shuffle's
      # transposes into the fusions of its gradient.
      h = layers.depth_to_space(_prelu()(conv(self.width * factor * factor)(h)), factor)
    return precision.to_float32(jnp.tanh(conv(self.out_channels)(h)))


class PairDiscriminator(nn.Module):
  """(inputs [B, H, W, C_in], images [B, H, W, C]) -> patch logits [B, h, w].

  The conditional PatchGAN: the pair is concatenated on channels; with
  num_layers=3 each logit sees 70x70 pixels (30x30 logits at 256 px).
  """

  width: int = 64
  num_layers: int = 3
  norm: Norm = "batch"
  dtype: Any = None  # compute dtype; parameters and logits are float32

  @nn.compact
  def __call__(self, inputs, images):
    conv = functools.partial(nn.Conv, kernel_size=(4, 4), padding=((1, 1), (1, 1)),
                             kernel_init=_init, dtype=self.dtype)
    h = jnp.concatenate([inputs, images], axis=-1)
    h = nn.leaky_relu(Conv(self.width, dtype=self.dtype)(h), 0.2)
    for n in range(1, self.num_layers):
      h = Conv(self.width * min(2**n, 8), dtype=self.dtype)(h)
      h = nn.leaky_relu(_norm(self.norm, self.dtype)(h), 0.2)
    h = conv(self.width * min(2**self.num_layers, 8), strides=(1, 1))(h)
    h = nn.leaky_relu(_norm(self.norm, self.dtype)(h), 0.2)
    return precision.to_float32(conv(1, strides=(1, 1))(h)[..., 0])
