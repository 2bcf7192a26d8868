"""BigGAN's generator and discriminator (Brock et al. 2019) for 32-256 px images.

Generator: z [B, Z] is split into one chunk per block plus one for the first
layer (hierarchical latents). A spectrally normalised linear layer maps the
first chunk to a 4x4 feature map; each residual block doubles the resolution,

  h = conv3x3(ReLU(BN(conv3x3(upsample(ReLU(BN(x)))))))    skip: upsample(conv1x1(x))

and a last BN-ReLU-conv3x3-tanh gives the image. In a conditional G every
batch norm is class-conditional: the block's chunk of z, concatenated with a
shared class embedding, gives the norm's gain (1 + linear) and bias (linear).
Unconditional, the norms have their own learned gain and bias and z enters
whole at the first layer.

Discriminator: residual blocks that halve the resolution,

  h = avgpool(conv3x3(ReLU(conv3x3(ReLU(x)))))    skip: conv1x1(avgpool(x))

(the first block without the leading ReLU, the last without pooling; the
skips' 1x1 convolutions commute with the upsampling and the pooling, so they
run at the lower resolution), then
ReLU, a sum over positions to h [B, F], and logit = w . h, plus <embed(y), h>
for a conditional D (projection discriminator, Miyato & Koyama 2018).

Both networks have a SAGAN self-attention block (Zhang et al. 2019) after
the block at resolution `attention` (0: none), and every weight of both is
spectrally normalised (`layers.spectral_norm`), its power-iteration vectors
in the `batch_stats` collection beside G's batch-norm statistics.

Widths are `ch` times BigGAN's per-resolution multipliers (WIDTHS). `dtype`
(config.precision) is the compute dtype; parameters, normalisation
statistics, the power iteration and the attention's softmax are float32, and
the outputs are float32.
"""

import functools
import itertools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn import layers
from genjax.nn import precision

# image size -> (G's multipliers: the 4x4 map, then each block's output;
#                D's blocks: (multiplier, halves the resolution)), BigGAN's arch().
WIDTHS = {
    32: ((4, 4, 4, 4), ((4, True), (4, True), (4, True), (4, False))),
    64: ((16, 16, 8, 4, 2), ((1, True), (2, True), (4, True), (8, True), (16, False))),
    128: ((16, 16, 8, 4, 2, 1),
          ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False))),
    256: ((16, 16, 8, 8, 4, 2, 1),
          ((1, True), (2, True), (4, True), (8, True), (8, True), (16, True), (16, False))),
}
IMAGE_SIZES = tuple(WIDTHS)

SHARED_EMBEDDING = "shared"  # the conditional generator's class embedding


def num_blocks(image_size: int) -> int:
  """G's residual blocks (4x4 -> image_size)."""
  return len(WIDTHS[image_size][0]) - 1


def latent_chunks(latent_dim: int, image_size: int, hierarchical: bool) -> tuple[int, ...]:
  """Sizes of z's chunks: the first layer's, then one per block (the first
  takes the remainder); the whole of z at the first layer when not hierarchical."""
  n = num_blocks(image_size)
  if not hierarchical:
    return (latent_dim,)
  chunk = latent_dim // (n + 1)
  return (latent_dim - n * chunk,) + (chunk,) * n


def num_label_classes(generator_params) -> int:
  """Classes of a conditional Generator, read off its parameters (0 if unconditional)."""
  if SHARED_EMBEDDING not in generator_params:
    return 0
  return generator_params[SHARED_EMBEDDING]["embedding"].shape[0]


def _upsample(x: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x: [B, H, W, C] -> [B, 2H, 2W, C]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _maxpool(x: jax.Array) -> jax.Array:
  """2x2 max pooling: [B, H, W, C] -> [B, H/2, W/2, C].

  A max over reshaped windows rather than nn.max_pool: its gradient is a
  comparison with the maximum (a tie shares it), where reduce_window's is a
  select-and-scatter, which XLA:CPU runs as an argmax and a scatter.
  """
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _avgpool(x: jax.Array) -> jax.Array:
  """2x2 average pooling: [B, H, W, C] -> [B, H/2, W/2, C]."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class ConditionalBatchNorm(nn.Module):
  """Batch norm whose gain and bias come from `cond` [B, D] (1 + linear,
  linear; spectrally normalised); with `cond` None, its own learned ones."""

  train: bool
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None) -> jax.Array:
    conditional = cond is not None
    # layers.BatchNorm: statistics in float32 at any dtype
    h = layers.BatchNorm(use_running_average=not self.train, momentum=0.9, epsilon=1e-4,
                         use_scale=not conditional, use_bias=not conditional,
                         dtype=self.dtype)(x)
    if not conditional:
      return h
    c = x.shape[-1]
    sn = functools.partial(layers.spectral_norm, update_stats=self.train)
    gain = 1.0 + sn(nn.Dense(c, use_bias=False, dtype=self.dtype, name="gain"), cond)
    bias = sn(nn.Dense(c, use_bias=False, dtype=self.dtype, name="bias"), cond)
    return h * gain[:, None, None, :].astype(h.dtype) + bias[:, None, None, :].astype(h.dtype)


def attend(theta: jax.Array, phi: jax.Array, g: jax.Array) -> jax.Array:
  """softmax(theta phi^T) g over the keys, [B, N, K], [B, M, K], [B, M, V] -> [B, N, V].

  The softmax's denominator comes out of the product with g as one more
  column of ones, and the row maximum that keeps exp finite is a constant to
  autodiff (the result does not depend on it): no pass over the weights for
  their sum or their normalisation, forward or backward, which on a CPU cost
  more than the products (the same values as jax.nn.softmax's to float32
  rounding). The weights are keys-major, [B, M, N]: the maximum reduces a
  major axis, and the product's gradient with respect to g reads them in
  their own layout. Logits, exp and the division are float32.
  """
  logits = precision.to_float32(jnp.einsum("bmk,bnk->bmn", phi, theta))
  shift = jax.lax.stop_gradient(jnp.max(logits, axis=1, keepdims=True))
  weights = jnp.exp(logits - shift).astype(g.dtype)
  ones = jnp.ones((*g.shape[:-1], 1), g.dtype)
  out = jnp.einsum("bmv,bmn->bvn", jnp.concatenate([g, ones], -1), weights,
                   preferred_element_type=jnp.float32)  # [B, V + 1, N]
  return jnp.swapaxes(out[:, :-1] / out[:, -1:], 1, 2).astype(g.dtype)


class SelfAttention(nn.Module):
  """SAGAN's non-local block: x + gamma * o, gamma a learned scalar starting at 0.

  theta, phi, g are 1x1 convolutions to C/8, C/8, C/2 channels (phi and g
  max-pooled 2x2, as in BigGAN); o = conv1x1(softmax(theta phi^T) g).
  """

  update_stats: bool
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    conv = lambda f, name: functools.partial(
        layers.spectral_norm, layers.Conv(f, (1, 1), use_bias=False, dtype=self.dtype, name=name),
        update_stats=self.update_stats)
    k, v = max(c // 8, 1), max(c // 2, 1)
    theta = conv(k, "theta")(x).reshape(b, h * w, k)  # [B, N, C/8]
    phi = _maxpool(conv(k, "phi")(x)).reshape(b, h * w // 4, k)  # [B, N/4, C/8]
    g = _maxpool(conv(v, "g")(x)).reshape(b, h * w // 4, v)  # [B, N/4, C/2]
    o = attend(theta, phi, g).reshape(b, h, w, v)
    o = conv(c, "o")(o)
    gamma = self.param("gamma", nn.initializers.zeros_init(), ())
    return x + gamma.astype(o.dtype) * o


class GBlock(nn.Module):
  """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus conv1x1-upsample: [B, H, W, C] -> [B, 2H, 2W, F]."""

  features: int
  train: bool
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None) -> jax.Array:
    sn = functools.partial(layers.spectral_norm, update_stats=self.train)
    conv = lambda k, name: layers.Conv(self.features, (k, k), dtype=self.dtype, name=name)
    bn = lambda name: ConditionalBatchNorm(self.train, self.dtype, name=name)
    h = _upsample(nn.relu(bn("bn_0")(x, cond)))
    h = sn(conv(3, "conv_0"), h)
    h = nn.relu(bn("bn_1")(h, cond))
    h = sn(conv(3, "conv_1"), h)
    # a 1x1 convolution commutes with nearest upsampling: the skip at H, not 2H
    return h + _upsample(sn(conv(1, "skip"), x))


class DBlock(nn.Module):
  """(ReLU)-conv3x3-ReLU-conv3x3-avgpool, plus avgpool-conv1x1: [B, H, W, C] -> [B, H/2, W/2, F]."""

  features: int
  update_stats: bool
  preactivation: bool = True  # False for the first block (the image)
  downsample: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    sn = functools.partial(layers.spectral_norm, update_stats=self.update_stats)
    conv = lambda k, name: layers.Conv(self.features, (k, k), dtype=self.dtype, name=name)
    pool = _avgpool if self.downsample else (lambda t: t)
    h = nn.relu(x) if self.preactivation else x
    h = sn(conv(3, "conv_0"), h)
    h = sn(conv(3, "conv_1"), nn.relu(h))
    # a 1x1 convolution commutes with average pooling: the skip at H/2, not H
    return pool(h) + sn(conv(1, "skip"), pool(x))


class Generator(nn.Module):
  """z [B, Z], labels [B] -> images [B, S, S, C] in [-1, 1]."""

  image_size: int = 64
  channels: int = 3
  ch: int = 64  # channel multiplier: widths are ch x WIDTHS
  num_classes: int = 0  # > 0: conditional batch norm from a shared class embedding
  shared_dim: int = 128  # the shared class embedding's size
  attention: int = 32  # resolution of the self-attention block; 0: none
  latent_dim: int = 120
  dtype: Any = None  # compute dtype; parameters are float32

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None,
               train: bool = True) -> jax.Array:
    """train: batch statistics (and their running averages, and the power
    iteration, updated); else the running averages."""
    mults, _ = WIDTHS[self.image_size]
    sn = functools.partial(layers.spectral_norm, update_stats=train)
    conditional = self.num_classes > 0
    sizes = latent_chunks(z.shape[-1], self.image_size, conditional)
    zs = jnp.split(z, list(itertools.accumulate(sizes))[:-1], axis=-1)
    conds = [None] * len(mults)
    if conditional:
      shared = nn.Embed(self.num_classes, self.shared_dim, dtype=self.dtype,
                        name=SHARED_EMBEDDING)(labels)  # [B, shared_dim]
      conds = [jnp.concatenate([zi.astype(shared.dtype), shared], axis=-1) for zi in zs[1:]]
    h = sn(nn.Dense(4 * 4 * self.ch * mults[0], dtype=self.dtype, name="linear"), zs[0])
    h = h.reshape(z.shape[0], 4, 4, self.ch * mults[0])  # [B, 4, 4, ch * m_0]
    for i, m in enumerate(mults[1:]):
      h = GBlock(self.ch * m, train, self.dtype, name=f"block_{i}")(h, conds[i])
      if h.shape[1] == self.attention:
        h = SelfAttention(train, self.dtype, name="attention")(h)
    h = nn.relu(layers.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-4,
                                 dtype=self.dtype, name="bn_out")(h))
    h = sn(layers.Conv(self.channels, (3, 3), dtype=self.dtype, name="conv_out"), h)
    return precision.to_float32(jnp.tanh(h))


class Discriminator(nn.Module):
  """images [B, S, S, C], labels [B] -> logits [B]."""

  image_size: int = 64
  ch: int = 64  # channel multiplier: widths are ch x WIDTHS
  num_classes: int = 0  # > 0: projection discriminator on labels [B]
  attention: int = 32  # resolution of the self-attention block; 0: none
  dtype: Any = None  # compute dtype; parameters are float32

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None,
               update_stats: bool = False) -> jax.Array:
    """update_stats: advance the spectral-norm power iteration (training only)."""
    _, blocks = WIDTHS[self.image_size]
    sn = functools.partial(layers.spectral_norm, update_stats=update_stats)
    h = x
    for i, (m, down) in enumerate(blocks):
      h = DBlock(self.ch * m, update_stats, preactivation=i > 0, downsample=down,
                 dtype=self.dtype, name=f"block_{i}")(h)
      if h.shape[1] == self.attention and down:
        h = SelfAttention(update_stats, self.dtype, name="attention")(h)
    h = jnp.sum(nn.relu(h), axis=(1, 2))  # [B, F]
    logits = sn(nn.Dense(1, dtype=self.dtype, name="linear"), h)[:, 0]
    if self.num_classes:
      embedding = sn(nn.Embed(self.num_classes, h.shape[-1], dtype=self.dtype,
                              name="embed"), labels)  # [B, F]
      logits = logits + jnp.sum(embedding * h, axis=-1)
    return precision.to_float32(logits)
