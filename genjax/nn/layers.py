"""Building blocks shared by the model families."""

import functools
from typing import Any, Callable, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn import precision

UpsampleMethod = Literal["subpixel", "transpose", "resize"]
UPSAMPLE_METHODS = ("subpixel", "transpose", "resize")


def channel_sum(x: jax.Array) -> jax.Array:
  """x [..., C] summed over every axis but the last -> [C], accumulated in
  float32 and returned in x's dtype.

  For x of 3 or more axes, as products with ones: XLA:CPU runs a reduction
  over the leading axes of [B, H, W, C], fused with what produces it, up to
  ten times slower than a product (docs/performance.md), and such reductions
  are every bias's and batch norm's gradient. One product ones [N] @ x [N, C]
  adds its N terms in sequence, a relative error that grows with N (1e-5 at
  N = 65,536, against XLA's reduction's 1e-7) and that batch norm's
  E[x^2] - E[x]^2 magnifies; so the rows are summed in k blocks of m (m the
  divisor of N nearest sqrt(N)) by one batched product, and the block sums
  by another: m + k terms in sequence, not N. An [N, C] array goes to XLA's
  reduction, which is as fast there and exact to float32 rounding."""
  flat = x.reshape(-1, x.shape[-1])
  n, c = flat.shape
  m = _block_rows(n)
  if x.ndim <= 2 or m == 0:
    return jnp.sum(flat, axis=0, dtype=jnp.float32).astype(x.dtype)
  if m == n:
    return jnp.dot(jnp.ones((n,), flat.dtype), flat,
                   preferred_element_type=jnp.float32).astype(x.dtype)
  ones = jnp.ones((n // m, 1, m), flat.dtype)
  blocks = jax.lax.dot_general(ones, flat.reshape(n // m, m, c), (((2,), (1,)), ((0,), (0,))),
                               preferred_element_type=jnp.float32)[:, 0]
  return jnp.dot(jnp.ones((n // m,), jnp.float32), blocks).astype(x.dtype)


@functools.lru_cache(maxsize=None)
def _block_rows(n: int) -> int:
  """channel_sum's block: n itself (one product) up to 256 rows, else the
  divisor of n nearest sqrt(n) from below, or 0 (XLA's reduction) where n
  has none above sqrt(n) / 4."""
  if n <= 256:
    return n
  m = next(m for m in range(int(n**0.5), 0, -1) if n % m == 0)
  return m if 4 * m > n**0.5 else 0


def channel_mean(x: jax.Array) -> jax.Array:
  """x [..., C] averaged over every axis but the last -> [C] (channel_sum)."""
  return channel_sum(x) / (x.size // x.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def per_channel(v: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """v [C] broadcast to `shape` [..., C], whose gradient, the sum over the
  leading axes, is `channel_sum`'s product rather than XLA's reduction: for
  biases, scales and batch statistics, `x + per_channel(bias, x.shape)`."""
  return jnp.broadcast_to(v, shape)


def _per_channel_fwd(v, shape):
  return jnp.broadcast_to(v, shape), None


def _per_channel_bwd(shape, _, g):
  del shape
  return (channel_sum(g),)


per_channel.defvjp(_per_channel_fwd, _per_channel_bwd)


def depth_to_space(x: jax.Array, block: int) -> jax.Array:
  """[B, H, W, C*b*b] -> [B, H*b, W*b, C] (TensorFlow's channel order)."""
  b, h, w, c = x.shape
  out_c = c // (block * block)
  x = x.reshape(b, h, w, block, block, out_c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * block, w * block, out_c)


_DIMS = ("NHWC", "HWIO", "NHWC")


def space_to_depth(x: jax.Array, block: int) -> jax.Array:
  """[B, H, W, C] -> [B, H/b, W/b, b*b*C]: depth_to_space's inverse."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // block, w // block, block * block * c)


def conv4_stride2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A 4x4 convolution of stride 2 padded by 1 on each side (kernel [4, 4, C, F];
  nn.Conv(F, (4, 4), 2, padding=1)'s, pix2pix's down-sampling), [B, H, W, C]
  -> [B, H/2, W/2, F] for even H and W, as a 2x2 stride-1 convolution of the
  padded input's space_to_depth: out[i] = sum_t k[t] x[2i + t - 1], and t =
  2u + a reads phase a of block i + u. The same function, with no wasted
  product; its gradients are stride-1 convolutions, which XLA:CPU runs near
  its matmul speed, unlike a strided convolution's weight and input
  gradients at small sizes (docs/performance.md)."""
  _, _, c, f = kernel.shape
  x = space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), 2)
  k = kernel.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, f)
  return jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=_DIMS)


@jax.custom_vjp
def conv_transpose4_stride2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """lax.conv_transpose(x, kernel, (2, 2), 'SAME') for a 4x4 kernel (not flipped:
  nn.ConvTranspose's, pix2pix's up-sampling), [B, H, W, C] -> [B, 2H, 2W, F].
  Its input gradient is `conv4_stride2` of the output gradient with the
  kernel's channels swapped and its taps reversed (`_conv_transpose4_stride2_bwd`).

  Output phase a of row 2m + a is k[a] x[m + a - 1] + k[a + 2] x[m + a]: each
  of the four phases (a, b) a 2x2 convolution of the input padded by one,
  read at offset (a, b). All four are one stride-1 convolution to 4F
  channels, then interleaved: 4 products per output, as the transposed
  convolution itself (the 3x3 sub-pixel form of `conv_transpose_stride2`
  would do 9), and gradients that are stride-1 convolutions."""
  return _conv_transpose4_stride2(x, kernel)


def _conv_transpose4_stride2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  _, _, c, f = kernel.shape
  b, h, w, _ = x.shape
  k = kernel.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, c, 4 * f)
  y = jax.lax.conv_general_dilated(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, (1, 1),
                                   "VALID", dimension_numbers=_DIMS)
  y = y.reshape(b, h + 1, w + 1, 2, 2, f)
  rows = [jnp.stack([y[:, a:a + h, e:e + w, a, e] for e in (0, 1)], axis=3) for a in (0, 1)]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, f)  # [B, H, a, W, b, F]


def _conv_transpose4_stride2_fwd(x, kernel):
  return _conv_transpose4_stride2(x, kernel), (x, kernel)


def _conv_transpose4_stride2_bwd(residuals, dy):
  """The input gradient as conv4_stride2(dy, kernel [4, 4, F, C] reversed):
  what autodiff derives instead is a stride-1 convolution whose kernel is the
  rearranged [2, 2, C, 4F] one transposed, a 6-d transpose with a reversal
  that XLA:CPU runs element by element at every step (inpainting's step,
  five such layers from 1 to 16 px: 1,300 against 1,260 images/s, medians
  of four alternating runs). The kernel's gradient is autodiff's."""
  x, kernel = residuals
  dx = conv4_stride2(dy, jnp.swapaxes(kernel, 2, 3)[::-1, ::-1])
  _, kernel_vjp = jax.vjp(lambda k: _conv_transpose4_stride2(x, k), kernel)
  return dx, kernel_vjp(dy)[0]


conv_transpose4_stride2.defvjp(_conv_transpose4_stride2_fwd, _conv_transpose4_stride2_bwd)


def _conv_stride2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), "SAME", dimension_numbers=_DIMS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_stride2_transpose(dy: jax.Array, kernel: jax.Array, x_shape: tuple) -> jax.Array:
  """The input gradient of `_conv_stride2` at cotangent dy, as lax computes it."""
  x = jax.ShapeDtypeStruct(x_shape, dy.dtype)
  return jax.linear_transpose(lambda x: _conv_stride2(x, kernel), x)(dy)[0]


def _conv_stride2_transpose_fwd(dy, kernel, x_shape):
  return _conv_stride2_transpose(dy, kernel, x_shape), (dy, kernel)


def _conv_stride2_transpose_bwd(x_shape, residuals, g):
  """<g, T(dy, W)> = <conv(g, W), dy>: the derivative in dy is the forward
  convolution of g, and the derivative in W the forward convolution's weight
  gradient at input g and cotangent dy."""
  del x_shape
  dy, kernel = residuals
  y, kernel_vjp = jax.vjp(lambda w: _conv_stride2(g, w), kernel)
  return y, kernel_vjp(dy)[0]


_conv_stride2_transpose.defvjp(_conv_stride2_transpose_fwd, _conv_stride2_transpose_bwd)


@jax.custom_vjp
def conv_stride2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Stride-2 SAME convolution (kernel [kh, kw, C, F]), as lax's, with a
  second derivative that XLA:CPU computes fast.

  WGAN-GP's and R1's penalties differentiate a discriminator's input
  gradient, a transposed (dilated) convolution, with respect to the weights.
  JAX derives that as a convolution XLA:CPU runs far below its speed; this
  function gives it instead as the forward convolution's own weight
  gradient, the same number: for 4x4, 64 -> 128 channels at 14x14, batch
  64, 48 ms instead of 298 ms. Values and first derivatives are lax's.

  The kernel is computed in x's dtype (bfloat16 activations with float32
  weights: config.precision); its gradient is returned in its own dtype.
  """
  return _conv_stride2(x, kernel.astype(x.dtype))


def _conv_stride2_fwd(x, kernel):
  return _conv_stride2(x, kernel.astype(x.dtype)), (x, kernel)


def _conv_stride2_bwd(residuals, dy):
  x, kernel = residuals
  k = kernel.astype(x.dtype)
  kernel_grad = jax.linear_transpose(lambda w: _conv_stride2(x, w), k)(dy)[0]
  return _conv_stride2_transpose(dy, k, x.shape), kernel_grad.astype(kernel.dtype)


conv_stride2.defvjp(_conv_stride2_fwd, _conv_stride2_bwd)


class Conv(nn.Module):
  """SAME convolution with nn.Conv's variables (kernel [k, k, C, F], bias [F]).

  strides=2 is `conv_stride2`: lax's convolution, whose second derivatives
  (gradient penalties) XLA:CPU takes fast.

  For a few output channels (F <= TAPS_MAX_FEATURES), as at a generator's
  output, it is computed as one matrix product to the k*k*F tap responses of
  each pixel, [B*H*W, C] @ [C, k*k*F], followed by a sum of k*k shifted
  [B, H, W, F] maps. XLA:CPU runs a convolution with one output channel far
  below its matmul speed: for 3x3, 32 -> 1 at 28x28, batch 64, forward and
  both gradients take 1.4 ms this way against 4.3 ms as a convolution. With
  more output channels it is nn.Conv's convolution. A 1x1 kernel is a matrix
  product [B*H*W, C] @ [C, F] at any width: its forward and both gradients
  take 2-6x less time than the convolution's on XLA:CPU (batch 16-32 at
  16-32 px, 4-32 channels). Same function either way,
  same variables, so checkpoints move freely between the two.

  `dtype` is the compute dtype (input, kernel and bias are cast to it); the
  variables stay float32.
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: int = 1  # 1 or 2, both axes
  padding: str = "SAME"
  use_bias: bool = True
  dtype: Any = None  # compute dtype (genjax.nn.precision); None: that of the inputs
  kernel_init: Callable = nn.initializers.lecun_normal()

  TAPS_MAX_FEATURES = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.padding != "SAME":
      raise ValueError(f"layers.Conv supports padding='SAME' only, got {self.padding!r}.")
    if self.strides not in (1, 2):
      raise ValueError(f"layers.Conv supports strides 1 and 2, got {self.strides!r}.")
    kh, kw = self.kernel_size
    b, h, w, c = x.shape
    kernel = self.param("kernel", self.kernel_init, (kh, kw, c, self.features))
    x, kernel = precision.cast(self.dtype, x, kernel)
    if self.strides == 2:
      y = conv_stride2(x, kernel)
    elif kh == kw == 1:
      y = (x.reshape(-1, c) @ kernel.reshape(c, self.features)).reshape(b, h, w, self.features)
    elif self.features > self.TAPS_MAX_FEATURES:
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMS)
    else:
      # taps[b, i, j, u, v, f]: pixel (i, j)'s contribution to output (i + top - u, j + left - v).
      taps = x.reshape(-1, c) @ kernel.transpose(2, 0, 1, 3).reshape(c, -1)
      taps = taps.reshape(b, h, w, kh, kw, self.features)
      top, left = (kh - 1) // 2, (kw - 1) // 2  # SAME padding, as lax's
      taps = jnp.pad(taps, ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left),
                            (0, 0), (0, 0), (0, 0)))
      y = sum(taps[:, u:u + h, v:v + w, u, v] for u in range(kh) for v in range(kw))
    if self.use_bias:
      bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
      y = y + per_channel(precision.cast(self.dtype, bias)[0], y.shape)
    return y


class BatchNorm(nn.Module):
  """nn.BatchNorm normalising over every axis but the last: its variables
  (params scale, bias; batch_stats mean, var), initialisers, running
  averages and arithmetic (statistics in at least float32, variance as
  E[x^2] - E[x]^2 clipped at 0), with the sums over the leading axes and
  their gradients products with ones (channel_sum, per_channel), which
  XLA:CPU runs faster than its reductions. A drop-in: same name, same
  checkpoints."""

  use_running_average: bool | None = None
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Callable = nn.initializers.zeros
  scale_init: Callable = nn.initializers.ones

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), (c,))
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), (c,))
    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
      mean, mean2 = channel_mean(x32), channel_mean(jnp.square(x32))
      var = jnp.maximum(0.0, mean2 - jnp.square(mean))
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    mul = jax.lax.rsqrt(var + self.epsilon)
    args = [x]
    if self.use_scale:
      scale = self.param("scale", self.scale_init, (c,), self.param_dtype)
      mul, args = mul * scale, args + [scale]
    y = (x - per_channel(mean, x.shape)) * per_channel(mul, x.shape)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (c,), self.param_dtype)
      y, args = y + per_channel(bias, x.shape), args + [bias]
    return jnp.asarray(y, nn.dtypes.canonicalize_dtype(*args, dtype=self.dtype))


@jax.custom_vjp
def _scale_negative(x: jax.Array, slope: jax.Array) -> jax.Array:
  return jnp.where(x >= 0, x, slope * x)


def _scale_negative_fwd(x, slope):
  return _scale_negative(x, slope), (x, slope)


def _scale_negative_bwd(residuals, g):
  x, slope = residuals
  negative = jnp.minimum(x, 0).reshape(-1)
  d_slope = jnp.dot(g.reshape(-1), negative, preferred_element_type=jnp.float32)
  return jnp.where(x >= 0, g, slope * g), d_slope.astype(slope.dtype).reshape(slope.shape)


_scale_negative.defvjp(_scale_negative_fwd, _scale_negative_bwd)


class PReLU(nn.Module):
  """nn.PReLU (one learned slope for x < 0, the variable `negative_slope`),
  with the slope's gradient a dot product rather than XLA:CPU's slower
  reduction (channel_sum)."""

  negative_slope_init: float = 0.01
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    slope = self.param("negative_slope", nn.initializers.constant(self.negative_slope_init),
                       (), self.param_dtype)
    return _scale_negative(x, jnp.asarray(slope, x.dtype))


def _subpixel_taps(kernel_size: int) -> tuple[jax.Array, int]:
  """taps[d, a, t] = 1 where kernel tap t of a stride-2 SAME transposed
  convolution reaches output phase a from input offset d + offset, and the
  first offset: out[2i + a] = sum_t k[t] x[i + d], d = (a + t - pad) / 2."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  k = kernel_size
  pad = k - 1 if 2 > k - 1 else -(-k // 2)  # lax.conv_transpose's SAME padding before
  pairs = [(a, t, (a + t - pad) // 2) for a in range(2) for t in range(k)
           if (a + t - pad) % 2 == 0]
  lo = min(d for *_, d in pairs)
  taps = np.zeros((max(d for *_, d in pairs) - lo + 1, 2, k), np.float32)
  for a, t, d in pairs:
    taps[d - lo, a, t] = 1.0
  return jnp.asarray(taps), lo


def conv_transpose_stride2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """lax.conv_transpose(x, kernel, (2, 2), 'SAME') (kernel [kh, kw, C, F], not
  flipped: flax's ConvTranspose) as a sub-pixel convolution: the same function.

  Each of the four output phases (2i + a, 2j + b) is a small convolution of
  the input itself, so the whole is one stride-1 convolution to 4F channels
  followed by depth_to_space, whose kernel is gathered from `kernel`. XLA:CPU
  runs the transposed convolution's weight gradient (a convolution of a
  dilated input) far below its speed; this form's gradients are ordinary
  convolutions, and it skips the dilation's zeros.
  """
  kh, kw, c, f = kernel.shape
  (th, lo_h), (tw, lo_w) = _subpixel_taps(kh), _subpixel_taps(kw)
  # [u, v, C, a, b, F]: phase (a, b)'s kernel at input offset (u + lo_h, v + lo_w)
  # 0/1 taps at full precision: a gather of the kernel's own values on every backend
  sub = jnp.einsum("uat,vbs,tscf->uvcabf", th.astype(kernel.dtype), tw.astype(kernel.dtype),
                   kernel, precision=jax.lax.Precision.HIGHEST)
  sub = sub.reshape(th.shape[0], tw.shape[0], c, 4 * f)
  b, h, w, _ = x.shape
  x = jnp.pad(x, ((0, 0), (max(-lo_h, 0), max(th.shape[0] - 1 + lo_h, 0)),
                  (max(-lo_w, 0), max(tw.shape[0] - 1 + lo_w, 0)), (0, 0)))
  x = x[:, max(lo_h, 0):, max(lo_w, 0):]
  y = jax.lax.conv_general_dilated(x, sub, (1, 1), "VALID", dimension_numbers=_DIMS)
  return depth_to_space(y[:, :h, :w], 2)


class ConvTranspose(nn.Module):
  """Stride-2 SAME transposed convolution with nn.ConvTranspose's variables
  (kernel [k, k, C, F], bias [F]) and function, computed by
  `conv_transpose_stride2`: checkpoints move freely between the two."""

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  dtype: Any = None  # compute dtype (genjax.nn.precision); None: that of the inputs
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1],
                                                     self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    x, kernel, bias = precision.cast(self.dtype, x, kernel, bias)
    return conv_transpose_stride2(x, kernel) + bias[None, None, None]


def icnr(base_init=nn.initializers.lecun_normal(), block: int = 2):
  """ICNR initialisation of a sub-pixel convolution (Aitken et al. 2017).

  The kernel [kh, kw, C, block*block*F] is `base_init`'s kernel for F
  outputs, repeated for each of the block*block sub-pixels in
  `depth_to_space`'s channel order, so that the upsampled output starts as
  a nearest-neighbour upsampling of that convolution: no checkerboard at
  initialisation, which training would otherwise have to unlearn.
  """

  def init(key, shape, dtype=jnp.float32):
    *window, c_in, c_out = shape
    base = base_init(key, (*window, c_in, c_out // (block * block)), dtype)
    return jnp.tile(base, (1,) * (len(shape) - 1) + (block * block,))

  return init


class Upsample2x(nn.Module):
  """Doubles height and width, then maps to `features` channels.

  Methods (same output shape, different cost and artefacts):
    subpixel:  conv at low resolution to 4*features, then depth-to-space
               (Shi et al. 2016). Fast on every backend, XLA's CPU included.
               `icnr=True` initialises it so that the four sub-pixels start
               equal (`icnr`).
    transpose: strided transposed convolution, as in DCGAN (Radford et al.
               2016), nn.ConvTranspose's function and variables, computed
               as a sub-pixel convolution (`conv_transpose_stride2`).
    resize:    nearest-neighbour resize, then a conv (Odena et al. 2016).
  """

  features: int
  method: UpsampleMethod = "subpixel"
  kernel_size: int = 3
  dtype: Any = None  # compute dtype (genjax.nn.precision); None: that of the inputs
  icnr: bool = False

  @nn.compact
  def __call__(self, x: jax.Array,
               per_pixel: Callable[[jax.Array], jax.Array] | None = None) -> jax.Array:
    """x [B, H, W, C] -> [B, 2H, 2W, features].

    per_pixel: a map of [N, features] rows, one row per output pixel, that
    treats rows alike and sees only their set (batch norm and an activation);
    applied to the output. For subpixel it is applied before the pixel
    shuffle, which only reorders rows: XLA:CPU would otherwise copy the
    shuffled tensor into every fusion that reads it.
    """
    k = (self.kernel_size, self.kernel_size)

    def rows_map(h):
      if per_pixel is None:
        return h
      return per_pixel(h.reshape(-1, self.features)).reshape(h.shape)

    if self.method == "subpixel":
      init = icnr() if self.icnr else nn.initializers.lecun_normal()
      x = nn.Conv(4 * self.features, k, padding="SAME", dtype=self.dtype, kernel_init=init)(x)
      return depth_to_space(rows_map(x), 2)  # [B, H, W, (2, 2, features)] rows, shuffled
    if self.method == "transpose":
      return rows_map(ConvTranspose(self.features, k, dtype=self.dtype)(x))
    if self.method == "resize":
      b, h, w, c = x.shape
      x = jax.image.resize(x, (b, 2 * h, 2 * w, c), method="nearest")
      return rows_map(nn.Conv(self.features, k, padding="SAME", dtype=self.dtype)(x))
    raise ValueError(
        f"Unknown upsampling method {self.method!r}; use one of {UPSAMPLE_METHODS}."
    )


def spectral_norm(module: nn.Module, x: jax.Array, update_stats: bool) -> jax.Array:
  """module(x) with each of its weight matrices divided by its largest
  singular value (Miyato et al. 2018), as flax's nn.SpectralNorm computes
  it: one power iteration per call with `update_stats`, its vectors in the
  `batch_stats` collection (kernels [..., F] flattened to [-1, F]; biases
  and scalars unchanged). Call it inside a compact module; dtype None: the
  power iteration runs on the float32 weights whatever the compute dtype."""
  return nn.SpectralNorm(module)(x, update_stats=update_stats)


class VirtualBatchNorm(nn.Module):
  """Virtual batch normalisation (Salimans et al. 2016, "Improved techniques
  for training GANs"): each example is normalised with the statistics of a
  fixed reference batch combined with its own, weighted 1/(R+1) for itself
  and R/(R+1) for the reference batch of R examples, so that its output
  does not depend on the rest of its batch. The reference examples, which
  lead the batch, are normalised with the reference statistics alone.

  Rows [N * P, C] in, example-major (P rows per example, e.g. its pixels);
  the first `reference_size` examples are the reference batch. Statistics
  are float32 at any compute dtype; a learned scale and bias per channel.
  """

  reference_size: int
  epsilon: float = 1e-5
  dtype: Any = None  # compute dtype of the output; None: that of the inputs

  @nn.compact
  def __call__(self, rows: jax.Array, num_examples: int) -> jax.Array:
    c = rows.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    x = rows.astype(jnp.float32).reshape(num_examples, -1, c)  # [N, P, C]
    mean, mean_sq = jnp.mean(x, axis=1), jnp.mean(x * x, axis=1)  # [N, C] each
    r = self.reference_size
    ref_mean, ref_sq = jnp.mean(mean[:r], axis=0), jnp.mean(mean_sq[:r], axis=0)  # [C]
    own = 1.0 / (r + 1)
    mix = lambda ref, per_example: jnp.concatenate(
        [jnp.broadcast_to(ref, (r, c)), own * per_example[r:] + (1 - own) * ref[None]])
    mean, mean_sq = mix(ref_mean, mean), mix(ref_sq, mean_sq)  # [N, C]
    var = jnp.maximum(mean_sq - mean * mean, 0.0)
    y = (x - mean[:, None]) * jax.lax.rsqrt(var + self.epsilon)[:, None]
    y = y * scale[None, None] + bias[None, None]
    return y.reshape(rows.shape).astype(self.dtype or rows.dtype)
