"""The GAN train step: one trace, n_critic, and what each update touches."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import gan_mnist
from genjax.models.gan import step as gan
from tests.conftest import params_equal


def _tiny(n_critic=1):
  config = gan_mnist.get_config()
  config.n_critic = n_critic
  config.model.latent_dim, config.model.g_width, config.model.d_width = 8, 4, 4
  return config


def _batch(n_critic, b=4, seed=0):
  x = jax.random.uniform(jax.random.key(seed), (n_critic, b, 28, 28, 1), minval=-1, maxval=1)
  return {"image": x}


@pytest.mark.parametrize("n_critic", [1, 3])
def test_step_traces_once_and_updates_both_networks(n_critic):
  config = _tiny(n_critic)
  state = gan.create_state(config, jax.random.key(0), (28, 28, 1))
  train_step = gan.make_train_step(config)
  chex.clear_trace_counter()  # the counter is per code location, shared by the parameters

  @jax.jit
  @chex.assert_max_traces(n=1)
  def jitted(state, batch, key):
    return train_step(state, batch, key)

  new = state
  for i in range(3):
    new, metrics = jitted(new, _batch(n_critic, seed=i), jax.random.fold_in(jax.random.key(1), i))
  assert int(new.step) == 3
  assert int(new.discriminator.step) == 3 * n_critic and int(new.generator.step) == 3
  assert not params_equal(state.generator.params, new.generator.params)
  assert not params_equal(state.generator.batch_stats, new.generator.batch_stats)
  assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake"}
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_generator_gradient_equals_direct_differentiation():
  """The VJP reuse gives the gradient of the generator loss through the updated D."""
  config = _tiny()
  state = gan.create_state(config, jax.random.key(0), (28, 28, 1))
  batch, key = _batch(1), jax.random.key(3)
  new, _ = gan.make_train_step(config)(state, batch, key)

  from genjax import losses
  g, d_new = state.generator, new.discriminator
  z = jax.random.normal(jax.random.split(key, 1)[-1], (4, config.model.latent_dim))
  def g_loss(params):
    fake, _ = g.apply_fn({"params": params, "batch_stats": g.batch_stats}, z, train=True,
                         mutable=["batch_stats"])
    return losses.non_saturating_generator_loss(d_new.apply_fn({"params": d_new.params}, fake))
  expected = g.apply_gradients(grads=jax.grad(g_loss)(g.params))
  chex.assert_trees_all_close(new.generator.params, expected.params, atol=1e-6)
