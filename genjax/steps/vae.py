"""VAE state, train step and likelihood evaluation (ELBO, IWAE-k).

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
import math

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax import losses, viz
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
  tx = optax.adam(config.opt.lr, b1=config.opt.b1, b2=config.opt.b2, eps=config.opt.eps)
  e_vars = encoder.init(e_key, jnp.zeros((1, *image_shape)))
  d_vars = decoder.init(d_key, jnp.zeros((1, config.model.latent_dim)))
  return VAEState(
      step=jnp.zeros((), jnp.int32),
      encoder=TrainState.create(apply_fn=encoder.apply, params=e_vars["params"], tx=tx),
      decoder=TrainState.create(apply_fn=decoder.apply, params=d_vars["params"], tx=tx),
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


def train_step(state: VAEState, batch, key: jax.Array, *, likelihood: str, beta: float,
               kl_warmup_steps: int):
  """One step on batch['image']: [1, B, H, W, C] in [-1, 1]."""
  bin_key, z_key = jax.random.split(key)
  x = targets(batch["image"][0], bin_key, likelihood)
  if kl_warmup_steps:
    beta_t = beta * jnp.minimum(1.0, (state.step + 1) / kl_warmup_steps)
  else:
    beta_t = beta

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
  return functools.partial(train_step, likelihood=config.model.likelihood, beta=config.beta,
                           kl_warmup_steps=config.kl_warmup_steps)


def batches_per_step(config: ml_collections.ConfigDict) -> int:
  del config
  return 1


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


@functools.partial(jax.jit, static_argnames="num_samples")
def _chunk_logsumexp(state, x, key, num_samples):
  return jax.nn.logsumexp(log_weights(state, x, key, num_samples), axis=0)  # [B]


def iwae_log_likelihood(state: VAEState, x: jax.Array, key: jax.Array, k: int,
                        chunk: int = 25) -> np.ndarray:
  """The IWAE-k lower bound on log p(x) per example [B] (Burda et al. 2016).

  Samples are drawn `chunk` at a time and combined with a running
  logsumexp, so memory is O(chunk * B * D) whatever k is.
  """
  total = np.full(x.shape[0], -np.inf)
  done = 0
  while done < k:
    n = min(chunk, k - done)
    part = np.asarray(_chunk_logsumexp(state, x, jax.random.fold_in(key, done), n), np.float64)
    total = np.logaddexp(total, part)
    done += n
  return total - math.log(k)


def active_units(state: VAEState, x: jax.Array, threshold: float = 0.01) -> int:
  """Latent units whose posterior mean varies across data: Cov_x(E_q[z_u]) > 0.01."""
  mean, _ = state.encoder.apply_fn({"params": state.encoder.params}, x)
  return int(jnp.sum(jnp.var(mean, axis=0) > threshold))


def decode(state: VAEState, z: jax.Array) -> jax.Array:
  """Decoder means for z [N, Z], as images in [-1, 1]."""
  return 2.0 * decoder_mean(state.decoder.apply_fn({"params": state.decoder.params}, z)) - 1.0


def sample(state: VAEState, key: jax.Array, num: int, config: ml_collections.ConfigDict):
  return decode(state, jax.random.normal(key, (num, config.model.latent_dim)))


def encode_mean(state: VAEState, x: jax.Array) -> jax.Array:
  """The posterior mean E_q[z|x] [B, Z] of images x in [-1, 1]."""
  return state.encoder.apply_fn({"params": state.encoder.params}, x)[0]


def test_targets(test_data, likelihood: str, key: jax.Array) -> jax.Array:
  """The test split as decoder targets, binarised/dequantised once with `key`."""
  images = jnp.asarray(test_data.images, jnp.float32) / 127.5 - 1.0
  return targets(images, key, likelihood)


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test_data):
  """state -> (grids, {'test_elbo', 'active_units'}) on the test split.

  Grids: reconstructions (rows of inputs over rows of outputs), samples,
  interpolations between pairs of test images, and for a 2-D latent space
  the test set's posterior means coloured by class and the decoded manifold.
  """
  target_key, elbo_key, sample_key = jax.random.split(key, 3)
  x = test_targets(test_data, config.model.likelihood, target_key)  # [N, H, W, C]
  n_show = min(32, x.shape[0] // 2)
  shown = x[:n_show]
  pairs = (x[n_show:n_show + 8], x[n_show + 8:n_show + 16])
  elbo_fn = jax.jit(lambda s, xb: elbo(s, xb, elbo_key))
  mean_fn = jax.jit(encode_mean)
  decode_fn = jax.jit(decode)
  sample_fn = jax.jit(lambda s: sample(s, sample_key, config.num_eval_samples, config))

  def evaluate(state):
    recon = decode_fn(state, mean_fn(state, shown))
    rows = [np.concatenate([shown[i:i + 8] * 2 - 1, recon[i:i + 8]]) for i in range(0, n_show, 8)]
    images = {
        "reconstructions": viz.grid(viz.to_uint8(np.concatenate(rows)), ncol=8),
        "samples": viz.grid(viz.to_uint8(sample_fn(state))),
    }
    za, zb = mean_fn(state, pairs[0]), mean_fn(state, pairs[1])
    t = np.linspace(0.0, 1.0, 10)[:, None, None]
    z_line = (za[None] * (1 - t) + zb[None] * t).transpose(1, 0, 2).reshape(-1, za.shape[-1])
    images["interpolations"] = viz.grid(viz.to_uint8(decode_fn(state, z_line)), ncol=10)
    means = np.concatenate([mean_fn(state, x[i:i + 1000]) for i in range(0, x.shape[0], 1000)])
    if config.model.latent_dim == 2:
      images["latent_scatter"] = viz.scatter(means, test_data.labels)
      q = jax.scipy.special.ndtri(np.linspace(0.05, 0.95, 15))
      grid_z = np.stack(np.meshgrid(q, q[::-1]), -1).reshape(-1, 2)
      images["manifold"] = viz.grid(viz.to_uint8(decode_fn(state, grid_z)), ncol=15, pad=0)
    elbos = np.concatenate([elbo_fn(state, x[i:i + 1000]) for i in range(0, x.shape[0], 1000)])
    scalars = {"test_elbo": float(np.mean(elbos)),
               "active_units": float(np.sum(np.var(means, axis=0) > 0.01))}
    return images, scalars

  return evaluate


def evaluate_metrics(state: VAEState, config: ml_collections.ConfigDict, test_data,
                     key: jax.Array, iwae_k: int = 5000, chunk: int = 25,
                     batch: int = 100, progress=None) -> dict:
  """Test ELBO and IWAE-k NLL in nats over the whole `test_data`."""
  target_key, elbo_key, iwae_key = jax.random.split(key, 3)
  x = test_targets(test_data, config.model.likelihood, target_key)
  elbo_fn = jax.jit(lambda s, xb, k: elbo(s, xb, k))
  elbos, iwae = [], []
  for i in range(0, x.shape[0], batch):
    xb = x[i:i + batch]
    elbos.append(np.asarray(elbo_fn(state, xb, jax.random.fold_in(elbo_key, i))))
    iwae.append(iwae_log_likelihood(state, xb, jax.random.fold_in(iwae_key, i), iwae_k, chunk))
    if progress is not None:
      progress(min(i + batch, x.shape[0]))
  elbos, iwae = np.concatenate(elbos), np.concatenate(iwae)
  return {
      "test_elbo_nats": float(np.mean(elbos)),
      f"iwae_{iwae_k}_nll_nats": float(-np.mean(iwae)),
      "iwae_k": iwae_k,
      "num_test_images": int(x.shape[0]),
      "active_units": active_units(state, x[:5000]),
      "likelihood": config.model.likelihood,
  }


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
