"""Building blocks shared by the model families."""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

UpsampleMethod = Literal["subpixel", "transpose", "resize"]
UPSAMPLE_METHODS = ("subpixel", "transpose", "resize")


def depth_to_space(x: jax.Array, block: int) -> jax.Array:
  """[B, H, W, C*b*b] -> [B, H*b, W*b, C] (TensorFlow's channel order)."""
  b, h, w, c = x.shape
  out_c = c // (block * block)
  x = x.reshape(b, h, w, block, block, out_c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * block, w * block, out_c)


class Upsample2x(nn.Module):
  """Doubles height and width, then maps to `features` channels.

  Methods (same output shape, different cost and artefacts):
    subpixel:  conv at low resolution to 4*features, then depth-to-space
               (Shi et al. 2016). Fast on every backend, XLA's CPU included.
    transpose: strided transposed convolution, as in DCGAN (Radford et al.
               2016). Its weight gradient is slow on XLA:CPU (~30x subpixel).
    resize:    nearest-neighbour resize, then a conv (Odena et al. 2016).
  """

  features: int
  method: UpsampleMethod = "subpixel"
  kernel_size: int = 3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = (self.kernel_size, self.kernel_size)
    if self.method == "subpixel":
      x = nn.Conv(4 * self.features, k, padding="SAME", dtype=self.dtype)(x)
      return depth_to_space(x, 2)
    if self.method == "transpose":
      return nn.ConvTranspose(
          self.features, k, strides=(2, 2), padding="SAME", dtype=self.dtype
      )(x)
    if self.method == "resize":
      b, h, w, c = x.shape
      x = jax.image.resize(x, (b, 2 * h, 2 * w, c), method="nearest")
      return nn.Conv(self.features, k, padding="SAME", dtype=self.dtype)(x)
    raise ValueError(
        f"Unknown upsampling method {self.method!r}; use one of {UPSAMPLE_METHODS}."
    )
