"""Differentiable augmentation (Zhao et al. 2020, "DiffAugment") for the GAN
step: what D sees of real and generated images alike, so that with few
training images D cannot memorise them while G's gradient passes through
the augmentation. Each image draws its own parameters; the ranges are the
authors' code's.
"""

import jax
import jax.numpy as jnp

DIFF_AUGMENTS = ("color", "translation", "cutout")


def _shift_matrices(shift: jax.Array, size: int) -> jax.Array:
  """[B, size, size] 0/1 matrices S with (S @ v)[i] = v[i - shift], 0 outside."""
  i = jnp.arange(size)
  return (i[None, :, None] - shift[:, None, None] == i[None, None, :]).astype(jnp.float32)


def diff_augment(images: jax.Array, key: jax.Array, policy: tuple[str, ...]) -> jax.Array:
  """`images` [B, H, W, C] in [-1, 1] through the augmentations of `policy`
  (names of DIFF_AUGMENTS), in that order:

  - color: brightness + U(-0.5, 0.5), saturation x U(0, 2) about the
    pixel's channel mean, contrast x U(0.5, 1.5) about the image's mean;
  - translation: a shift by up to H // 8 and W // 8 pixels each way,
    filled with 0 (as products with 0/1 shift matrices: no gather); 3 at
    28 px, where the authors' later code rounds an eighth to 4;
  - cutout: a square of H // 2 x W // 2 set to 0, centred anywhere in the image
    and cut at its edges.

  Every operation is differentiable in `images`.
  """
  b, h, w, _ = images.shape
  keys = iter(jax.random.split(key, 8))
  uniform = lambda: jax.random.uniform(next(keys), (b, 1, 1, 1))
  x = images
  for name in policy:
    if name == "color":
      x = x + (uniform() - 0.5)
      mean = jnp.mean(x, axis=3, keepdims=True)
      x = (x - mean) * (2.0 * uniform()) + mean
      mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
      x = (x - mean) * (uniform() + 0.5) + mean
    elif name == "translation":
      dy = jax.random.randint(next(keys), (b,), -(h // 8), h // 8 + 1)
      dx = jax.random.randint(next(keys), (b,), -(w // 8), w // 8 + 1)
      exact = jax.lax.Precision.HIGHEST  # no TF32 rounding of the pixels on GPUs
      x = jnp.einsum("bik,bkjc->bijc", _shift_matrices(dy, h), x, precision=exact)
      x = jnp.einsum("bjk,bikc->bijc", _shift_matrices(dx, w), x, precision=exact)
    elif name == "cutout":
      ch, cw = h // 2, w // 2
      cy = jax.random.randint(next(keys), (b, 1, 1), 0, h + 1 - ch % 2) - ch // 2
      cx = jax.random.randint(next(keys), (b, 1, 1), 0, w + 1 - cw % 2) - cw // 2
      rows, cols = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
      inside = (rows >= cy) & (rows < cy + ch) & (cols >= cx) & (cols < cx + cw)
      x = x * (~inside)[..., None].astype(x.dtype)
    else:
      raise ValueError(f"unknown augmentation {name!r}; choose from {DIFF_AUGMENTS}.")
  return x


def parse_augment_policy(policy: str, key: str = "config.diffaug") -> tuple[str, ...]:
  """'color,translation' -> ('color', 'translation'); '' -> (). Raises
  ValueError naming `key` for an unknown or repeated name."""
  names = tuple(n.strip() for n in policy.split(",") if n.strip())
  for n in names:
    if n not in DIFF_AUGMENTS:
      raise ValueError(f"{key}={policy!r}: {n!r} is not an augmentation; use a comma-separated "
                       f"subset of {','.join(DIFF_AUGMENTS)} (or '' for none).")
  if len(set(names)) < len(names):
    raise ValueError(f"{key}={policy!r} names an augmentation twice.")
  return names
