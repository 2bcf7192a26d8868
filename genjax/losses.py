"""Loss functions: pure maps from logits (or images) to scalars.

Every GAN loss takes discriminator logits, never probabilities, and is written
with softplus / log-sigmoid so that it stays finite and has the right gradient
at any logit: log D(x) = log_sigmoid(l) = -softplus(-l) and
log(1 - D(x)) = log_sigmoid(-l) = -softplus(l).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class GANLoss(NamedTuple):
  """A GAN objective as the two losses that the two players minimise.

  discriminator(real_logits [B], fake_logits [B]) -> scalar
  generator(fake_logits [B]) -> scalar
  """

  discriminator: Callable[[jax.Array, jax.Array], jax.Array]
  generator: Callable[[jax.Array], jax.Array]


def minimax_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """-(E_x[log D(x)] + E_z[log(1 - D(G(z)))]) (Goodfellow et al. 2014).

  The discriminator maximises V(G, D); as a loss it minimises -V.
  """
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def minimax_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """E_z[log(1 - D(G(z)))], the generator's side of the minimax game.

  Saturates when D rejects the samples confidently (its gradient vanishes as
  the logit goes to -inf): the reason for the non-saturating form.
  """
  return -jnp.mean(jax.nn.softplus(fake_logits))


def non_saturating_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """-E_z[log D(G(z))] (Goodfellow et al. 2014, section 3; used by DCGAN)."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


def wasserstein_critic_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """E_z[f(G(z))] - E_x[f(x)] (Arjovsky et al. 2017): the critic f maximises the
  gap, an estimate of the Wasserstein-1 distance when f is 1-Lipschitz (weight
  clipping in WGAN, the gradient penalty in WGAN-GP)."""
  return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """-E_z[f(G(z))]; also the generator loss of the hinge GAN."""
  return -jnp.mean(fake_logits)


def hinge_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """E_x[max(0, 1 - D(x))] + E_z[max(0, 1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def least_squares_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """1/2 E_x[(D(x) - 1)^2] + 1/2 E_z[D(G(z))^2] (Mao et al. 2017, a=0, b=c=1)."""
  return 0.5 * jnp.mean((real_logits - 1.0) ** 2) + 0.5 * jnp.mean(fake_logits**2)


def least_squares_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """1/2 E_z[(D(G(z)) - 1)^2]."""
  return 0.5 * jnp.mean((fake_logits - 1.0) ** 2)


GAN_LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(minimax_discriminator_loss, minimax_generator_loss),
    "non_saturating": GANLoss(minimax_discriminator_loss, non_saturating_generator_loss),
    # WGAN with weight clipping: set config.clip_value (0.01 in the paper).
    "wasserstein": GANLoss(wasserstein_critic_loss, wasserstein_generator_loss),
    # WGAN-GP: the same objective; the step adds config.gp_weight * gradient_penalty.
    "wgan_gp": GANLoss(wasserstein_critic_loss, wasserstein_generator_loss),
    "hinge": GANLoss(hinge_discriminator_loss, wasserstein_generator_loss),
    "least_squares": GANLoss(least_squares_discriminator_loss, least_squares_generator_loss),
}


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> jax.Array:
  """E[(||grad_x f(x_hat)||_2 - 1)^2] at x_hat = a x + (1 - a) G(z) (Gulrajani et al. 2017).

  One a ~ U(0, 1) per example; the norm is over all pixel dimensions of each
  example. critic: images [B, H, W, C] -> logits [B]; the gradient of the sum
  of the logits is taken, which is every example's own gradient when each
  logit depends only on its own example, and with batch statistics (a
  minibatch-stddev layer) is what WGAN-GP's reference code computes.
  """
  alpha = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1))
  x_hat = alpha * real + (1.0 - alpha) * fake
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
  norms = jnp.sqrt(jnp.sum(grads**2, axis=tuple(range(1, grads.ndim))) + 1e-12)
  return jnp.mean((norms - 1.0) ** 2)


def r1_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
  """E_x[||grad_x D(x)||^2] / 2 on real images (Mescheder et al. 2018); the
  loss adds gamma times this."""
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(real)
  return 0.5 * jnp.mean(jnp.sum(grads**2, axis=tuple(range(1, grads.ndim))))


def lecam_regularizer(real_logits: jax.Array, fake_logits: jax.Array, ema_real: jax.Array,
                      ema_fake: jax.Array) -> jax.Array:
  """LeCam regularisation of D (Tseng et al. 2021), added to D's loss:
  R = E||D(x) - alpha_F||^2 + E||D(G(z)) - alpha_R||^2, with alpha_R and
  alpha_F moving averages of D's mean outputs on real and fake images, taken
  as constants. It keeps D's real and fake outputs from drifting apart.

  real_logits, fake_logits: [B] each; ema_real, ema_fake: [].
  """
  ema_real, ema_fake = jax.lax.stop_gradient(ema_real), jax.lax.stop_gradient(ema_fake)
  return jnp.mean((real_logits - ema_fake) ** 2) + jnp.mean((fake_logits - ema_real) ** 2)


def get_gan_loss(name: str) -> GANLoss:
  """Looks a GAN objective up by its config name."""
  try:
    return GAN_LOSSES[name]
  except KeyError:
    raise ValueError(
        f"Unknown GAN loss {name!r}; choose one of {sorted(GAN_LOSSES)}."
    ) from None


# ----------------------------------------------------------------------------
# VAE: log-likelihoods, KL and bounds, per example ([B] in, [B] out).


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mean, exp(logvar)) || N(0, I)) per example: [B, Z] -> [B].

  Closed form (Kingma & Welling 2014, appendix B):
  0.5 * sum(exp(logvar) + mean^2 - 1 - logvar).
  """
  return 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array, event_ndim: int = 3) -> jax.Array:
  """log p(x | logits) for binary x, summed over the last `event_ndim` axes.

  [..., H, W, C] -> [...]; x may broadcast against logits.

  x log sigmoid(l) + (1 - x) log sigmoid(-l) = x l - softplus(l): one
  transcendental per pixel, which matters for IWAE with thousands of samples.
  """
  ll = x * logits - jax.nn.softplus(logits)
  return jnp.sum(ll, axis=tuple(range(-event_ndim, 0)))


def gaussian_log_likelihood(x: jax.Array, mean: jax.Array, logvar: jax.Array,
                            event_ndim: int = 3) -> jax.Array:
  """log N(x; mean, exp(logvar)) summed over the last `event_ndim` axes."""
  ll = -0.5 * (jnp.log(2 * jnp.pi) + logvar + (x - mean) ** 2 * jnp.exp(-logvar))
  return jnp.sum(ll, axis=tuple(range(-event_ndim, 0)))


def standard_normal_log_density(z: jax.Array) -> jax.Array:
  """log N(z; 0, I) summed over the last axis."""
  return -0.5 * jnp.sum(z**2 + jnp.log(2 * jnp.pi), axis=-1)


def iwae_bound(log_weights: jax.Array) -> jax.Array:
  """log (1/K) sum_k w_k from log w [K, B] -> [B] (Burda et al. 2016).

  K = 1 is the ELBO; the bound tightens towards log p(x) as K grows.
  """
  k = log_weights.shape[0]
  return jax.nn.logsumexp(log_weights, axis=0) - jnp.log(k)


# CycleGAN (Zhu et al. 2017): least-squares adversarial terms on patch logits,
# with the authors' halving of the discriminator's loss, and L1 reconstructions.


def lsgan_patch_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """(E (D(x) - 1)^2 + E D(G(z))^2) / 2 over every patch logit."""
  return 0.5 * (jnp.mean((real_logits - 1.0) ** 2) + jnp.mean(fake_logits**2))


def lsgan_patch_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """E (D(G(x)) - 1)^2 over every patch logit."""
  return jnp.mean((fake_logits - 1.0) ** 2)


def l1_loss(x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean absolute difference: the cycle-consistency and identity losses."""
  return jnp.mean(jnp.abs(x - y))
