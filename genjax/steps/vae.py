"""VAE state, train step, and the bounds it is measured by (ELBO, IWAE-k weights).

The loss is the negative β-weighted ELBO (Kingma & Welling 2014; Higgins et
al. 2017), with the reparameterised sample and the analytic KL:
  loss = -E_q[log p(x | z)] + β_t KL(q(z | x) || N(0, I)),
where β_t ramps linearly from 0 to β over `kl_warmup_steps` (Sønderby et al.
2016). The reported `elbo` always uses β = 1. Bernoulli decoders see
dynamically binarised images (a fresh binarisation every step, the standard
protocol for MNIST likelihoods); Gaussian decoders see dequantised pixels
y = (u8 + U(0, 1)) / 256, so their NLL is a density in nats on [0, 1]^D.
"""

import functools
from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections

from genjax import losses, optim
from genjax.nn import vae as vae_nn
from genjax.state import TrainState


@flax.struct.dataclass
class VAEState:
  step: jax.Array  # [] int32
  encoder: TrainState
  decoder: TrainState


def build_models(config: ml_collections.ConfigDict, image_shape):
  m = config.model
  head = dict(likelihood=m.likelihood, learn_variance=m.learn_variance,
              fixed_logvar=m.fixed_logvar)
  if m.arch == "mlp":
    return (vae_nn.MLPEncoder(m.latent_dim, tuple(m.hidden), m.activation),
            vae_nn.MLPDecoder(tuple(image_shape), tuple(m.hidden), m.activation, **head))
  return (vae_nn.ConvEncoder(m.latent_dim, m.width, m.activation),
          vae_nn.ConvDecoder(tuple(image_shape), m.width, m.activation, **head))


def create_state(config: ml_collections.ConfigDict, key: jax.Array, image_shape,
                 num_classes: int = 0) -> VAEState:
  del num_classes  # unconditional
  encoder, decoder = build_models(config, image_shape)
  e_key, d_key = jax.random.split(key)
  o = config.opt
  numbers = dict(learning_rate=o.lr, b1=o.b1, b2=o.b2, eps=o.eps)
  e_vars = encoder.init(e_key, jnp.zeros((1, *image_shape)))
  d_vars = decoder.init(d_key, jnp.zeros((1, config.model.latent_dim)))
  return VAEState(
      step=jnp.zeros((), jnp.int32),
      encoder=optim.train_state(encoder.apply, e_vars["params"], **numbers),
      decoder=optim.train_state(decoder.apply, d_vars["params"], **numbers),
  )


def targets(images: jax.Array, key: jax.Array, likelihood: str) -> jax.Array:
  """What the decoder models, from images in [-1, 1]: binary or in [0, 1]."""
  p = (images + 1.0) / 2.0
  if likelihood == "bernoulli":
    return jax.random.bernoulli(key, p).astype(jnp.float32)
  u8 = jnp.round(p * 255.0)
  return (u8 + jax.random.uniform(key, images.shape)) / 256.0


def log_likelihood(out: dict, x: jax.Array) -> jax.Array:
  """log p(x | z) per example from the decoder's output dict: [B]."""
  if "logits" in out:
    return losses.bernoulli_log_likelihood(out["logits"], x)
  return losses.gaussian_log_likelihood(x, out["mean"], out["logvar"])


def decoder_mean(out: dict) -> jax.Array:
  """E[x | z] in [0, 1] (clipped for Gaussians), for pictures."""
  if "logits" in out:
    return jax.nn.sigmoid(out["logits"])
  return jnp.clip(out["mean"], 0.0, 1.0)


def _elbo_terms(enc_params, dec_params, state: VAEState, x, key):
  mean, logvar = state.encoder.apply_fn({"params": enc_params}, x)  # [B, Z] each
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
  log_px_z = log_likelihood(state.decoder.apply_fn({"params": dec_params}, z), x)  # [B]
  kl = losses.gaussian_kl(mean, logvar)  # [B]
  return log_px_z, kl


class Options(NamedTuple):
  likelihood: str  # bernoulli | gaussian
  beta: float  # KL weight
  kl_warmup_steps: int  # beta ramps linearly from 0 over these steps; 0 = off


def train_step(state: VAEState, batch, key: jax.Array, *, opts: Options):
  """One step on batch['image']: [1, B, H, W, C] in [-1, 1]."""
  bin_key, z_key = jax.random.split(key)
  x = targets(batch["image"][0], bin_key, opts.likelihood)
  if opts.kl_warmup_steps:
    beta_t = opts.beta * jnp.minimum(1.0, (state.step + 1) / opts.kl_warmup_steps)
  else:
    beta_t = opts.beta

  def loss_fn(params):
    log_px_z, kl = _elbo_terms(*params, state, x, z_key)
    loss = -jnp.mean(log_px_z - beta_t * kl)
    return loss, {"loss": loss, "elbo": jnp.mean(log_px_z - kl),
                  "log_px_z": jnp.mean(log_px_z), "kl": jnp.mean(kl)}

  grads, metrics = jax.grad(loss_fn, has_aux=True)((state.encoder.params, state.decoder.params))
  return VAEState(
      step=state.step + 1,
      encoder=state.encoder.apply_gradients(grads=grads[0]),
      decoder=state.decoder.apply_gradients(grads=grads[1]),
  ), metrics


def make_train_step(config: ml_collections.ConfigDict):
  return functools.partial(train_step, opts=Options(
      likelihood=config.model.likelihood, beta=config.beta,
      kl_warmup_steps=config.kl_warmup_steps))


def eval_step(state: VAEState, batch, key: jax.Array, *, likelihood: str) -> dict:
  """Mean ELBO terms (beta = 1, one sample) on batch['image'] [B, H, W, C] in [-1, 1]."""
  bin_key, z_key = jax.random.split(key)
  x = targets(batch["image"], bin_key, likelihood)
  log_px_z, kl = _elbo_terms(state.encoder.params, state.decoder.params, state, x, z_key)
  return {"elbo": jnp.mean(log_px_z - kl), "log_px_z": jnp.mean(log_px_z), "kl": jnp.mean(kl)}


def elbo(state: VAEState, x: jax.Array, key: jax.Array) -> jax.Array:
  """The ELBO of targets x [B, H, W, C], one sample: [B]."""
  log_px_z, kl = _elbo_terms(state.encoder.params, state.decoder.params, state, x, key)
  return log_px_z - kl


def log_weights(state: VAEState, x: jax.Array, key: jax.Array, num_samples: int) -> jax.Array:
  """log w = log p(x, z) - log q(z | x) for num_samples z per x: [S, B]."""
  mean, logvar = state.encoder.apply_fn({"params": state.encoder.params}, x)  # [B, Z]
  eps = jax.random.normal(key, (num_samples, *mean.shape))  # [S, B, Z]
  z = mean[None] + jnp.exp(0.5 * logvar)[None] * eps
  out = state.decoder.apply_fn({"params": state.decoder.params}, z.reshape(-1, z.shape[-1]))
  out = jax.tree.map(lambda a: a.reshape(num_samples, *x.shape), out)  # [S, B, H, W, C]
  log_px_z = log_likelihood(out, x[None])  # [S, B]
  log_q = -0.5 * jnp.sum(eps**2 + logvar[None] + jnp.log(2 * jnp.pi), axis=-1)
  return log_px_z + losses.standard_normal_log_density(z) - log_q


def decode(state: VAEState, z: jax.Array) -> jax.Array:
  """Decoder means for z [N, Z], as images in [-1, 1]."""
  return 2.0 * decoder_mean(state.decoder.apply_fn({"params": state.decoder.params}, z)) - 1.0


def sample(state: VAEState, key: jax.Array, num: int, config: ml_collections.ConfigDict,
           labels: jax.Array | None = None) -> jax.Array:
  """num decoder means of z ~ N(0, I): [num, H, W, C] in [-1, 1] (unconditional)."""
  del labels
  return decode(state, jax.random.normal(key, (num, config.model.latent_dim)))


def encode_mean(state: VAEState, x: jax.Array) -> jax.Array:
  """The posterior mean E_q[z|x] [B, Z] of images x in [-1, 1]."""
  return state.encoder.apply_fn({"params": state.encoder.params}, x)[0]


def validate_config(config: ml_collections.ConfigDict) -> None:
  m = config.model
  if m.arch not in ("mlp", "conv"):
    raise ValueError(f"config.model.arch={m.arch!r}; choose 'mlp' or 'conv'.")
  if m.likelihood not in vae_nn.LIKELIHOODS:
    raise ValueError(f"config.model.likelihood={m.likelihood!r}; choose one of "
                     f"{list(vae_nn.LIKELIHOODS)}.")
  if m.activation not in vae_nn.ACTIVATIONS:
    raise ValueError(f"config.model.activation={m.activation!r}; choose one of "
                     f"{sorted(vae_nn.ACTIVATIONS)}.")
  if not isinstance(m.latent_dim, int) or m.latent_dim < 1:
    raise ValueError(f"config.model.latent_dim={m.latent_dim!r} must be a positive integer.")
  if not config.beta >= 0:
    raise ValueError(f"config.beta={config.beta!r} must be >= 0 (1 is the VAE, >1 a beta-VAE).")
  if not isinstance(config.kl_warmup_steps, int) or config.kl_warmup_steps < 0:
    raise ValueError(f"config.kl_warmup_steps={config.kl_warmup_steps!r} must be an integer >= 0.")
  if not config.opt.lr > 0:
    raise ValueError(f"config.opt.lr={config.opt.lr!r} must be positive.")
