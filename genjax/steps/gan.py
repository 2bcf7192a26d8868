"""GAN state and train step: discriminator update(s), then generator update.

One step, from one state pytree:
  1. n_critic - 1 extra discriminator updates on fresh fakes (WGAN-style);
  2. the generator's forward pass G(z), kept with its VJP;
  3. a discriminator update on those fakes and the last real batch;
  4. the generator loss through the *updated* discriminator, differentiated
     with respect to the fakes, and pulled back through the saved VJP.
The generator runs forward once for the last D update and its own update,
instead of twice as a naive implementation does.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax

from genjax import losses, viz
from genjax.nn import dcgan
from genjax.state import GANState, TrainState


def build_models(config: ml_collections.ConfigDict, image_shape):
  """The generator and discriminator modules for images [H, W, C]."""
  m = config.model
  size, _, channels = image_shape
  generator = dcgan.Generator(
      image_size=size, channels=channels, width=m.g_width,
      upsample=m.upsample, kernel_size=m.g_kernel_size,
  )
  discriminator = dcgan.Discriminator(
      width=m.d_width, num_layers=dcgan._num_upsamplings(size), kernel_size=m.d_kernel_size,
  )
  return generator, discriminator


def _adam(lr: float, opt: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return optax.adam(lr, b1=opt.b1, b2=opt.b2)


def create_state(config: ml_collections.ConfigDict, key: jax.Array, image_shape) -> GANState:
  generator, discriminator = build_models(config, image_shape)
  g_key, d_key = jax.random.split(key)
  z = jnp.zeros((1, config.model.latent_dim), jnp.float32)
  g_vars = generator.init(g_key, z, train=False)
  d_vars = discriminator.init(d_key, jnp.zeros((1, *image_shape), jnp.float32))
  return GANState(
      step=jnp.zeros((), jnp.int32),
      generator=TrainState.create(
          apply_fn=generator.apply, params=g_vars["params"],
          batch_stats=g_vars.get("batch_stats", {}), tx=_adam(config.opt.g_lr, config.opt),
      ),
      discriminator=TrainState.create(
          apply_fn=discriminator.apply, params=d_vars["params"],
          tx=_adam(config.opt.d_lr, config.opt),
      ),
  )


def _generate_train(g: TrainState, params, batch_stats, z):
  """G(z) in training mode; returns (images, updated batch_stats)."""
  images, updates = g.apply_fn(
      {"params": params, "batch_stats": batch_stats}, z, train=True, mutable=["batch_stats"]
  )
  return images, updates["batch_stats"]


def _discriminator_update(d: TrainState, loss: losses.GANLoss, real, fake):
  def loss_fn(params):
    real_logits = d.apply_fn({"params": params}, real)  # [B]
    fake_logits = d.apply_fn({"params": params}, fake)  # [B]
    return loss.discriminator(real_logits, fake_logits), (real_logits, fake_logits)

  (d_loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
  return d.apply_gradients(grads=grads), d_loss, logits


def train_step(state: GANState, batch, key: jax.Array, *, loss: losses.GANLoss,
               n_critic: int, latent_dim: int):
  """One GAN step. batch['image']: [n_critic, B, H, W, C] in [-1, 1]."""
  real = batch["image"]
  batch_size = real.shape[1]
  g, d = state.generator, state.discriminator
  z_keys = jax.random.split(key, n_critic)

  def critic_only(carry, inputs):
    d, batch_stats = carry
    real_b, z_key = inputs
    z = jax.random.normal(z_key, (batch_size, latent_dim))
    fake, batch_stats = _generate_train(g, g.params, batch_stats, z)
    d, _, _ = _discriminator_update(d, loss, real_b, fake)
    return (d, batch_stats), None

  batch_stats = g.batch_stats
  if n_critic > 1:
    (d, batch_stats), _ = jax.lax.scan(critic_only, (d, batch_stats), (real[:-1], z_keys[:-1]))

  z_BxZ = jax.random.normal(z_keys[-1], (batch_size, latent_dim))
  fake, g_vjp, batch_stats = jax.vjp(
      lambda p: _generate_train(g, p, batch_stats, z_BxZ), g.params, has_aux=True
  )
  d, d_loss, (real_logits, fake_logits) = _discriminator_update(d, loss, real[-1], fake)

  def g_loss_of_images(images):
    return loss.generator(d.apply_fn({"params": d.params}, images))

  g_loss, d_fake = jax.value_and_grad(g_loss_of_images)(fake)
  (g_grads,) = g_vjp(d_fake)
  g = g.apply_gradients(grads=g_grads, batch_stats=batch_stats)

  metrics = {
      "d_loss": d_loss,
      "g_loss": g_loss,
      "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),  # D(x), before the D update
      "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),  # D(G(z)), before the D update
  }
  return GANState(step=state.step + 1, generator=g, discriminator=d), metrics


def make_train_step(config: ml_collections.ConfigDict):
  return functools.partial(
      train_step, loss=losses.get_gan_loss(config.loss), n_critic=config.n_critic,
      latent_dim=config.model.latent_dim,
  )


def batches_per_step(config: ml_collections.ConfigDict) -> int:
  return config.n_critic


def generate(state: GANState, z: jax.Array) -> jax.Array:
  """G(z) in inference mode (running batch statistics): [B, H, W, C]."""
  g = state.generator
  return g.apply_fn(g.variables(), z, train=False)


def sample(state: GANState, key: jax.Array, num: int, config: ml_collections.ConfigDict):
  return generate(state, jax.random.normal(key, (num, config.model.latent_dim)))


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test_data):
  """state -> ({'samples': grid}, {}): samples of the same latents every time."""
  del test_data  # sample metrics against the test split come with genjax.metrics
  sample_fn = jax.jit(lambda state: sample(state, key, config.num_eval_samples, config))

  def evaluate(state):
    return {"samples": viz.grid(viz.to_uint8(sample_fn(state)))}, {}

  return evaluate


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad key; called before anything compiles."""
  from genjax.nn import layers  # pylint: disable=g-import-not-at-top

  if config.loss not in losses.GAN_LOSSES:
    raise ValueError(f"config.loss={config.loss!r} is not a GAN loss; choose one of "
                     f"{sorted(losses.GAN_LOSSES)}.")
  if config.model.upsample not in layers.UPSAMPLE_METHODS:
    raise ValueError(f"config.model.upsample={config.model.upsample!r}; choose one of "
                     f"{list(layers.UPSAMPLE_METHODS)}.")
  m = config.model
  for key, value in (("n_critic", config.n_critic), ("model.latent_dim", m.latent_dim),
                     ("model.g_width", m.g_width), ("model.d_width", m.d_width)):
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"config.{key}={value!r} must be a positive integer.")
  for key in ("g_lr", "d_lr"):
    if not config.opt[key] > 0:
      raise ValueError(f"config.opt.{key}={config.opt[key]!r} must be positive.")
