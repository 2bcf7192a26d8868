"""GAN state and train step: discriminator update(s), then generator update.

One step, from one state pytree:
  1. n_critic - 1 extra discriminator updates on fresh fakes (WGAN-style);
  2. the generator's forward pass G(z), kept with its VJP;
  3. a discriminator update on those fakes and the last real batch;
  4. the generator loss through the *updated* discriminator, differentiated
     with respect to the fakes, and pulled back through the saved VJP;
  5. the EMA of the generator's weights.
The generator runs forward once for the last D update and its own update,
instead of twice as a naive implementation does.

What the config chooses: `loss` (genjax.losses.GAN_LOSSES); `clip_value`
(WGAN's weight clipping of D after each update); `gp_weight` (WGAN-GP's
gradient penalty) and `r1_gamma` (R1 penalty on real images), both added to
D's loss; `model.spectral_norm` in D; `ema_decay` (sampling and evaluation
use the averaged generator); `conditional` (labels into G and D); `opt.name`
(`adam` or `rmsprop`); `augment` (every image D sees, real or generated, in
its loss, its penalties and G's loss, passes through the differentiable
augmentations of `genjax.augment`, so D is the augmentation followed by the
network, and G learns through both): 'diffaugment' with the `diffaug` policy
(Zhao et al. 2020), or 'ada' (Karras et al. 2020), whose probability p lives
in the state and follows the signs of D's real outputs (`ada_target`,
`ada_kimg`); `lecam_weight` (Tseng et al. 2021, LeCam regularisation of D
towards moving averages of its outputs, kept in the state);
`model.norm` ('batch' or 'virtual_batch' normalisation in G).
"""

import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genjax import losses, optim
from genjax.models.gan import networks as dcgan
from genjax.nn import precision
from genjax import augment as augment_lib
from genjax.state import TrainState


@flax.struct.dataclass
class GANState:
  step: jax.Array  # [] int32, completed train steps
  generator: TrainState
  discriminator: TrainState  # batch_stats: spectral-norm power-iteration vectors, if any
  ema_params: Any  # exponential moving average of generator.params
  ada_p: jax.Array  # [] float32, ADA's augmentation probability (0 when ADA is off)
  lecam_ema: jax.Array  # [2] float32, EMAs of D's mean output on real, fake images (LeCam)


def build_models(config: ml_collections.ConfigDict, image_shape, num_classes: int = 0):
  """The generator and discriminator modules for images [H, W, C], computing
  in config.precision's dtype (their outputs float32)."""
  m = config.model
  size, _, channels = image_shape
  classes = num_classes if config.conditional else 0
  generator = dcgan.Generator(
      image_size=size, channels=channels, width=m.g_width,
      upsample=m.upsample, kernel_size=m.g_kernel_size, num_classes=classes,
      icnr=m.icnr, dtype=precision.compute_dtype(config), norm=m.norm,
      reference_size=config.batch_size,
  )
  discriminator = dcgan.Discriminator(
      width=m.d_width, num_layers=dcgan.num_upsamplings(size), kernel_size=m.d_kernel_size,
      num_classes=classes, spectral_norm=m.spectral_norm, dtype=precision.compute_dtype(config),
  )
  return generator, discriminator


def _train_state(apply_fn, variables, lr, opt: ml_collections.ConfigDict) -> TrainState:
  params, batch_stats = variables["params"], variables.get("batch_stats", {})
  if opt.name == "rmsprop":  # WGAN (Arjovsky et al. 2017): RMSProp, lr 5e-5
    return optim.train_state(apply_fn, params, batch_stats, name="rmsprop", learning_rate=lr)
  return optim.train_state(apply_fn, params, batch_stats, learning_rate=lr, b1=opt.b1, b2=opt.b2)


def create_state(config: ml_collections.ConfigDict, key: jax.Array, image_shape,
                 num_classes: int = 0) -> GANState:
  generator, discriminator = build_models(config, image_shape, num_classes)
  g_key, d_key = jax.random.split(key)
  z = jnp.zeros((1, config.model.latent_dim), jnp.float32)
  y = jnp.zeros((1,), jnp.int32)
  g_vars = generator.init(g_key, z, y, train=False)
  d_vars = discriminator.init(d_key, jnp.zeros((1, *image_shape), jnp.float32), y)
  return GANState(
      step=jnp.zeros((), jnp.int32),
      generator=_train_state(generator.apply, g_vars, config.opt.g_lr, config.opt),
      discriminator=_train_state(discriminator.apply, d_vars, config.opt.d_lr, config.opt),
      ema_params=g_vars["params"],
      ada_p=jnp.asarray(config.ada_p_init if config.augment == "ada" else 0.0, jnp.float32),
      lecam_ema=jnp.zeros((2,), jnp.float32),
  )


class Options(NamedTuple):
  loss: losses.GANLoss
  n_critic: int
  latent_dim: int
  conditional: bool  # labels into G and D; the class count is read off the state
  clip_value: float
  gp_weight: float
  r1_gamma: float
  ema_decay: float
  probabilities: bool  # D's outputs are logits of a probability (minimax, non_saturating)
  diffaug: tuple[str, ...] = ()  # DiffAugment policy (augment.DIFF_AUGMENTS); () = off
  ada: bool = False  # ADA with the state's p
  ada_target: float = 0.6  # ADA: the r_t that p steers towards
  ada_speed: float = 100_000.0  # ADA: images for p to go from 0 to 1
  lecam_weight: float = 0.0  # LeCam regularisation of D; 0 = off
  lecam_decay: float = 0.99  # LeCam: decay of the EMAs of D's outputs


def _generate_train(g: TrainState, params, batch_stats, z, labels):
  """G(z) in training mode; returns (images, updated batch_stats)."""
  images, updates = g.apply_fn(
      {"params": params, "batch_stats": batch_stats}, z, labels, train=True,
      mutable=["batch_stats"])
  return images, updates["batch_stats"]


def _critic(d: TrainState, params, batch_stats, labels):
  """x -> D(x) with fixed spectral-norm vectors (for penalties and G's loss)."""
  variables = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
  return lambda x: d.apply_fn(variables, x, labels)


def _augment(opts: Options, key: jax.Array, p: jax.Array):
  """x -> x through ADA's operations with probability `p`, or through
  `opts.diffaug`'s augmentations, each image its own draw (the identity when
  augmentation is off)."""
  if opts.ada:  # nothing to compute while p is 0 (ADA's start)
    return lambda x: jax.lax.cond(p > 0, lambda x: augment_lib.ada(key, x, p), lambda x: x, x)
  if not opts.diffaug:
    return lambda x: x
  return lambda x: augment_lib.diff_augment(x, key, opts.diffaug)


def _discriminator_update(d: TrainState, opts: Options, real, real_labels, fake, fake_labels,
                          key, ada_p, lecam_ema):
  """One D update; returns (d, d_loss, (real_logits, fake_logits),
  penalties, lecam_ema updated with this batch's outputs)."""
  b = real.shape[0]
  augment, penalty_augment = (_augment(opts, jax.random.fold_in(key, i), ada_p) for i in (1, 2))

  def loss_fn(params):
    labels = jnp.concatenate([real_labels, fake_labels])
    logits, updates = d.apply_fn(d.variables(params), augment(jnp.concatenate([real, fake])),
                                 labels, update_stats=True, mutable=["batch_stats"])
    real_logits, fake_logits = logits[:b], logits[b:]  # [B] each
    batch_stats = updates.get("batch_stats", {})
    d_loss = opts.loss.discriminator(real_logits, fake_logits)
    penalties = {}
    critic = _critic(d, params, batch_stats, real_labels)
    seen = lambda x: critic(penalty_augment(x))  # D's view: the augmentations, then D
    if _on(opts.gp_weight):
      penalties["gp"] = losses.gradient_penalty(seen, real, fake, key)
    if _on(opts.r1_gamma):
      penalties["r1"] = losses.r1_penalty(seen, real)
    ema = lecam_ema
    if _on(opts.lecam_weight):  # the averages take this batch first, as in Tseng et al.'s code
      means = jax.lax.stop_gradient(jnp.stack([jnp.mean(real_logits), jnp.mean(fake_logits)]))
      ema = opts.lecam_decay * lecam_ema + (1 - opts.lecam_decay) * means
      penalties["lecam"] = losses.lecam_regularizer(real_logits, fake_logits, ema[0], ema[1])
    total = (d_loss + opts.gp_weight * penalties.get("gp", 0.0)
             + opts.r1_gamma * penalties.get("r1", 0.0)
             + opts.lecam_weight * penalties.get("lecam", 0.0))
    return total, (d_loss, real_logits, fake_logits, batch_stats, penalties, ema)

  (_, (d_loss, real_logits, fake_logits, batch_stats, penalties, lecam_ema)), grads = (
      jax.value_and_grad(loss_fn, has_aux=True)(d.params))
  d = d.apply_gradients(grads=grads, batch_stats=batch_stats)
  if _on(opts.clip_value):  # WGAN: keep the critic Lipschitz by clipping every weight
    c = opts.clip_value
    clip = lambda p: jnp.where(c > 0, jnp.clip(p, -c, c), p)  # c may be a member's traced 0
    d = d.replace(params=jax.tree.map(clip, d.params))
  return d, d_loss, (real_logits, fake_logits), penalties, lecam_ema


def _latents(key, batch_size: int, latent_dim: int, num_classes: int):
  """z ~ N(0, I) [B, Z] and, for a conditional G, labels ~ U{0..K-1} [B]."""
  z = jax.random.normal(key, (batch_size, latent_dim))
  labels = jnp.zeros((batch_size,), jnp.int32)
  if num_classes:
    labels = jax.random.randint(jax.random.fold_in(key, 1), (batch_size,), 0, num_classes)
  return z, labels


def train_step(state: GANState, batch, key: jax.Array, *, opts: Options):
  """One GAN step. batch['image']: [n_critic, B, H, W, C] in [-1, 1]; batch['label']: [n_critic, B]."""
  real = batch["image"]
  real_labels = batch.get("label", jnp.zeros(real.shape[:2], jnp.int32))
  num_classes = dcgan.num_label_classes(state.generator.params) if opts.conditional else 0
  if not num_classes:
    real_labels = jnp.zeros_like(real_labels)
  batch_size = real.shape[1]
  g, d = state.generator, state.discriminator
  z_keys = jax.random.split(key, opts.n_critic)
  ada_p, lecam_ema = state.ada_p, state.lecam_ema
  real_signs = []  # [B] signs of D's real outputs, per D update (ADA's r_t)

  def critic_only(d, batch_stats, lecam_ema, real_b, labels_b, z_key):
    z, fake_labels = _latents(z_key, batch_size, opts.latent_dim, num_classes)
    fake, batch_stats = _generate_train(g, g.params, batch_stats, z, fake_labels)
    d, _, (real_logits, _), _, lecam_ema = _discriminator_update(
        d, opts, real_b, labels_b, fake, fake_labels, jax.random.fold_in(z_key, 2), ada_p,
        lecam_ema)
    real_signs.append(jnp.sign(real_logits))
    return d, batch_stats, lecam_ema

  batch_stats = g.batch_stats
  for i in range(opts.n_critic - 1):  # a few updates: unrolled, one fused program
    d, batch_stats, lecam_ema = critic_only(d, batch_stats, lecam_ema, real[i], real_labels[i],
                                            z_keys[i])

  z_BxZ, fake_labels = _latents(z_keys[-1], batch_size, opts.latent_dim, num_classes)
  fake, g_vjp, batch_stats = jax.vjp(
      lambda p: _generate_train(g, p, batch_stats, z_BxZ, fake_labels), g.params, has_aux=True
  )
  d, d_loss, (real_logits, fake_logits), penalties, lecam_ema = _discriminator_update(
      d, opts, real[-1], real_labels[-1], fake, fake_labels, jax.random.fold_in(z_keys[-1], 2),
      ada_p, lecam_ema)
  real_signs.append(jnp.sign(real_logits))

  critic = _critic(d, d.params, d.batch_stats, fake_labels)
  augment = _augment(opts, jax.random.fold_in(z_keys[-1], 3), ada_p)
  g_loss, d_fake = jax.value_and_grad(
      lambda images: opts.loss.generator(critic(augment(images))))(fake)
  (g_grads,) = g_vjp(d_fake)
  g = g.apply_gradients(grads=g_grads, batch_stats=batch_stats)
  ema = optax.incremental_update(g.params, state.ema_params, 1.0 - opts.ema_decay)

  out = jax.nn.sigmoid if opts.probabilities else (lambda x: x)
  metrics = {
      "d_loss": d_loss,
      "g_loss": g_loss,
      "d_real": jnp.mean(out(real_logits)),  # D(x) before the D update: a probability
      "d_fake": jnp.mean(out(fake_logits)),  # for minimax/non_saturating, else a raw score
      **penalties,
  }
  if opts.ada:  # p follows D's overfitting: r_t = E[sign(D(x_real))] over this step's reals
    r_t = jnp.mean(jnp.stack(real_signs))
    ada_p = augment_lib.ada_adjust(ada_p, r_t, opts.n_critic * batch_size, opts.ada_speed,
                                   opts.ada_target)
    metrics.update(ada_p=ada_p, ada_rt=r_t)
  return GANState(step=state.step + 1, generator=g, discriminator=d, ema_params=ema,
                  ada_p=ada_p, lecam_ema=lecam_ema), metrics


def _number(value):
  """A float, or a traced scalar (a population member's swept value)."""
  return value if isinstance(value, jax.Array) else float(value)


def _on(weight) -> bool:
  """Whether a term weighted by `weight` is computed: always for a traced
  weight (members may differ; a weight of 0 then adds nothing)."""
  return isinstance(weight, jax.Array) or weight != 0


def augment_name(config: ml_collections.ConfigDict) -> str:
  """config.augment, where a `diffaug` policy with augment='none' (the
  configs from before `augment`) means 'diffaugment'."""
  if config.augment == "none" and config.diffaug:
    return "diffaugment"
  return config.augment


def make_train_step(config: ml_collections.ConfigDict):
  opts = Options(
      loss=losses.get_gan_loss(config.loss), n_critic=config.n_critic,
      latent_dim=config.model.latent_dim, conditional=config.conditional,
      clip_value=_number(config.clip_value),
      gp_weight=_number(config.gp_weight),
      r1_gamma=_number(config.r1_gamma),
      ema_decay=_number(config.ema_decay),
      probabilities=config.loss in ("minimax", "non_saturating"),
      diffaug=(augment_lib.parse_augment_policy(config.diffaug)
               if augment_name(config) == "diffaugment" else ()),
      ada=augment_name(config) == "ada",
      ada_target=_number(config.ada_target),
      ada_speed=_number(config.ada_kimg) * 1000.0,
      lecam_weight=_number(config.lecam_weight),
  )
  return functools.partial(train_step, opts=opts)


def batches_per_step(config: ml_collections.ConfigDict) -> int:
  return config.n_critic


def generate(state: GANState, z: jax.Array, labels: jax.Array | None = None,
             ema: bool = True) -> jax.Array:
  """G(z, labels) in inference mode (running batch statistics): [B, H, W, C].

  ema: use the moving average of the weights (equal to the weights when
  config.ema_decay is 0).
  """
  g = state.generator
  if labels is None:
    labels = jnp.zeros((z.shape[0],), jnp.int32)
  params = state.ema_params if ema else g.params
  return g.apply_fn(g.variables(params), z, labels, train=False)


def default_labels(num: int, num_classes: int) -> jax.Array:
  """0, 1, ..., K-1, 0, 1, ...: every class equally often (a grid row per class)."""
  return jnp.arange(num, dtype=jnp.int32) % max(num_classes, 1)


def sample(state: GANState, key: jax.Array, num: int, config: ml_collections.ConfigDict,
           labels: jax.Array | None = None):
  """num samples; conditional runs take `labels` [num] (default: classes in turn)."""
  if labels is None and config.conditional:
    labels = default_labels(num, dcgan.num_label_classes(state.generator.params))
  return generate(state, jax.random.normal(key, (num, config.model.latent_dim)), labels)


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
  if m.norm not in dcgan.NORMS:
    raise ValueError(f"config.model.norm={m.norm!r} is not a normalisation; choose one of "
                     f"{list(dcgan.NORMS)}.")
  for key, value in (("n_critic", config.n_critic), ("model.latent_dim", m.latent_dim),
                     ("model.g_width", m.g_width), ("model.d_width", m.d_width)):
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"config.{key}={value!r} must be a positive integer.")
  for key in ("g_lr", "d_lr"):
    if not config.opt[key] > 0:
      raise ValueError(f"config.opt.{key}={config.opt[key]!r} must be positive.")
  if config.opt.name not in ("adam", "rmsprop"):
    raise ValueError(f"config.opt.name={config.opt.name!r}; choose 'adam' or 'rmsprop'.")
  for key in ("clip_value", "gp_weight", "r1_gamma"):
    value = config.get(key, 0.0)
    if not isinstance(value, (int, float)) or value < 0:
      raise ValueError(f"config.{key}={value!r} must be a number >= 0 (0 turns it off).")
  if not 0 <= config.ema_decay < 1:
    raise ValueError(f"config.ema_decay={config.ema_decay!r} must be in [0, 1) (0.999 is usual; "
                     "0 turns the average off).")
  if config.loss == "wasserstein" and not config.clip_value:
    raise ValueError("config.loss='wasserstein' needs config.clip_value > 0 (0.01 in WGAN) to "
                     "keep the critic Lipschitz; for the gradient penalty use loss='wgan_gp'.")
  diffaug = config.diffaug
  if not isinstance(diffaug, str):
    raise ValueError(f"config.diffaug={diffaug!r} must be a string such as "
                     f"'{','.join(augment_lib.DIFF_AUGMENTS)}' ('' for none).")
  augment_lib.parse_augment_policy(diffaug)
  if config.augment not in augment_lib.AUGMENTS:
    raise ValueError(f"config.augment={config.augment!r} is not an augmentation; choose one of "
                     f"{list(augment_lib.AUGMENTS)}.")
  if config.augment == "ada" and diffaug:
    raise ValueError(f"config.augment='ada' and config.diffaug={diffaug!r} both augment; set "
                     "config.diffaug='' for ADA, or config.augment='diffaugment' for DiffAugment.")
  if config.augment == "diffaugment" and not diffaug:
    raise ValueError("config.augment='diffaugment' needs a policy in config.diffaug, e.g. "
                     f"'{','.join(augment_lib.DIFF_AUGMENTS)}'.")
  if not isinstance(config.ada_target, (int, float)) or not 0 <= config.ada_target <= 1:
    raise ValueError(f"config.ada_target={config.ada_target!r} must be in [0, 1] (0.6 in ADA).")
  if not isinstance(config.ada_kimg, (int, float)) or config.ada_kimg <= 0:
    raise ValueError(f"config.ada_kimg={config.ada_kimg!r} must be positive (thousands of images "
                     "for p to go from 0 to 1; 500 in ADA).")
  if not isinstance(config.ada_p_init, (int, float)) or not 0 <= config.ada_p_init <= 1:
    raise ValueError(f"config.ada_p_init={config.ada_p_init!r} must be in [0, 1].")
  lecam = config.lecam_weight
  if not isinstance(lecam, (int, float)) or lecam < 0:
    raise ValueError(f"config.lecam_weight={lecam!r} must be a number >= 0 (0 turns it off; 0.3 "
                     "in Tseng et al. with BigGAN).")
  if config.loss == "wgan_gp" and not config.gp_weight:
    raise ValueError("config.loss='wgan_gp' needs config.gp_weight > 0 (10 in WGAN-GP).")
