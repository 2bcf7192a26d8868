"""Inputs made from their targets: super-resolution and inpainting pairs.

Both tasks of the conditional GAN that do not need stored pairs
(genjax.models.pix2pix, `config.task`):
  superres  the target downsampled by `scale` with a box (area) filter,
            then brought back to the target's size with bicubic
            interpolation (clipped to [-1, 1]): the bicubic baseline, which
            SRResNet reads at the low resolution by space-to-depth, or the
            U-Net refines at one size (SRCNN's setting, Dong et al. 2014).
  inpaint   the target with a hole: the hole's pixels set to the mean of the
            image's known pixels (per channel), and the mask (1: hole,
            -1: known) as an extra last channel. Masks are a centre square
            (half the side, Pathak et al. 2016) or free-form strokes (Yu et
            al. 2019): polylines of random vertices, angles and brush widths.

Images are float [N, H, W, C] in [-1, 1]; every random draw comes from one
key per image, so a given image and key always get the same input,
whatever the batch it is in.
"""

import math

import jax
import jax.numpy as jnp

TASKS = ("superres", "inpaint")
MASKS = ("centre", "free_form")
MAX_STROKES, VERTICES = 4, 5  # free-form: 1..MAX_STROKES polylines of VERTICES points


def box_downsample(images: jax.Array, scale: int) -> jax.Array:
  """[N, H, W, C] -> [N, H/scale, W/scale, C]: the mean of each scale x scale block."""
  n, h, w, c = images.shape
  return jnp.mean(images.reshape(n, h // scale, scale, w // scale, scale, c), axis=(2, 4))


def superres_input(targets: jax.Array, scale: int) -> jax.Array:
  """The targets box-downsampled by `scale` and bicubic-upsampled back, in [-1, 1]."""
  low = box_downsample(targets, scale)
  return jnp.clip(jax.image.resize(low, targets.shape, "bicubic"), -1.0, 1.0)


def centre_mask(size: int) -> jax.Array:
  """[size, size, 1]: 1 on the centre square of side size // 2, else 0."""
  side = size // 2
  lo = (size - side) // 2
  r = jnp.arange(size)
  inside = (r >= lo) & (r < lo + side)
  return (inside[:, None] & inside[None, :]).astype(jnp.float32)[..., None]


def free_form_mask(key: jax.Array, size: int) -> jax.Array:
  """[size, size, 1]: 1 under 1..MAX_STROKES random brush strokes, else 0.

  Each stroke starts at a uniform point and takes VERTICES - 1 steps of a
  uniform angle and a length in [size/8, size/4]; its brush is size/16 to
  size/8 wide (at least 1.5 px). A pixel is in the hole when its centre is
  within half a brush width of a stroke's segments.
  """
  k_count, k_start, k_angle, k_len, k_width = jax.random.split(key, 5)
  count = jax.random.randint(k_count, (), 1, MAX_STROKES + 1)
  start = jax.random.uniform(k_start, (MAX_STROKES, 1, 2), maxval=size)
  angle = jax.random.uniform(k_angle, (MAX_STROKES, VERTICES - 1), maxval=2 * math.pi)
  length = jax.random.uniform(k_len, (MAX_STROKES, VERTICES - 1), minval=size / 8,
                              maxval=size / 4)
  steps = jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1) * length[..., None]
  points = jnp.clip(jnp.concatenate([start, start + jnp.cumsum(steps, axis=1)], axis=1),
                    0, size - 1)  # [S, V, 2]
  width = jnp.maximum(jax.random.uniform(k_width, (MAX_STROKES,), minval=size / 16,
                                         maxval=size / 8), 1.5)
  p, q = points[None, :, :-1], points[None, :, 1:]  # segments [1, S, V-1, 2]
  yy, xx = jnp.meshgrid(jnp.arange(size) + 0.5, jnp.arange(size) + 0.5, indexing="ij")
  pix = jnp.stack([yy, xx], axis=-1).reshape(-1, 1, 1, 2)  # [P, 1, 1, 2]
  d = q - p
  t = jnp.clip(jnp.sum((pix - p) * d, -1) / jnp.maximum(jnp.sum(d * d, -1), 1e-6), 0, 1)
  dist = jnp.linalg.norm(pix - (p + t[..., None] * d), axis=-1)  # [P, S, V-1]
  on = jnp.any(dist <= width[None, :, None] / 2, axis=-1) & (jnp.arange(MAX_STROKES) < count)[None]
  return jnp.any(on, axis=-1).reshape(size, size, 1).astype(jnp.float32)


def masks(keys: jax.Array, size: int, kind: str) -> jax.Array:
  """[N, size, size, 1] holes (1) of `kind` ('centre' or 'free_form'), one per key."""
  if kind == "centre":
    return jnp.broadcast_to(centre_mask(size), (keys.shape[0], size, size, 1))
  return jax.vmap(lambda k: free_form_mask(k, size))(keys)


def mean_fill(targets: jax.Array, hole: jax.Array) -> jax.Array:
  """The targets with each hole's pixels set to the mean of the image's known
  pixels (per channel): the masked input, and the inpainting baseline."""
  known = 1.0 - hole
  mean = jnp.sum(targets * known, axis=(1, 2), keepdims=True) / jnp.maximum(
      jnp.sum(known, axis=(1, 2), keepdims=True), 1.0)
  return jnp.where(hole > 0.5, mean, targets)


def inpaint_input(targets: jax.Array, hole: jax.Array) -> jax.Array:
  """[N, H, W, C + 1]: the mean-filled targets and the mask (1: hole, -1: known)."""
  return jnp.concatenate([mean_fill(targets, hole), hole * 2.0 - 1.0], axis=-1)


def hole_of(inputs: jax.Array) -> jax.Array:
  """The mask [N, H, W, 1] (1: hole, 0: known) of inpainting inputs."""
  return (inputs[..., -1:] > 0).astype(jnp.float32)


def composite(outputs: jax.Array, inputs: jax.Array) -> jax.Array:
  """Outputs in the hole, the input's known pixels (exactly) elsewhere."""
  return jnp.where(inputs[..., -1:] > 0, outputs, inputs[..., :-1])


def image_keys(key: jax.Array, start, n: int) -> jax.Array:
  """The keys of images start .. start + n - 1: `key` folded with each index."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(n))


def make_inputs(targets: jax.Array, task: str, scale: int, mask: str,
                keys: jax.Array) -> jax.Array:
  """The inputs of `targets` [N, H, W, C] for `task`; `keys` [N], one per image."""
  if task == "superres":
    return superres_input(targets, scale)
  return inpaint_input(targets, masks(keys, targets.shape[1], mask))


def shown(inputs: jax.Array, task: str) -> jax.Array:
  """Inputs as images for grids: inpainting's without the mask channel."""
  return inputs[..., :-1] if task == "inpaint" else inputs


def check(task: str, scale, mask: str, size: int) -> None:
  """ValueError naming a bad data.scale (superres) or data.mask (inpaint)."""
  if task == "superres":
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
      raise ValueError(f"config.data.scale={scale!r} must be an integer >= 2 (4: x4 "
                       "super-resolution).")
    if size % scale:
      raise ValueError(f"config.data.scale={scale} does not divide the {size} px images; "
                       f"choose a scale that divides {size} or another image size.")
  elif task == "inpaint" and mask not in MASKS:
    raise ValueError(f"config.data.mask={mask!r}: choose one of {list(MASKS)}.")
