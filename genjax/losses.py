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


GAN_LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(minimax_discriminator_loss, minimax_generator_loss),
    "non_saturating": GANLoss(minimax_discriminator_loss, non_saturating_generator_loss),
}


def get_gan_loss(name: str) -> GANLoss:
  """Looks a GAN objective up by its config name."""
  try:
    return GAN_LOSSES[name]
  except KeyError:
    raise ValueError(
        f"Unknown GAN loss {name!r}; choose one of {sorted(GAN_LOSSES)}."
    ) from None
