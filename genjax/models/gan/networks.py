"""DCGAN generator and discriminator (Radford et al. 2016) for small images.

The generator maps z [B, Z] to images [B, H, W, C] in [-1, 1]: a dense layer
to a `start x start` feature map, then 2x upsamplings with batch norm and
ReLU, halving the channels each time down to `width` at full resolution, and
a convolution to C channels with tanh. 28x28 starts at 7x7 (two upsamplings), 32x32
at 4x4 (three). The discriminator mirrors it with stride-2 convolutions and
leaky ReLU, and returns one logit per image.

Class-conditional variants (num_classes > 0): the generator concatenates a
learned label embedding to z; the discriminator is a projection
discriminator (Miyato & Koyama 2018), logit = w . h + <embed(y), h>.
`spectral_norm=True` divides every discriminator weight by its largest
singular value, estimated by one power iteration per training call, whose
vectors live in the `batch_stats` collection (Miyato et al. 2018).

`norm='virtual_batch'` replaces the generator's batch norm by virtual batch
norm (Salimans et al. 2016, `layers.VirtualBatchNorm`): a reference batch of
latents, drawn once from N(0, I) with a fixed key and kept in the
generator's `batch_stats` collection (with labels 0, 1, ..., K-1 in turn for
a conditional G), goes through G with every batch, and each image is
normalised with its statistics and its own; the same in training and
inference, and an image does not depend on the rest of its batch.

`dtype` (config.precision) is the compute dtype of both networks; their
parameters, batch-norm statistics and power iteration stay float32, and
their outputs are float32.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn import layers
from genjax.nn import precision

# Spatial size of the first feature map for each supported image size.
START_SIZE = {28: 7, 32: 4, 64: 4, 128: 4, 256: 4}

NORMS = ("batch", "virtual_batch")  # the generator's normalisation (config.model.norm)
VBN_REFERENCE_SEED = 0  # the key of virtual batch norm's reference latents


def num_upsamplings(image_size: int) -> int:
  """2x upsamplings of the generator (stride-2 convs of the discriminator) at `image_size`."""
  if image_size not in START_SIZE:
    raise ValueError(
        f"DCGAN supports image sizes {sorted(START_SIZE)}, got {image_size}."
    )
  return (image_size // START_SIZE[image_size]).bit_length() - 1


LABEL_EMBEDDING = "Embed_0"  # the conditional generator's label embedding


def num_label_classes(generator_params) -> int:
  """Classes of a conditional Generator, read off its parameters (0 if unconditional)."""
  if LABEL_EMBEDDING not in generator_params:
    return 0
  return generator_params[LABEL_EMBEDDING]["embedding"].shape[0]


class Generator(nn.Module):
  """z [B, Z] -> images [B, S, S, C] in [-1, 1]."""

  image_size: int = 28
  channels: int = 1
  width: int = 64  # channels of the last hidden layer; doubled per lower scale
  upsample: layers.UpsampleMethod = "subpixel"
  kernel_size: int = 3
  num_classes: int = 0  # > 0: conditional on labels [B]
  embed_dim: int = 50
  icnr: bool = False  # sub-pixel upsamplings start as nearest-neighbour ones
  dtype: Any = None  # compute dtype; parameters are float32
  norm: str = "batch"  # batch | virtual_batch
  reference_size: int = 64  # virtual_batch: examples in the reference batch

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None,
               train: bool = True) -> jax.Array:
    """z [B, Z], labels [B] (conditional) -> [B, S, S, C]. With virtual
    batch norm, `train` changes nothing."""
    batch = z.shape[0]
    virtual = self.norm == "virtual_batch"
    if virtual:  # the reference batch leads every batch
      r = self.reference_size
      ref_z = self.variable("batch_stats", "vbn_reference_z", lambda: jax.random.normal(
          jax.random.key(VBN_REFERENCE_SEED), (r, z.shape[-1]))).value
      z = jnp.concatenate([ref_z, z])
      if labels is not None:
        ref_labels = jnp.arange(r, dtype=labels.dtype) % max(self.num_classes, 1)
        labels = jnp.concatenate([ref_labels, labels])
    n_up = num_upsamplings(self.image_size)
    start = START_SIZE[self.image_size]
    # layers.BatchNorm: batch statistics in float32 at any dtype
    bn = functools.partial(layers.BatchNorm, use_running_average=not train, momentum=0.9,
                           dtype=self.dtype)

    def norm_relu():
      # Batch norm and ReLU of [N, C] rows, one per pixel: XLA:CPU reduces the
      # leading axis of a 2-D array several times faster than three axes of a
      # 4-D one (fwd+bwd at 28x28x32, batch 64: 5.5 ms against 9.1 ms).
      if virtual:
        vbn = layers.VirtualBatchNorm(self.reference_size, dtype=self.dtype)
        return lambda rows: nn.relu(vbn(rows, z.shape[0]))
      norm = bn()  # created here, so its variables are the Generator's BatchNorm_i
      return lambda rows: nn.relu(norm(rows))

    if self.num_classes:
      embed = nn.Embed(self.num_classes, self.embed_dim, dtype=self.dtype, name=LABEL_EMBEDDING)
      z = jnp.concatenate([z, embed(labels)], axis=-1)
    h = nn.Dense(start * start * self.width * 2**n_up, dtype=self.dtype)(z)
    h = norm_relu()(h.reshape(-1, self.width * 2**n_up))
    h = h.reshape(z.shape[0], start, start, -1)  # [B, start, start, width * 2^n_up]
    for i in range(n_up):
      h = layers.Upsample2x(self.width * 2 ** (n_up - 1 - i), self.upsample,
                            self.kernel_size, dtype=self.dtype, icnr=self.icnr)(h, norm_relu())
    # [B, S, S, width] -> [B, S, S, C]
    h = layers.Conv(self.channels, (self.kernel_size, self.kernel_size), padding="SAME",
                    dtype=self.dtype)(h)
    return precision.to_float32(jnp.tanh(h))[z.shape[0] - batch:]


class Discriminator(nn.Module):
  """images [B, S, S, C] -> logits [B]."""

  width: int = 64  # channels of the first conv; doubled per stride-2 conv
  num_layers: int = 2
  kernel_size: int = 4
  num_classes: int = 0  # > 0: projection discriminator on labels [B]
  spectral_norm: bool = False
  dtype: Any = None  # compute dtype; parameters are float32

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None,
               update_stats: bool = False) -> jax.Array:
    """update_stats: advance the spectral-norm power iteration (training only)."""

    def layer(module, h):
      if self.spectral_norm:  # dtype None: the power iteration on the float32 weights
        return nn.SpectralNorm(module)(h, update_stats=update_stats)
      return module(h)

    k = (self.kernel_size, self.kernel_size)
    h = x
    for i in range(self.num_layers):
      h = layer(layers.Conv(self.width * 2**i, k, strides=2, dtype=self.dtype, name=f"Conv_{i}"),
                h)
      h = nn.leaky_relu(h, 0.2)
    h = h.reshape(h.shape[0], -1)  # [B, F]
    logits = layer(nn.Dense(1, dtype=self.dtype), h)[:, 0]
    if self.num_classes:
      embedding = nn.Embed(self.num_classes, h.shape[-1], dtype=self.dtype)(labels)  # [B, F]
      logits = logits + jnp.sum(embedding * h, axis=-1)
    return precision.to_float32(logits)
