"""Distances between two sets of features; see genjax.metrics."""

import numpy as np


def feature_statistics(features: np.ndarray, block: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
  """Mean [D] and covariance [D, D] in float64, accumulated `block` rows at a time."""
  n, d = features.shape
  total = np.zeros(d)
  outer = np.zeros((d, d))
  for i in range(0, n, block):
    f = np.asarray(features[i:i + block], np.float64)
    total += f.sum(0)
    outer += f.T @ f
  mean = total / n
  cov = (outer - n * np.outer(mean, mean)) / (n - 1)
  return mean, cov


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
  """Square root of a symmetric positive semi-definite matrix, via eigh."""
  w, v = np.linalg.eigh((matrix + matrix.T) / 2)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
  """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)) between two Gaussians.

  tr((C1 C2)^(1/2)) is computed as tr((S C2 S)^(1/2)) with S = C1^(1/2): the
  matrices have the same eigenvalues, and S C2 S is symmetric PSD, so eigh
  gives real, non-negative eigenvalues and no imaginary part can appear
  (scipy.linalg.sqrtm on C1 C2, as common FID code does, returns complex
  values that are then silently discarded).
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
  s = _sqrtm_psd(cov1)
  eig = np.linalg.eigvalsh(s @ cov2 @ s)
  tr_sqrt = np.sum(np.sqrt(np.clip(eig, 0.0, None)))
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """Unbiased MMD^2 with the cubic polynomial kernel, mean and std over subsets."""
  rng = np.random.default_rng(seed)
  m = min(subset_size, len(real), len(fake))
  values = []
  for _ in range(num_subsets):
    x = np.asarray(real[rng.choice(len(real), m, replace=False)], np.float64)
    y = np.asarray(fake[rng.choice(len(fake), m, replace=False)], np.float64)
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
           - 2.0 * kxy.mean())
    values.append(mmd)
  return float(np.mean(values)), float(np.std(values))


def _pairwise_sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  d = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
  return np.maximum(d, 0.0)


def _knn_radii(x: np.ndarray, k: int, block: int) -> np.ndarray:
  """Squared distance from each row of x to its k-th nearest other row."""
  radii = np.empty(len(x))
  for i in range(0, len(x), block):
    d = _pairwise_sq_dists(x[i:i + block], x)
    radii[i:i + block] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself
  return radii


def _inside_counts(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray, block: int):
  """For each query, how many balls B(centre_i, radius_i) contain it; and per centre,
  the squared distance to its nearest query."""
  counts = np.zeros(len(queries), np.int64)
  nearest = np.full(len(centres), np.inf)
  for i in range(0, len(queries), block):
    d = _pairwise_sq_dists(queries[i:i + block], centres)
    counts[i:i + block] = (d <= radii[None, :]).sum(1)
    nearest = np.minimum(nearest, d.min(0))
  return counts, nearest


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3,
                     block: int = 2000) -> tuple[float, float]:
  """k-NN precision (fakes inside the real manifold) and recall (reals inside the fake one)."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  in_real, _ = _inside_counts(fake, real, _knn_radii(real, k, block), block)
  in_fake, _ = _inside_counts(real, fake, _knn_radii(fake, k, block), block)
  return float(np.mean(in_real > 0)), float(np.mean(in_fake > 0))


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5,
                     block: int = 2000) -> tuple[float, float]:
  """Density (mean real-ball count per fake, / k) and coverage (reals whose ball holds a fake)."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  radii = _knn_radii(real, k, block)
  counts, nearest = _inside_counts(fake, real, radii, block)
  return float(counts.mean() / k), float(np.mean(nearest <= radii))
