"""Full-reference image quality of outputs against targets: L1, PSNR and SSIM.

Images are float in [-1, 1], [N, H, W, C]; each measure is computed on the
[0, 1] pixel scale (data range 1) and returned per image ([N]).

SSIM is Wang et al.'s (2004): local means, variances and covariance under a
Gaussian window of size 11 and sigma 1.5, C1 = (0.01 L)^2, C2 = (0.03 L)^2,
averaged over the positions where the window fits inside the image (those
of scikit-image's `structural_similarity(..., gaussian_weights=True,
use_sample_covariance=False, data_range=1)`) and over channels.

`hole_measures` restricts the three to a region (an inpainting hole): L1
and PSNR over its pixels, SSIM averaged over the window positions whose
centre is in it.
"""

import jax
import jax.numpy as jnp
import numpy as np

WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def _unit(images: jax.Array) -> jax.Array:
  return (jnp.asarray(images, jnp.float32) + 1.0) / 2.0


def l1(outputs: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean absolute error of each image [N] on [0, 1] pixels."""
  return jnp.mean(jnp.abs(_unit(outputs) - _unit(targets)), axis=(1, 2, 3))


def psnr(outputs: jax.Array, targets: jax.Array, max_db: float = 100.0) -> jax.Array:
  """10 log10(1 / MSE) of each image [N] in dB, at most `max_db` (equal images)."""
  mse = jnp.mean(jnp.square(_unit(outputs) - _unit(targets)), axis=(1, 2, 3))
  return jnp.minimum(10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-30)), max_db)


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
  """The normalised 1-D Gaussian [size]."""
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2
  g = np.exp(-x**2 / (2 * sigma**2))
  return (g / g.sum()).astype(np.float32)


def _filter(x: jax.Array, window: jax.Array) -> jax.Array:
  """Separable 'valid' Gaussian filter of [N, H, W, C] over H and W."""
  n, h, w, c = x.shape
  k = window.shape[0]
  planes = jnp.moveaxis(x, -1, 1).reshape(n * c, h, w, 1)
  kh, kw = window.reshape(k, 1, 1, 1), window.reshape(1, k, 1, 1)
  dims = ("NHWC", "HWIO", "NHWC")
  planes = jax.lax.conv_general_dilated(planes, kh, (1, 1), "VALID", dimension_numbers=dims)
  planes = jax.lax.conv_general_dilated(planes, kw, (1, 1), "VALID", dimension_numbers=dims)
  return jnp.moveaxis(planes.reshape(n, c, h - k + 1, w - k + 1), 1, -1)


def ssim_map(outputs: jax.Array, targets: jax.Array) -> jax.Array:
  """SSIM at each window position [N, H - 10, W - 10, C]; H and W must be >= 11."""
  x, y = _unit(outputs), _unit(targets)
  window = jnp.asarray(gaussian_window())
  mu_x, mu_y = _filter(x, window), _filter(y, window)
  var_x = _filter(x * x, window) - mu_x**2
  var_y = _filter(y * y, window) - mu_y**2
  cov = _filter(x * y, window) - mu_x * mu_y
  c1, c2 = K1**2, K2**2
  return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1)
                                                       * (var_x + var_y + c2))


def ssim(outputs: jax.Array, targets: jax.Array) -> jax.Array:
  """SSIM of each image [N] (module docstring); H and W must be >= 11."""
  return jnp.mean(ssim_map(outputs, targets), axis=(1, 2, 3))


@jax.jit
def all_measures(outputs: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
  """{'l1', 'psnr_db', 'ssim'}: each [N]."""
  return {"l1": l1(outputs, targets), "psnr_db": psnr(outputs, targets),
          "ssim": ssim(outputs, targets)}


@jax.jit
def hole_measures(outputs: jax.Array, targets: jax.Array, hole: jax.Array) -> dict[str, jax.Array]:
  """{'l1', 'psnr_db', 'ssim'} [N] inside `hole` [N, H, W, 1] (1: in it): L1 and
  PSNR over its pixels, SSIM over the window positions centred in it (0
  where no window centre is)."""
  err = _unit(outputs) - _unit(targets)
  area = jnp.maximum(jnp.sum(hole, axis=(1, 2, 3)) * outputs.shape[-1], 1.0)
  l1_ = jnp.sum(jnp.abs(err) * hole, axis=(1, 2, 3)) / area
  mse = jnp.sum(jnp.square(err) * hole, axis=(1, 2, 3)) / area
  r = WINDOW // 2
  centres = hole[:, r:hole.shape[1] - r, r:hole.shape[2] - r]
  s = jnp.sum(ssim_map(outputs, targets) * centres, axis=(1, 2, 3)) / jnp.maximum(
      jnp.sum(centres, axis=(1, 2, 3)) * outputs.shape[-1], 1.0)
  return {"l1": l1_, "psnr_db": jnp.minimum(10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-30)),
                                            100.0), "ssim": s}
