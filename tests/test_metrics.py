"""Feature-space metrics on sets with known answers."""

import numpy as np
import pytest

from genjax import metrics


def test_frechet_distance_of_gaussians_matches_closed_form():
  rng = np.random.default_rng(0)
  mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
  s1, s2 = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
  # Diagonal covariances: FD = |mu1 - mu2|^2 + sum (s1 - s2)^2.
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
  got = metrics.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
  np.testing.assert_allclose(got, expected, rtol=1e-10)
  # A rotation of both covariances changes nothing.
  q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
  rotated = metrics.frechet_distance(mu1, q @ np.diag(s1**2) @ q.T, mu2, q @ np.diag(s2**2) @ q.T)
  np.testing.assert_allclose(rotated, expected, rtol=1e-8)


def test_frechet_distance_of_non_commuting_covariances_against_scipy():
  scipy_linalg = pytest.importorskip("scipy.linalg")
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
  c1, c2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
  expected = np.trace(c1) + np.trace(c2) - 2 * np.trace(scipy_linalg.sqrtm(c1 @ c2)).real
  np.testing.assert_allclose(metrics.frechet_distance(np.zeros(5), c1, np.zeros(5), c2), expected,
                             rtol=1e-8)


def test_fid_of_set_with_itself_is_zero_and_shift_is_large():
  x = np.random.default_rng(2).normal(size=(5000, 32))
  mu, cov = metrics.feature_statistics(x, block=700)
  np.testing.assert_allclose(mu, x.mean(0), atol=1e-12)
  np.testing.assert_allclose(cov, np.cov(x, rowvar=False), atol=1e-10)
  assert abs(metrics.frechet_distance(mu, cov, mu, cov)) < 1e-8
  mu2, cov2 = metrics.feature_statistics(x + 1.0)
  np.testing.assert_allclose(metrics.frechet_distance(mu, cov, mu2, cov2), 32.0, rtol=1e-6)


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two():
  rng = np.random.default_rng(3)
  a, b = rng.normal(size=(4000, 16)), rng.normal(size=(4000, 16))
  mean, std = metrics.kernel_inception_distance(a, b, num_subsets=50, subset_size=500)
  assert abs(mean) < 3 * std / np.sqrt(50) + 1e-4, (mean, std)  # zero within its error
  shifted, _ = metrics.kernel_inception_distance(a, b + 0.5, num_subsets=20, subset_size=500)
  assert shifted > 20 * abs(mean) and shifted > 0.01


def test_precision_recall_density_coverage_on_constructed_sets():
  rng = np.random.default_rng(4)
  centres = np.array([[0.0, 0.0], [100.0, 0.0]])
  real = np.concatenate([c + rng.normal(size=(500, 2)) for c in centres])
  same = real + 1e-3
  assert metrics.precision_recall(real, same) == (1.0, 1.0)
  far = real + 1000.0
  assert metrics.precision_recall(real, far) == (0.0, 0.0)
  assert metrics.density_coverage(real, far) == (0.0, 0.0)
  # A generator that covers one mode of two: precise, half the recall and coverage.
  one_mode = centres[0] + rng.normal(size=(1000, 2))
  p, r = metrics.precision_recall(real, one_mode)
  d, c = metrics.density_coverage(real, one_mode)
  assert p > 0.95 and 0.45 < r < 0.55, (p, r)
  assert 0.45 < c < 0.55 and d > 0.8, (d, c)


def test_metrics_invariant_to_sample_order():
  rng = np.random.default_rng(5)
  real, fake = rng.normal(size=(800, 8)), rng.normal(size=(700, 8)) * 1.3
  perm_r, perm_f = rng.permutation(800), rng.permutation(700)
  assert metrics.precision_recall(real, fake) == metrics.precision_recall(real[perm_r], fake[perm_f])
  dc1 = metrics.density_coverage(real, fake)
  dc2 = metrics.density_coverage(real[perm_r], fake[perm_f])
  np.testing.assert_allclose(dc1, dc2, rtol=1e-12)
  s1 = metrics.feature_statistics(fake)
  s2 = metrics.feature_statistics(fake[perm_f])
  np.testing.assert_allclose(metrics.frechet_distance(*metrics.feature_statistics(real), *s1),
                             metrics.frechet_distance(*metrics.feature_statistics(real), *s2),
                             rtol=1e-9)
