"""VAE state, train step, and the bounds it is measured by (ELBO, IWAE-k weights).

The loss is, by `config.iwae_k_train`:
  0: the negative β-weighted ELBO (Kingma & Welling 2014; Higgins et al.
     2017), with the reparameterised sample and the analytic KL:
       loss = -E_q[log p(x | z)] + β_t KL(q(z | x) || N(0, I)),
     where β_t ramps linearly from 0 to β over `kl_warmup_steps` (Sønderby
     et al. 2016). The reported `elbo` always uses β = 1.
  k >= 1: the negative IWAE-k bound (Burda et al. 2016),
       loss = -log (1/k) sum_i w_i,  w_i = p(x, z_i) / q(z_i | x),  z_i ~ q(z | x),
     whose gradient is sum_i w~_i grad log w_i with the normalised weights
     w~_i. k = 1 is the ELBO with a sampled KL, the authors' VAE.
Bernoulli decoders see dynamically binarised images (a fresh binarisation
every step, the standard protocol for MNIST likelihoods); Gaussian decoders
see dequantised pixels y = (u8 + U(0, 1)) / 256, so their NLL is a density
in nats on [0, 1]^D.

`opt.schedule='burda'` multiplies Adam's learning rate by 10^(-i/7) during
the 3^i passes of stage i = 0..7 (3,280 passes in all, Burda et al.'s
schedule), a pass being `opt.examples_per_pass` examples.
"""

import functools
import math
from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import losses, optim
from genjax.models.vae import networks as vae_nn
from genjax.nn import precision
from genjax.state import TrainState


@flax.struct.dataclass
class VAEState:
  step: jax.Array  # [] int32
  encoder: TrainState
  decoder: TrainState


def build_models(config: ml_collections.ConfigDict, image_shape):
  """The encoder and decoder, computing in config.precision's dtype (their outputs float32)."""
  m = config.model
  dtype = precision.compute_dtype(config)
  head = dict(likelihood=m.likelihood, learn_variance=m.learn_variance,
              fixed_logvar=m.fixed_logvar, dtype=dtype)
  if m.arch == "mlp":
    init = m.weight_init
    return (vae_nn.MLPEncoder(m.latent_dim, tuple(m.hidden), m.activation, weight_init=init,
                              dtype=dtype),
            vae_nn.MLPDecoder(tuple(image_shape), tuple(m.hidden), m.activation, **head,
                              weight_init=init))
  return (vae_nn.ConvEncoder(m.latent_dim, m.width, m.activation, dtype=dtype),
          vae_nn.ConvDecoder(tuple(image_shape), m.width, m.activation, **head))


# Burda et al.'s schedule: stage i = 0..7 lasts 3^i passes at 10^(-i/7) times opt.lr.
BURDA_STAGES = 8
SCHEDULES = ("", "burda")  # "" = constant
ADAM_VARIANTS = {"": "adam", "burda": "adam_burda"}  # config.opt.variant -> genjax.optim name


def burda_passes() -> int:
  """Passes over the data in Burda et al.'s schedule: sum_i 3^i = 3,280."""
  return (3**BURDA_STAGES - 1) // 2


def steps_per_pass(config: ml_collections.ConfigDict) -> int:
  """Train steps in one pass of `opt.examples_per_pass` examples; the same
  count as an epoch of the device data path (N // batch_size)."""
  return config.opt.examples_per_pass // config.batch_size


def lr_multiplier(config: ml_collections.ConfigDict) -> optim.Multiplier | None:
  """The factor of opt.lr at each update count, or None for a constant rate.

  'burda': 10^(-i/7) in stage i, which ends after (3^(i+1) - 1) / 2 passes;
  the last stage's 10^-1 also holds after the schedule's 3,280 passes.
  """
  if not config.opt.schedule:
    return None
  ends = np.array([(3**(i + 1) - 1) // 2 for i in range(BURDA_STAGES - 1)]) * steps_per_pass(config)

  def multiplier(count):
    stage = jnp.sum(count >= jnp.asarray(ends, jnp.int32))
    return 10.0 ** (-stage.astype(jnp.float32) / (BURDA_STAGES - 1))

  return multiplier


def create_state(config: ml_collections.ConfigDict, key: jax.Array, image_shape,
                 num_classes: int = 0) -> VAEState:
  del num_classes  # unconditional
  encoder, decoder = build_models(config, image_shape)
  e_key, d_key = jax.random.split(key)
  o = config.opt
  name = ADAM_VARIANTS[o.variant]
  numbers = dict(learning_rate=o.lr, b1=o.b1, b2=o.b2, eps=o.eps)
  if name == "adam_burda":  # their gradient is the batch's sum, the loss here its mean
    numbers["grad_scale"] = config.batch_size
  schedule = lr_multiplier(config)
  e_vars = encoder.init(e_key, jnp.zeros((1, *image_shape)))
  d_vars = decoder.init(d_key, jnp.zeros((1, config.model.latent_dim)))
  return VAEState(
      step=jnp.zeros((), jnp.int32),
      encoder=optim.train_state(encoder.apply, e_vars["params"], name=name, schedule=schedule,
                                **numbers),
      decoder=optim.train_state(decoder.apply, d_vars["params"], name=name, schedule=schedule,
                                **numbers),
  )


# The step's random numbers. XLA:CPU runs threefry, jax.random's generator,
# as a rolled loop at about 7 ns per 32-bit word: a binarisation and the
# reparameterisation noise drawn that way took about 30% of a VAE step at
# batch 100 on 2 cores, and a large share of the IWAE bound's time besides
# the decoder's matrix products. Here each
# element's 32 bits are a keyed hash of its index in the array (64 key bits
# from one threefry call), so a sharded array draws the values of an
# unsharded one.


def _hash32(x: jax.Array) -> jax.Array:
  """A bijection of uint32 with strong avalanche (Wellons' `lowbias32`)."""
  x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
  x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def _uniform24(key: jax.Array, n: int) -> jax.Array:
  """n uniform 24-bit integers (float32 [n], exact) from `key`."""
  seed = jax.random.bits(key, (2,), jnp.uint32)
  return (_hash32(_hash32(jax.lax.iota(jnp.uint32, n) ^ seed[0]) + seed[1]) >> 8).astype(
      jnp.float32)


def binarize(key: jax.Array, p: jax.Array) -> jax.Array:
  """Bernoulli(p) draws as float32 0/1, one per element of p; P(1) is p
  rounded up to a multiple of 2^-24."""
  return (_uniform24(key, p.size).reshape(p.shape) < p * 2.0**24).astype(jnp.float32)


def normal(key: jax.Array, shape) -> jax.Array:
  """Standard normal draws of `shape`, by the Box-Muller transform of 24-bit
  uniforms in (0, 1] (float32 rounds the largest to 1, a radius of 0, with
  probability 2^-24): both its outputs are used, and |z| < 5.9 (a tail of
  probability 4e-9 is cut)."""
  n = math.prod(shape)
  half = (n + 1) // 2
  u = (_uniform24(key, 2 * half) + 0.5) * 2.0**-24
  radius, angle = jnp.sqrt(-2.0 * jnp.log(u[:half])), (2 * jnp.pi) * u[half:]
  z = jnp.concatenate([radius * jnp.cos(angle), radius * jnp.sin(angle)])
  return z[:n].reshape(shape)


def targets(images: jax.Array, key: jax.Array, likelihood: str) -> jax.Array:
  """What the decoder models, from images in [-1, 1]: binary or in [0, 1]."""
  p = (images + 1.0) / 2.0
  if likelihood == "bernoulli":
    return binarize(key, p)
  u8 = jnp.round(p * 255.0)
  return (u8 + jax.random.uniform(key, images.shape)) / 256.0


def flat_pixels(a: jax.Array) -> jax.Array:
  """[..., H, W, C] -> [..., H*W*C]. Sums over one axis: XLA:CPU reduces the
  three pixel axes of a fused elementwise term about 2.5x slower."""
  return a.reshape(*a.shape[:-3], -1)


@jax.custom_jvp
def _bernoulli_terms(logits: jax.Array, x: jax.Array) -> jax.Array:
  return x * logits - jnp.maximum(logits, 0.0) - jnp.log(1.0 + jnp.exp(-jnp.abs(logits)))


@_bernoulli_terms.defjvp
def _bernoulli_terms_jvp(primals, tangents):
  logits, x = primals
  logits_dot, x_dot = tangents
  e = jnp.exp(-jnp.abs(logits))
  out = x * logits - jnp.maximum(logits, 0.0) - jnp.log(1.0 + e)
  sigmoid = jnp.where(logits >= 0, 1.0, e) / (1.0 + e)
  return out, (x - sigmoid) * logits_dot + logits * x_dot


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
  """losses.bernoulli_log_likelihood over the last axis, x l - softplus(l),
  with softplus(l) = max(l, 0) + log(1 + exp(-|l|)) and the derivative x -
  sigmoid(l) from the same exp: log, not log1p, as 1 + exp(-|l|) is in
  (1, 2], so the error stays under 1e-7 nats a pixel, and the elementwise
  work around the decoder takes about a third less time."""
  return jnp.sum(_bernoulli_terms(logits, x), axis=-1)


def log_likelihood(out: dict, x: jax.Array) -> jax.Array:
  """log p(x | z) per example from the decoder's output dict and targets x
  [..., H, W, C] (broadcasting against the output's leading axes): [...]."""
  if "logits" in out:
    return bernoulli_log_likelihood(flat_pixels(out["logits"]), flat_pixels(x))
  return losses.gaussian_log_likelihood(flat_pixels(x), flat_pixels(out["mean"]),
                                        flat_pixels(out["logvar"]), 1)


def decoder_mean(out: dict) -> jax.Array:
  """E[x | z] in [0, 1] (clipped for Gaussians), for pictures."""
  if "logits" in out:
    return jax.nn.sigmoid(out["logits"])
  return jnp.clip(out["mean"], 0.0, 1.0)


def _elbo_terms(enc_params, dec_params, state: VAEState, x, key):
  mean, logvar = state.encoder.apply_fn({"params": enc_params}, x)  # [B, Z] each
  z = mean + jnp.exp(0.5 * logvar) * normal(key, mean.shape)
  log_px_z = log_likelihood(state.decoder.apply_fn({"params": dec_params}, z), x)  # [B]
  kl = losses.gaussian_kl(mean, logvar)  # [B]
  return log_px_z, kl


def posterior(enc_params, state: VAEState, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The mean and log-variance [B, Z] of q(z | x) for targets x [B, H, W, C]."""
  return state.encoder.apply_fn({"params": enc_params}, x)


def log_weight_terms(dec_params, state: VAEState, x, mean, logvar, eps):
  """(log p(x | z), log p(z) - log q(z | x)), each [S, B], at z = mean + sd * eps
  for eps [S, B, Z] and the posterior (mean, logvar) [B, Z] of x [B, H, W, C];
  log w is their sum."""
  z = mean[None] + jnp.exp(0.5 * logvar)[None] * eps
  out = state.decoder.apply_fn({"params": dec_params}, z.reshape(-1, z.shape[-1]))
  out = jax.tree.map(lambda a: a.reshape(eps.shape[0], *x.shape), out)  # [S, B, H, W, C]
  log_px_z = log_likelihood(out, x[None])  # [S, B]
  # log q(z | x) at z = mean + sd * eps; its gradient flows through logvar only,
  # the total derivative, since (z - mean) / sd = eps whatever the parameters.
  log_q = -0.5 * jnp.sum(eps**2 + logvar[None] + jnp.log(2 * jnp.pi), axis=-1)
  return log_px_z, losses.standard_normal_log_density(z) - log_q


def _log_weight_terms(enc_params, dec_params, state: VAEState, x, key, num_samples: int):
  mean, logvar = posterior(enc_params, state, x)  # [B, Z]
  eps = normal(key, (num_samples, *mean.shape))  # [S, B, Z]
  return log_weight_terms(dec_params, state, x, mean, logvar, eps)


def iwae_bound(enc_params, dec_params, state: VAEState, x, key, num_samples: int):
  """The IWAE-k bound log (1/k) sum_i w_i per x [B, H, W, C], one draw of
  its k = num_samples z's: (bound [B], log p(x | z) [S, B], log p(z) - log q(z | x) [S, B])."""
  log_px_z, log_pz_qz = _log_weight_terms(enc_params, dec_params, state, x, key, num_samples)
  return losses.iwae_bound(log_px_z + log_pz_qz), log_px_z, log_pz_qz


class Options(NamedTuple):
  likelihood: str  # bernoulli | gaussian
  beta: float  # KL weight
  kl_warmup_steps: int  # beta ramps linearly from 0 over these steps; 0 = off
  iwae_k: int = 0  # 0: the ELBO, analytic KL; k >= 1: the IWAE-k bound


def train_step(state: VAEState, batch, key: jax.Array, *, opts: Options):
  """One step on batch['image']: [1, B, H, W, C] in [-1, 1]."""
  bin_key, z_key = jax.random.split(key)
  x = targets(batch["image"][0], bin_key, opts.likelihood)
  if opts.kl_warmup_steps:
    beta_t = opts.beta * jnp.minimum(1.0, (state.step + 1) / opts.kl_warmup_steps)
  else:
    beta_t = opts.beta

  def elbo_loss(params):
    log_px_z, kl = _elbo_terms(*params, state, x, z_key)
    loss = -jnp.mean(log_px_z - beta_t * kl)
    return loss, {"loss": loss, "elbo": jnp.mean(log_px_z - kl),
                  "log_px_z": jnp.mean(log_px_z), "kl": jnp.mean(kl)}

  def iwae_loss(params):
    bound, log_px_z, log_pz_qz = iwae_bound(*params, state, x, z_key, opts.iwae_k)
    loss = -jnp.mean(bound)
    # elbo, log_px_z and kl: their one-sample estimates, averaged over the k samples
    return loss, {"loss": loss, "elbo": jnp.mean(log_px_z + log_pz_qz),
                  "log_px_z": jnp.mean(log_px_z), "kl": -jnp.mean(log_pz_qz)}

  loss_fn = iwae_loss if opts.iwae_k else elbo_loss

  grads, metrics = jax.grad(loss_fn, has_aux=True)((state.encoder.params, state.decoder.params))
  return VAEState(
      step=state.step + 1,
      encoder=state.encoder.apply_gradients(grads=grads[0]),
      decoder=state.decoder.apply_gradients(grads=grads[1]),
  ), metrics


def make_train_step(config: ml_collections.ConfigDict):
  return functools.partial(train_step, opts=Options(
      likelihood=config.model.likelihood, beta=config.beta,
      kl_warmup_steps=config.kl_warmup_steps, iwae_k=config.iwae_k_train))


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
  log_px_z, log_pz_qz = _log_weight_terms(state.encoder.params, state.decoder.params, state, x,
                                          key, num_samples)
  return log_px_z + log_pz_qz


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
  init = m.weight_init
  if init not in vae_nn.WEIGHT_INITS:
    raise ValueError(f"config.model.weight_init={init!r}; choose '' (Flax's LeCun normal) "
                     "or 'glorot'.")
  if init and m.arch != "mlp":
    raise ValueError(f"config.model.weight_init={init!r} sets the MLP's initialisation; "
                     f"config.model.arch={m.arch!r} keeps Flax's: set weight_init=''.")
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
  if config.opt.variant not in ADAM_VARIANTS:
    raise ValueError(f"config.opt.variant={config.opt.variant!r}; choose '' (Adam) or 'burda' "
                     "(Burda et al.'s code's Adam).")
  k = config.iwae_k_train
  if not isinstance(k, int) or isinstance(k, bool) or k < 0:
    raise ValueError(f"config.iwae_k_train={k!r} must be an integer >= 0 (0: the ELBO with "
                     "the analytic KL; k >= 1: the IWAE-k bound).")
  if k and (config.beta != 1 or config.kl_warmup_steps):
    raise ValueError(f"config.iwae_k_train={k} trains the IWAE bound, which has no KL weight: "
                     f"set config.beta=1 and config.kl_warmup_steps=0 (they are "
                     f"{config.beta!r} and {config.kl_warmup_steps!r}), or iwae_k_train=0.")
  schedule = config.opt.schedule
  if schedule not in SCHEDULES:
    raise ValueError(f"config.opt.schedule={schedule!r}; choose '' (constant) or 'burda'.")
  if schedule:
    n = config.opt.examples_per_pass
    if not isinstance(n, int) or isinstance(n, bool) or n < config.batch_size:
      raise ValueError(f"config.opt.examples_per_pass={n!r}: the 'burda' schedule counts passes "
                       f"of this many examples; set it to the training split's size (60000 "
                       f"for MNIST), at least config.batch_size={config.batch_size}.")
