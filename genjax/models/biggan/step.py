"""BigGAN state and train step (Brock et al. 2019).

One step, from one state pytree:
  1. `d_steps` discriminator updates, each on its own real batch and fresh
     fakes, with the hinge loss; the generator runs in training mode (batch
     statistics) and the last update's fakes are kept with their VJP;
  2. the generator update: the hinge generator loss -E[D(G(z))] through the
     updated discriminator, pulled back through the saved VJP, plus BigGAN's
     orthogonal regularisation (`ortho_weight`);
  3. the EMA of the generator's weights (`ema_decay`), which sampling and
     evaluation use.

G and D have their own Adam(lr, b1=0, b2=0.999) (two time-scale learning
rates, `opt.g_lr` and `opt.d_lr`). Every image D sees, real or generated, in
its loss and in G's, passes through one augmentation function of (key,
images) (genjax.augment.augmenter): the identity (`augment='none'`),
DiffAugment (`augment='diffaugment'`, policy `diffaug`) or adaptive
discriminator augmentation (`augment='ada'`, Karras et al. 2020), whose
probability `ada_p` lives in the state, so that a resumed run continues with
it, and follows r_t = E[sign(D(x_real))] over the step's real batches
towards `ada_target`. `lecam_weight` adds LeCam regularisation (Tseng et al.
2021) to D's loss, its two moving averages in the state as `lecam_ema`.
"""

import functools
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genjax import augment as augment_lib
from genjax import losses, optim
from genjax.models.biggan import networks as nets
from genjax.nn import precision
from genjax.state import TrainState



@flax.struct.dataclass
class BigGANState:
  step: jax.Array  # [] int32, completed train steps (generator updates)
  generator: TrainState  # batch_stats: batch-norm statistics and power-iteration vectors
  discriminator: TrainState  # batch_stats: power-iteration vectors
  ema_params: Any  # exponential moving average of generator.params
  ada_p: jax.Array  # [] float32, ADA's augmentation probability; 0 when ADA is off
  lecam_ema: jax.Array  # [2] float32, EMAs of D's mean output on real, fake images (LeCam)


def build_models(config: ml_collections.ConfigDict, image_shape, num_classes: int = 0):
  """The generator and discriminator for images [H, W, C]; conditional when
  config.conditional and the data have more than one class."""
  m = config.model
  size, _, channels = image_shape
  classes = num_classes if config.conditional and num_classes > 1 else 0
  dtype = precision.compute_dtype(config)
  generator = nets.Generator(image_size=size, channels=channels, ch=m.ch, num_classes=classes,
                             shared_dim=m.shared_dim, attention=m.attention,
                             latent_dim=m.latent_dim, dtype=dtype)
  discriminator = nets.Discriminator(image_size=size, ch=m.ch, num_classes=classes,
                                     attention=m.attention, dtype=dtype)
  return generator, discriminator


def create_state(config: ml_collections.ConfigDict, key: jax.Array, image_shape,
                 num_classes: int = 0) -> BigGANState:
  generator, discriminator = build_models(config, image_shape, num_classes)
  g_key, d_key = jax.random.split(key)
  z = jnp.zeros((1, config.model.latent_dim), jnp.float32)
  y = jnp.zeros((1,), jnp.int32)
  g_vars = generator.init(g_key, z, y, train=False)
  d_vars = discriminator.init(d_key, jnp.zeros((1, *image_shape), jnp.float32), y)
  adam = lambda apply_fn, variables, lr: optim.train_state(
      apply_fn, variables["params"], variables.get("batch_stats", {}), learning_rate=lr,
      b1=config.opt.b1, b2=config.opt.b2)
  return BigGANState(
      step=jnp.zeros((), jnp.int32),
      generator=adam(generator.apply, g_vars, config.opt.g_lr),
      discriminator=adam(discriminator.apply, d_vars, config.opt.d_lr),
      ema_params=g_vars["params"],
      ada_p=jnp.asarray(config.ada_p_init if config.augment == "ada" else 0.0, jnp.float32),
      lecam_ema=jnp.zeros((2,), jnp.float32),
  )


class Options(NamedTuple):
  d_steps: int
  latent_dim: int
  conditional: bool  # labels into G and D; the class count is read off the state
  ortho_weight: float
  ema_decay: float
  augment: str  # one of genjax.augment.AUGMENTS
  diffaug: tuple[str, ...]  # DiffAugment's policy (augment='diffaugment')
  ada_target: float  # ADA: the r_t that p steers towards
  ada_speed: float  # ADA: images for p to go from 0 to 1
  lecam_weight: float  # LeCam regularisation of D; 0 = off
  lecam_decay: float = 0.99  # LeCam: decay of the EMAs of D's outputs


def augmenter(opts: Options, p: jax.Array) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The augmentation of every image D sees: (key, images [B, H, W, C]) ->
  images, differentiable, so G learns through it; `p` is the state's
  `ada_p`."""
  return lambda key, x: augment_lib.augmenter(opts.augment, opts.diffaug, key, p)(x)


def ortho_penalty(params) -> jax.Array:
  """BigGAN's orthogonal regularisation, sum over G's weight matrices W
  ([F, -1], one row per output) of ||W W^T * (1 - I)||_F^2 / 2, whose
  gradient, 2 (W W^T * (1 - I)) W, is BigGAN-PyTorch's `ortho` update. The
  class embedding, biases and batch-norm gains are not regularised."""
  total = jnp.zeros((), jnp.float32)
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    names = [getattr(k, "key", "") for k in path]
    if names[-1] != "kernel" or nets.SHARED_EMBEDDING in names:
      continue
    w = leaf.reshape(-1, leaf.shape[-1]).T.astype(jnp.float32)  # [F, fan_in]
    total = total + 0.5 * _off_diagonal_gram_norm(w)
  return total


def _off_diagonal_gram_norm(w: jax.Array) -> jax.Array:
  """||W W^T * (1 - I)||_F^2 of w [F, n]. With more rows than columns (G's
  first linear layer: 2,048 outputs of a 120-wide z) it is ||W^T W||_F^2
  less the squared row norms squared, from the [n, n] Gram instead of the
  [F, F] one; F > n rows cannot be orthogonal, so the off-diagonal part
  outweighs the diagonal one and the difference loses no precision."""
  f, n = w.shape
  if f <= n:
    gram = w @ w.T
    return jnp.sum((gram * (1.0 - jnp.eye(f))) ** 2)
  return jnp.sum((w.T @ w) ** 2) - jnp.sum(jnp.sum(w * w, axis=1) ** 2)


def _generate_train(g: TrainState, params, batch_stats, z, labels):
  """G(z) in training mode; returns (images, updated batch_stats)."""
  images, updates = g.apply_fn({"params": params, "batch_stats": batch_stats}, z, labels,
                               train=True, mutable=["batch_stats"])
  return images, updates["batch_stats"]


def _latents(key, batch_size: int, latent_dim: int, num_classes: int):
  """z ~ N(0, I) [B, Z] and, for a conditional G, labels ~ U{0..K-1} [B]."""
  z = jax.random.normal(key, (batch_size, latent_dim))
  labels = jnp.zeros((batch_size,), jnp.int32)
  if num_classes:
    labels = jax.random.randint(jax.random.fold_in(key, 1), (batch_size,), 0, num_classes)
  return z, labels


def _discriminator_update(d: TrainState, opts: Options, augment, real, real_labels, fake,
                          fake_labels, key, lecam_ema):
  """One hinge-loss update of D on real and fake [B, H, W, C], seen through
  `augment`, with LeCam's term when `opts.lecam_weight`; returns (d, loss,
  real logits, fake logits, LeCam's term, lecam_ema updated with this batch)."""
  b = real.shape[0]

  def loss_fn(params):
    seen = augment(key, jnp.concatenate([real, fake]))
    logits, updates = d.apply_fn(d.variables(params), seen,
                                 jnp.concatenate([real_labels, fake_labels]),
                                 update_stats=True, mutable=["batch_stats"])
    real_logits, fake_logits = logits[:b], logits[b:]  # [B] each
    loss = losses.hinge_discriminator_loss(real_logits, fake_logits)
    ema, lecam = lecam_ema, jnp.zeros((), jnp.float32)
    if _on(opts.lecam_weight):  # the averages take this batch first, as in Tseng et al.'s code
      means = jax.lax.stop_gradient(jnp.stack([jnp.mean(real_logits), jnp.mean(fake_logits)]))
      ema = opts.lecam_decay * lecam_ema + (1 - opts.lecam_decay) * means
      lecam = losses.lecam_regularizer(real_logits, fake_logits, ema[0], ema[1])
    return (loss + opts.lecam_weight * lecam,
            (loss, real_logits, fake_logits, updates["batch_stats"], lecam, ema))

  (_, (d_loss, real_logits, fake_logits, batch_stats, lecam, lecam_ema)), grads = (
      jax.value_and_grad(loss_fn, has_aux=True)(d.params))
  return (d.apply_gradients(grads=grads, batch_stats=batch_stats), d_loss, real_logits,
          fake_logits, lecam, lecam_ema)


def _on(weight) -> bool:
  """Whether a term weighted by `weight` is computed: always for a traced
  weight (members may differ; a weight of 0 then adds nothing)."""
  return isinstance(weight, jax.Array) or weight != 0


def train_step(state: BigGANState, batch, key: jax.Array, *, opts: Options):
  """One BigGAN step. batch['image']: [d_steps, B, H, W, C] in [-1, 1]; batch['label']: [d_steps, B]."""
  real = batch["image"]
  num_classes = nets.num_label_classes(state.generator.params) if opts.conditional else 0
  real_labels = batch.get("label", jnp.zeros(real.shape[:2], jnp.int32))
  if not num_classes:
    real_labels = jnp.zeros_like(real_labels)
  batch_size = real.shape[1]
  g, d = state.generator, state.discriminator
  augment = augmenter(opts, state.ada_p)
  keys = jax.random.split(key, opts.d_steps + 1)

  batch_stats, lecam_ema = g.batch_stats, state.lecam_ema
  real_signs = []  # ADA's r_t: the signs of D's outputs on every real batch of the step
  for i in range(opts.d_steps - 1):  # a few updates: unrolled, one fused program
    z, fake_labels = _latents(keys[i], batch_size, opts.latent_dim, num_classes)
    fake, batch_stats = _generate_train(g, g.params, batch_stats, z, fake_labels)
    d, _, real_logits, _, _, lecam_ema = _discriminator_update(
        d, opts, augment, real[i], real_labels[i], fake, fake_labels,
        jax.random.fold_in(keys[i], 2), lecam_ema)
    real_signs.append(jnp.sign(real_logits))

  z_BxZ, fake_labels = _latents(keys[-2], batch_size, opts.latent_dim, num_classes)
  fake, g_vjp, batch_stats = jax.vjp(
      lambda p: _generate_train(g, p, batch_stats, z_BxZ, fake_labels), g.params, has_aux=True)
  d, d_loss, real_logits, fake_logits, lecam, lecam_ema = _discriminator_update(
      d, opts, augment, real[-1], real_labels[-1], fake, fake_labels,
      jax.random.fold_in(keys[-2], 2), lecam_ema)
  real_signs.append(jnp.sign(real_logits))

  critic = lambda x: d.apply_fn(d.variables(), augment(keys[-1], x), fake_labels)
  g_loss, d_fake = jax.value_and_grad(
      lambda images: losses.wasserstein_generator_loss(critic(images)))(fake)
  (g_grads,) = g_vjp(d_fake)
  ortho = jnp.zeros((), jnp.float32)
  if isinstance(opts.ortho_weight, jax.Array) or opts.ortho_weight:  # traced: a member's value
    ortho, ortho_grads = jax.value_and_grad(ortho_penalty)(g.params)
    g_grads = jax.tree.map(lambda a, b: a + opts.ortho_weight * b, g_grads, ortho_grads)
  g = g.apply_gradients(grads=g_grads, batch_stats=batch_stats)
  ema = optax.incremental_update(g.params, state.ema_params, 1.0 - opts.ema_decay)

  metrics = {
      "d_loss": d_loss,  # hinge, before the last D update
      "g_loss": g_loss,
      "d_real": jnp.mean(real_logits),  # D's raw scores before the last D update
      "d_fake": jnp.mean(fake_logits),
      "ortho": ortho,
  }
  ada_p = state.ada_p
  if opts.augment == "ada":  # p follows D's overfitting: r_t over this step's reals
    r_t = jnp.mean(jnp.concatenate(real_signs).astype(jnp.float32))
    ada_p = augment_lib.ada_adjust(ada_p, r_t, opts.d_steps * batch_size, opts.ada_speed,
                                   opts.ada_target)
    metrics.update(ada_p=ada_p, ada_rt=r_t)
  if _on(opts.lecam_weight):
    metrics["lecam"] = lecam
  return state.replace(step=state.step + 1, generator=g, discriminator=d, ema_params=ema,
                       ada_p=ada_p, lecam_ema=lecam_ema), metrics


def _number(value):
  """A float, or a traced scalar (a population member's swept value)."""
  return value if isinstance(value, jax.Array) else float(value)


def make_train_step(config: ml_collections.ConfigDict):
  opts = Options(
      d_steps=config.d_steps, latent_dim=config.model.latent_dim,
      conditional=config.conditional, ortho_weight=_number(config.ortho_weight),
      ema_decay=_number(config.ema_decay), augment=augment_lib.augment_name(config),
      diffaug=augment_lib.parse_augment_policy(config.diffaug),
      ada_target=_number(config.ada_target), ada_speed=_number(config.ada_kimg) * 1000.0,
      lecam_weight=_number(config.lecam_weight),
  )
  return functools.partial(train_step, opts=opts)


def batches_per_step(config: ml_collections.ConfigDict) -> int:
  return config.d_steps


def default_labels(num: int, num_classes: int) -> jax.Array:
  """0, 1, ..., K-1, 0, 1, ...: every class equally often (a grid row per class)."""
  return jnp.arange(num, dtype=jnp.int32) % max(num_classes, 1)


def latents(key: jax.Array, num: int, latent_dim: int,
            truncation: float | None = None) -> jax.Array:
  """z [num, Z]: N(0, I), or with the truncation trick (Brock et al. 2019)
  each z_i ~ N(0, 1) conditioned on |z_i| <= truncation."""
  if truncation is None:
    return jax.random.normal(key, (num, latent_dim))
  return jax.random.truncated_normal(key, -truncation, truncation, (num, latent_dim))


def generate(state: BigGANState, z: jax.Array, labels: jax.Array | None = None,
             ema: bool = True) -> jax.Array:
  """G(z, labels) with the running batch statistics: [B, H, W, C]; `ema`:
  the moving average of the weights."""
  g = state.generator
  if labels is None:
    labels = jnp.zeros((z.shape[0],), jnp.int32)
  params = state.ema_params if ema else g.params
  return g.apply_fn(g.variables(params), z, labels, train=False)


def sample(state: BigGANState, key: jax.Array, num: int, config: ml_collections.ConfigDict,
           labels: jax.Array | None = None, truncation: float | None = None):
  """num samples of the EMA generator; conditional runs take `labels` [num]
  (default: classes in turn); `truncation` in (0, 2] draws z from the
  truncated normal (None: the full normal)."""
  num_classes = nets.num_label_classes(state.generator.params)
  if labels is None and num_classes:
    labels = default_labels(num, num_classes)
  return generate(state, latents(key, num, config.model.latent_dim, truncation), labels)


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad key; called before anything compiles."""
  m = config.model
  size = config.data.get("image_size")
  if size is not None and size not in nets.IMAGE_SIZES:
    raise ValueError(f"config.data.image_size={size!r}: BigGAN's architecture makes square "
                     f"images of {', '.join(map(str, nets.IMAGE_SIZES))} pixels; choose one.")
  for key, value in (("d_steps", config.d_steps), ("model.latent_dim", m.latent_dim),
                     ("model.ch", m.ch), ("model.shared_dim", m.shared_dim)):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"config.{key}={value!r} must be a positive integer.")
  if size in nets.IMAGE_SIZES and m.latent_dim < nets.num_blocks(size) + 1:
    raise ValueError(f"config.model.latent_dim={m.latent_dim} is too small to split into "
                     f"{nets.num_blocks(size) + 1} chunks at {size} px; use at least "
                     f"{nets.num_blocks(size) + 1} (BigGAN: 120).")
  resolutions = [2**k for k in range(3, (size or 256).bit_length())]
  if m.attention != 0 and m.attention not in resolutions:
    raise ValueError(f"config.model.attention={m.attention!r} must be 0 (none) or a resolution "
                     f"of the networks: {', '.join(map(str, resolutions))}.")
  augment_lib.check_config(config)
  for key in ("ortho_weight",):
    if not isinstance(config[key], (int, float)) or config[key] < 0:
      raise ValueError(f"config.{key}={config[key]!r} must be a number >= 0 (0 turns it off).")
  if not 0 <= config.ema_decay < 1:
    raise ValueError(f"config.ema_decay={config.ema_decay!r} must be in [0, 1) (BigGAN: "
                     "0.9999; 0 turns the average off).")
  labels = config.data.get("labels")
  if config.conditional and labels is not None and labels != "folders":
    raise ValueError(f"config.conditional=True needs classes: config.data.labels={labels!r} "
                     "gives none; set config.data.labels=folders (one subfolder per class) or "
                     "config.conditional=False.")
