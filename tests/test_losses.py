"""GAN losses against their closed forms, including extreme logits."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import losses

LOGITS = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], np.float32)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


class LossTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_minimax_discriminator_matches_closed_form(self):
    real, fake = LOGITS, LOGITS[::-1] * 0.5
    expected = -(np.mean(np.log(_sigmoid(real))) + np.mean(np.log(1 - _sigmoid(fake))))
    got = self.variant(losses.minimax_discriminator_loss)(real, fake)
    np.testing.assert_allclose(got, expected, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_generator_losses_match_closed_form(self):
    np.testing.assert_allclose(
        self.variant(losses.minimax_generator_loss)(LOGITS),
        np.mean(np.log(1 - _sigmoid(LOGITS))), rtol=1e-5)
    np.testing.assert_allclose(
        self.variant(losses.non_saturating_generator_loss)(LOGITS),
        -np.mean(np.log(_sigmoid(LOGITS))), rtol=1e-5)


@pytest.mark.parametrize("logit", [-1e4, -100.0, 100.0, 1e4])
def test_losses_and_gradients_finite_at_extreme_logits(logit):
  x = jnp.full((4,), logit, jnp.float32)
  for fn in (lambda l: losses.minimax_discriminator_loss(l, l),
             losses.minimax_generator_loss, losses.non_saturating_generator_loss):
    value, grad = jax.value_and_grad(fn)(x)
    assert np.isfinite(value) and np.all(np.isfinite(grad)), (fn, logit, value, grad)
  # At a logit of -100, log(1 - sigmoid) computed naively is exactly 0 but
  # -log(sigmoid) is 100: the stable form must give the exact asymptote.
  if logit == -100.0:
    np.testing.assert_allclose(losses.non_saturating_generator_loss(x), 100.0, rtol=1e-6)


def test_minimax_generator_saturates_where_non_saturating_does_not():
  """The reason for the non-saturating loss (Goodfellow et al. 2014, sec. 3)."""
  confident_fake = jnp.full((8,), -10.0)  # D is sure the samples are fake
  g_minimax = jax.grad(losses.minimax_generator_loss)(confident_fake)
  g_ns = jax.grad(losses.non_saturating_generator_loss)(confident_fake)
  assert np.max(np.abs(g_minimax)) < 1e-5
  assert np.min(np.abs(g_ns)) > 0.1


def test_optimal_discriminator_value():
  """At D = 1/2 everywhere the minimax loss is 2 log 2 (the game's value)."""
  zeros = jnp.zeros(16)
  np.testing.assert_allclose(losses.minimax_discriminator_loss(zeros, zeros), 2 * np.log(2), rtol=1e-6)


def test_unknown_loss_named_in_error():
  with pytest.raises(ValueError, match="'wgan_typo'"):
    losses.get_gan_loss("wgan_typo")


def test_gaussian_kl_matches_monte_carlo():
  key_m, key_v, key_z = jax.random.split(jax.random.key(0), 3)
  mean = jax.random.normal(key_m, (3, 4))
  logvar = 0.5 * jax.random.normal(key_v, (3, 4))
  eps = jax.random.normal(key_z, (200_000, 3, 4))
  z = mean[None] + jnp.exp(0.5 * logvar)[None] * eps  # [N, 3, 4]
  log_q = -0.5 * jnp.sum(eps**2 + logvar[None] + jnp.log(2 * jnp.pi), axis=-1)  # [N, 3]
  mc = jnp.mean(log_q - losses.standard_normal_log_density(z), axis=0)
  np.testing.assert_allclose(losses.gaussian_kl(mean, logvar), mc, rtol=0.02, atol=0.01)
  np.testing.assert_allclose(losses.gaussian_kl(jnp.zeros((2, 5)), jnp.zeros((2, 5))), 0.0)


def test_bernoulli_log_likelihood_matches_closed_form_and_is_stable():
  logits = np.array([-2.0, 0.0, 3.0], np.float32).reshape(1, 1, 3, 1)  # [B, H, W, C]
  x = np.array([0.0, 1.0, 1.0], np.float32).reshape(1, 1, 3, 1)
  p = _sigmoid(logits)
  expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
  np.testing.assert_allclose(losses.bernoulli_log_likelihood(logits, x), [expected], rtol=1e-5)
  extreme = losses.bernoulli_log_likelihood(jnp.array([[[[-1e4], [1e4]]]]), jnp.array([[[[1.0], [0.0]]]]))
  np.testing.assert_allclose(extreme, [-2e4], rtol=1e-6)


def test_gaussian_log_likelihood_matches_closed_form():
  x, mean, logvar = (np.array(v).reshape(1, 1, 2, 1) for v in ([0.3, -1.0], [0.0, 0.5], [0.2, -0.4]))
  var = np.exp(logvar)
  expected = np.sum(-0.5 * np.log(2 * np.pi * var) - (x - mean) ** 2 / (2 * var))
  np.testing.assert_allclose(losses.gaussian_log_likelihood(x, mean, logvar), [expected], rtol=1e-5)


def test_iwae_bound_is_elbo_at_k1_and_tightens_with_k():
  # log w = log p(x, z) - log q(z | x) for a toy model with known log p(x) = 0:
  # w ~ lognormal with E[w] = 1, so E[log mean_K w] rises towards 0 with K.
  key = jax.random.key(1)
  sigma = 1.5
  log_w = sigma * jax.random.normal(key, (1000, 2000)) - sigma**2 / 2  # [K_max, B]
  np.testing.assert_allclose(losses.iwae_bound(log_w[:1]), log_w[0], rtol=1e-6)
  bounds = [float(jnp.mean(losses.iwae_bound(log_w[:k]))) for k in (1, 10, 100, 1000)]
  assert bounds == sorted(bounds) and bounds[-1] < 0.02, bounds  # log p(x) = 0, up to noise
  np.testing.assert_allclose(bounds[0], -sigma**2 / 2, atol=0.1)


def test_wasserstein_hinge_least_squares_at_known_logits():
  real, fake = jnp.array([2.0, 0.5, -1.0]), jnp.array([-2.0, 0.0, 3.0])
  np.testing.assert_allclose(losses.wasserstein_critic_loss(real, fake), 1 / 3 - 0.5, rtol=1e-6)
  np.testing.assert_allclose(losses.wasserstein_generator_loss(fake), -1 / 3, rtol=1e-6)
  # Hinge: real terms max(0, 1 - [2, .5, -1]) = [0, .5, 2]; fake max(0, 1 + [-2, 0, 3]) = [0, 1, 4].
  np.testing.assert_allclose(losses.hinge_discriminator_loss(real, fake), 2.5 / 3 + 5 / 3, rtol=1e-6)
  # Least squares: 1/2 mean([1, .25, 4]) + 1/2 mean([4, 0, 9]); G: 1/2 mean([9, 1, 4]).
  np.testing.assert_allclose(losses.least_squares_discriminator_loss(real, fake),
                             0.5 * 5.25 / 3 + 0.5 * 13 / 3, rtol=1e-6)
  np.testing.assert_allclose(losses.least_squares_generator_loss(fake), 0.5 * 14 / 3, rtol=1e-6)
  assert set(losses.GAN_LOSSES) == {"minimax", "non_saturating", "wasserstein", "wgan_gp",
                                    "hinge", "least_squares"}


def test_gradient_penalty_on_a_critic_with_known_gradient():
  """f(x) = <w, x> per example has gradient w everywhere: the penalty is (|w| - 1)^2."""
  w = jax.random.normal(jax.random.key(0), (4, 4, 1))
  critic = lambda x: jnp.sum(x * w[None], axis=(1, 2, 3))
  real = jax.random.normal(jax.random.key(1), (8, 4, 4, 1))
  fake = jax.random.normal(jax.random.key(2), (8, 4, 4, 1))
  gp = losses.gradient_penalty(critic, real, fake, jax.random.key(3))
  np.testing.assert_allclose(gp, (np.linalg.norm(w) - 1) ** 2, rtol=1e-5)
  # f(x) = |x|^2 / 2 per example: gradient x_hat, so the penalty is mean (|x_hat_i| - 1)^2,
  # with one alpha per example (recomputed here with the same key).
  critic2 = lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3))
  alpha = jax.random.uniform(jax.random.key(3), (8, 1, 1, 1))
  x_hat = alpha * real + (1 - alpha) * fake
  expected = np.mean((np.linalg.norm(np.asarray(x_hat).reshape(8, -1), axis=1) - 1) ** 2)
  np.testing.assert_allclose(losses.gradient_penalty(critic2, real, fake, jax.random.key(3)),
                             expected, rtol=1e-5)
  # R1 of the same critic on real images: mean |x|^2 / 2.
  np.testing.assert_allclose(losses.r1_penalty(critic2, real),
                             0.5 * np.mean(np.sum(np.asarray(real) ** 2, axis=(1, 2, 3))), rtol=1e-5)
