"""Differentiable augmentation for the GAN step: what D sees of real and
generated images alike, so that with few training images D cannot memorise
them while G's gradient passes through the augmentation. Each image draws its
own parameters.

  diff_augment   DiffAugment (Zhao et al. 2020), the authors' ranges
  ada            the adaptive augmentation of Karras et al. 2020 ("Training
                 Generative Adversarial Networks with Limited Data"), each
                 operation applied with probability p
  ada_adjust     ADA's controller of p from the signs of D's real outputs
"""

import math

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


AUGMENTS = ("none", "diffaugment", "ada")  # config.augment's choices

# ADA's operations in the pipeline's order: 'bgc' = blit, geometric, colour.
ADA_BLIT = ("xflip", "rotate90", "xint")
ADA_GEOMETRIC = ("scale", "rotate", "aniso", "xfrac")
ADA_COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
ADA_OPS = ADA_BLIT + ADA_GEOMETRIC + ADA_COLOR
_RGB_ONLY = ("hue", "saturation")  # identity on a grey image: skipped when C = 1


def _mat3(rows):
  """[[a, b, c], [d, e, f]] of [B] arrays -> [B, 3, 3] with a last row 0 0 1."""
  b = rows[0][0].shape[0]
  last = [jnp.zeros(b), jnp.zeros(b), jnp.ones(b)]
  return jnp.stack([jnp.stack(r, -1) for r in (*rows, last)], -2)


def _scale2d(sx, sy):
  z = jnp.zeros_like(sx)
  return _mat3([[sx, z, z], [z, sy, z]])


def _translate2d(tx, ty):
  o, z = jnp.ones_like(tx), jnp.zeros_like(tx)
  return _mat3([[o, z, tx], [z, o, ty]])


def _aniso(s):
  return _scale2d(s, 1 / s)


def _rotate2d(cos, sin):
  z = jnp.zeros_like(cos)
  return _mat3([[cos, -sin, z], [sin, cos, z]])


def _luma_axis():
  return jnp.array([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3.0)  # [4], homogeneous RGB


def _rotate3d(axis, theta):
  """[B, 4, 4] rotations by theta [B] about the unit `axis` [4] (Rodrigues)."""
  x, y, z = axis[0], axis[1], axis[2]
  c, s = jnp.cos(theta), jnp.sin(theta)
  cc = 1 - c
  o, zero = jnp.ones_like(theta), jnp.zeros_like(theta)
  rows = [[x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, zero],
          [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, zero],
          [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, zero],
          [zero, zero, zero, o]]
  return jnp.stack([jnp.stack(r, -1) for r in rows], -2)


def _reflect(c, size: int):
  """Continuous pixel coordinates folded into [0, size - 1] by mirroring
  about the outer pixel centres (reflect padding of any width)."""
  if size == 1:
    return jnp.zeros_like(c)
  period = 2.0 * (size - 1)
  c = jnp.mod(c, period)
  return jnp.where(c > size - 1, period - c, c)


def _warp(images, g_inv):
  """images [B, H, W, C] sampled at g_inv [B, 3, 3] @ (output pixel), in
  pixel coordinates about the image centre, bilinearly with reflect padding."""
  b, h, w, c = images.shape
  ys, xs = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing="ij")
  grid = jnp.stack([xs.ravel(), ys.ravel(), jnp.ones(h * w)])  # [3, H*W]
  src = jnp.einsum("bij,jp->bip", g_inv, grid, precision=jax.lax.Precision.HIGHEST)
  sx = _reflect(src[:, 0] + (w - 1) / 2, w)  # [B, H*W]
  sy = _reflect(src[:, 1] + (h - 1) / 2, h)
  x0, y0 = jnp.floor(sx), jnp.floor(sy)
  fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]  # [B, H*W, 1]
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  x1, y1 = jnp.minimum(x0 + 1, w - 1), jnp.minimum(y0 + 1, h - 1)
  flat = images.reshape(b, h * w, c)
  at = lambda yy, xx: jnp.take_along_axis(flat, (yy * w + xx)[..., None], axis=1)
  top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
  bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
  return (top * (1 - fy) + bottom * fy).reshape(b, h, w, c)


def ada(key: jax.Array, images: jax.Array, p, ops: tuple[str, ...] = ADA_OPS) -> jax.Array:
  """ADA's augmentation of `images` [B, H, W, C] in [-1, 1] (C = 1 or 3):
  each operation of `ops` (names of ADA_OPS; the default is the paper's
  'bgc' pipeline) applied to each image with probability `p` (a float or a
  traced scalar), with the parameter distributions of Karras et al. 2020:

  - xflip: mirror left-right; rotate90: by 0, 90, 180 or 270 degrees;
    xint: an integer shift by up to 1/8 of the size each way;
  - scale: isotropic, 2^N(0, 0.2^2); rotate: by U(-pi, pi), drawn twice
    (before and after aniso) with probability 1 - sqrt(1 - p) each, so that
    some rotation happens with probability p; aniso: 2^N(0, 0.2^2) along x and
    its inverse along y; xfrac: a shift of N(0, 0.125^2) of the size;
  - brightness: + N(0, 0.2^2); contrast: x 2^N(0, 0.5^2); lumaflip: the
    luma component negated with probability 1/2; hue: a rotation by U(-pi, pi)
    about the luma axis; saturation: the chroma x 2^N(0, 1).

  The geometric operations (the first seven) compose into one affine map per
  image, sampled bilinearly with reflect padding; the colour ones into one
  4x4 matrix per image in homogeneous RGB. For C = 1 a grey value is taken as
  equal R, G and B and the result averaged back; hue and saturation, which
  leave grey unchanged, are skipped. Differentiable in `images`; with p = 0
  it returns `images` exactly.
  """
  unknown = [op for op in ops if op not in ADA_OPS]
  if unknown:
    raise ValueError(f"unknown ADA operation(s) {unknown}; choose from {ADA_OPS}.")
  b, h, w, c = images.shape
  keys = jax.random.split(key, 2 * len(ADA_OPS))
  draws = {op: (keys[2 * i], keys[2 * i + 1]) for i, op in enumerate(ADA_OPS)}

  def gate(op, value, identity, prob=p):
    """value [B] where the image's coin (probability `prob`) says so, else identity."""
    on = jax.random.uniform(draws[op][0], (b,)) < prob
    return jnp.where(on, value, identity)

  def uniform(op, shape=(b,)):
    return jax.random.uniform(draws[op][1], shape)

  def normal(op, shape=(b,)):
    return jax.random.normal(draws[op][1], shape)

  g = jnp.broadcast_to(jnp.eye(3), (b, 3, 3))  # output -> input pixel map
  for op in ops:
    if op == "xflip":
      flip = gate(op, jnp.floor(uniform(op) * 2), 0.0)
      g = g @ _scale2d(1 - 2 * flip, jnp.ones(b))
    elif op == "rotate90":
      quarter = gate(op, jnp.floor(uniform(op) * 4), 0.0).astype(jnp.int32)
      cos, sin = jnp.array([1.0, 0, -1, 0])[quarter], jnp.array([0.0, 1, 0, -1])[quarter]
      g = g @ _rotate2d(cos, sin)  # exact: integer pixels stay integer
    elif op == "xint":
      t = uniform(op, (2, b)) * 2 - 1
      g = g @ _translate2d(gate(op, jnp.round(t[0] * 0.125 * w), 0.0),
                           gate(op, jnp.round(t[1] * 0.125 * h), 0.0))
    elif op == "scale":
      s = gate(op, jnp.exp2(normal(op) * 0.2), 1.0)
      g = g @ _scale2d(s, s)
    elif op == "rotate":  # before and after aniso, as in the paper's pipeline
      p_rot = 1 - jnp.sqrt(jnp.clip(1 - p, 0.0, 1.0))
      coins = jax.random.uniform(draws[op][0], (2, b)) < p_rot
      theta = jnp.where(coins, (uniform(op, (2, b)) * 2 - 1) * jnp.pi, 0.0)
      g = g @ _rotate2d(jnp.cos(theta[0]), jnp.sin(theta[0]))
      if "aniso" in ops:
        g = g @ _aniso(gate("aniso", jnp.exp2(normal("aniso") * 0.2), 1.0))
      g = g @ _rotate2d(jnp.cos(theta[1]), jnp.sin(theta[1]))
    elif op == "aniso":
      if "rotate" not in ops:  # else applied between the two rotations
        g = g @ _aniso(gate(op, jnp.exp2(normal(op) * 0.2), 1.0))
    elif op == "xfrac":
      t = normal(op, (2, b)) * 0.125
      g = g @ _translate2d(gate(op, t[0] * w, 0.0), gate(op, t[1] * h, 0.0))
  x = images
  if any(op in ops for op in ADA_BLIT + ADA_GEOMETRIC):
    x = _warp(x, g)

  v = _luma_axis()
  vv = jnp.outer(v, v)
  eye = jnp.eye(4)
  m = jnp.broadcast_to(eye, (b, 4, 4))
  for op in ops:
    if op in _RGB_ONLY and c == 1:
      continue
    if op == "brightness":
      t = gate(op, normal(op) * 0.2, 0.0)
      shift = jnp.zeros((4, 4)).at[:3, 3].set(1.0)  # + t to R, G and B
      m = (eye[None] + t[:, None, None] * shift[None]) @ m
    elif op == "contrast":
      s = gate(op, jnp.exp2(normal(op) * 0.5), 1.0)
      diagonal = jnp.where(jnp.arange(4)[None, :] < 3, s[:, None], 1.0)  # [B, 4]
      m = (diagonal[:, :, None] * eye[None]) @ m
    elif op == "lumaflip":
      flip = gate(op, jnp.floor(uniform(op) * 2), 0.0)
      m = (eye[None] - 2 * vv[None] * flip[:, None, None]) @ m
    elif op == "hue":
      theta = gate(op, (uniform(op) * 2 - 1) * jnp.pi, 0.0)
      m = _rotate3d(v, theta) @ m
    elif op == "saturation":
      s = gate(op, jnp.exp2(normal(op)), 1.0)
      m = (vv[None] + (eye - vv)[None] * s[:, None, None]) @ m
  if any(op in ops for op in ADA_COLOR):
    exact = jax.lax.Precision.HIGHEST
    if c == 3:
      x = jnp.einsum("bij,bhwj->bhwi", m[:, :3, :3], x, precision=exact) + m[:, None, None, :3, 3]
    else:  # grey as R = G = B, the result's mean over R, G, B
      gain = jnp.mean(jnp.sum(m[:, :3, :3], axis=2), axis=1)
      x = x * gain[:, None, None, None] + jnp.mean(m[:, :3, 3], axis=1)[:, None, None, None]
  return x


def ada_adjust(p, real_sign_mean, num_images, speed_images, target: float = 0.6):
  """ADA's update of p (Karras et al. 2020): with r_t = E[sign(D(x_real))],
  p + sign(r_t - target) * num_images / speed_images, clipped to [0, 1].
  D overfitting (r_t above the target) raises p; `speed_images` is how many
  images p takes to go from 0 to 1."""
  p = p + jnp.sign(real_sign_mean - target) * (num_images / speed_images)
  return jnp.clip(p, 0.0, 1.0).astype(jnp.float32)
