"""Progressive GAN state and train step (Karras et al. 2018).

The networks grow 4x4 -> 8x8 -> ... -> the final resolution (the data's
side rounded up to a power of two; Fashion-MNIST's 28 becomes 32, the real
images padded with the background value -1 inside the step). Each new
resolution is faded in linearly over `phase.fade_images` images, then
trained on its own for `phase.stable_images`; the last one until
`num_steps`.

One state shape for the whole run. Every resolution's blocks, with their
optimiser states, exist from step 0 (genjax.models.progan.networks); a step at level l
leaves the blocks above l with zero gradients. The level and alpha are pure
functions of `state.step` and the config (`progress`), so the loop, Orbax
checkpoints and bitwise resume need nothing of their own. The step chooses
its level with `jax.lax.switch` on the index computed from `state.step`:
each branch is the step at one resolution, traced once per compile, and a
phase change inside one compiled multi-step call takes the next branch.

The step, from one state pytree:
  1. the real batch padded to the final size and average-pooled to the
     level's; during a fade-in blended as the generator's output is,
     (1 - alpha) * upsample(pool(x)) + alpha * x (the paper's appendix A.1);
  2. G(z) kept with its VJP; D updated on WGAN-GP's loss
     E[D(G(z))] - E[D(x)] + gp_weight * GP + drift * E[D(x)^2];
  3. G's loss -E[D(G(z))] through the updated D, pulled back through the VJP;
  4. the EMA of G's weights (sampling uses it).
When a new resolution's fade-in begins, both Adam states are reset
(`opt.reset_each_phase`, as the paper's code does), so that the new layers'
first steps are not scaled by the second moments' stale bias correction.
"""

import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genjax import losses, optim
from genjax.models.progan import networks as nets
from genjax.nn import precision
from genjax.state import TrainState


@flax.struct.dataclass
class ProGANState:
  step: jax.Array  # [] int32, completed generator updates over all phases
  generator: TrainState  # every resolution's blocks
  discriminator: TrainState
  ema_params: Any  # exponential moving average of generator.params
  # Side of the data's images (28 for Fashion-MNIST): samples are the
  # networks' final resolution cropped back to it. Static, not an array.
  image_size: int = flax.struct.field(pytree_node=False)


def final_resolution(image_size: int) -> int:
  """The power of two >= `image_size` (and >= 4) the networks grow to."""
  return max(nets.START, 1 << (int(image_size) - 1).bit_length())


def build_models(config: ml_collections.ConfigDict, image_shape):
  """The generator and discriminator modules for data images [H, W, C],
  computing in config.precision's dtype (their outputs float32)."""
  m = config.model
  levels = nets.num_levels(final_resolution(image_shape[0]))
  dtype = precision.compute_dtype(config)
  generator = nets.Generator(nets.widths(m.g_width, m.max_width, levels), image_shape[-1],
                             dtype=dtype)
  discriminator = nets.Discriminator(nets.widths(m.d_width, m.max_width, levels),
                                     group_size=m.mbstd_group, dtype=dtype)
  return generator, discriminator


def _train_state(apply_fn, params, lr, opt: ml_collections.ConfigDict) -> TrainState:
  return optim.train_state(apply_fn, params, learning_rate=lr, b1=opt.b1, b2=opt.b2, eps=opt.eps)


def create_state(config: ml_collections.ConfigDict, key: jax.Array, image_shape,
                 num_classes: int = 0) -> ProGANState:
  """Both networks at every resolution, with their Adam states, and the EMA."""
  del num_classes  # unconditional
  generator, discriminator = build_models(config, image_shape)
  size = final_resolution(image_shape[0])
  g_key, d_key = jax.random.split(key)
  z = jnp.zeros((1, config.model.latent_dim), jnp.float32)
  g_params = generator.init(g_key, z, method=nets.Generator.all_levels)["params"]
  x = jnp.zeros((config.model.mbstd_group, size, size, image_shape[-1]), jnp.float32)
  d_params = discriminator.init(d_key, x, method=nets.Discriminator.all_levels)["params"]
  return ProGANState(
      step=jnp.zeros((), jnp.int32),
      generator=_train_state(generator.apply, g_params, config.opt.g_lr, config.opt),
      discriminator=_train_state(discriminator.apply, d_params, config.opt.d_lr, config.opt),
      ema_params=g_params,
      image_size=int(image_shape[0]),
  )


# --- the schedule: pure functions of the step and the config -------------------------------


class Schedule(NamedTuple):
  """The phases in generator steps. Level 0 trains for `stable_steps`; each
  level l >= 1 starts at `fade_starts[l]`, fades in over `fade_steps`, then
  trains alone for `stable_steps` (the last level until num_steps)."""

  levels: int
  fade_steps: int
  stable_steps: int

  @property
  def fade_starts(self) -> tuple[int, ...]:
    return (0,) + tuple(self.stable_steps + (l - 1) * (self.fade_steps + self.stable_steps)
                        for l in range(1, self.levels))

  @property
  def last_start(self) -> int:
    """The step at which the last level is fully faded in."""
    return self.fade_starts[-1] + self.fade_steps


def steps_for_images(images: int, batch_size: int) -> int:
  """Generator steps that show D at least `images` real images."""
  return -(-int(images) // int(batch_size))


def schedule(config: ml_collections.ConfigDict, image_size: int) -> Schedule:
  return Schedule(levels=nets.num_levels(final_resolution(image_size)),
                  fade_steps=steps_for_images(config.phase.fade_images, config.batch_size),
                  stable_steps=steps_for_images(config.phase.stable_images, config.batch_size))


def level_at(step: jax.Array, sched: Schedule) -> jax.Array:
  """The level [] int32 that trains at `step` (0-based count of steps)."""
  starts = jnp.asarray(sched.fade_starts[1:], jnp.int32)
  return jnp.sum(step >= starts).astype(jnp.int32)


def alpha_at(step: jax.Array, level: int, sched: Schedule) -> jax.Array:
  """Fade-in weight [] of `level` at `step`: (step - start + 1) / fade_steps,
  clipped to [0, 1], so that the fade's last step trains at alpha = 1; 1 for
  level 0 and without a fade."""
  if level == 0 or sched.fade_steps == 0:
    return jnp.ones((), jnp.float32)
  done = (step - sched.fade_starts[level] + 1).astype(jnp.float32)
  return jnp.clip(done / sched.fade_steps, 0.0, 1.0)


def progress(step: jax.Array, sched: Schedule) -> tuple[jax.Array, jax.Array]:
  """(level, alpha) of the step `step`."""
  level = level_at(step, sched)
  alphas = jnp.stack([alpha_at(step, l, sched) for l in range(sched.levels)])
  return level, alphas[level]


def trained_progress(step: jax.Array, sched: Schedule) -> tuple[jax.Array, jax.Array]:
  """(level, alpha) of the last completed step of a state at `step`: what
  its networks were trained at, and what samples and evaluations use."""
  return progress(jnp.maximum(step - 1, 0), sched)


# --- images -----------------------------------------------------------------------------------


def pad_to(images: jax.Array, size: int) -> jax.Array:
  """[B, S, S, C] -> [B, size, size, C], centred, the border at -1 (black)."""
  pad = size - images.shape[1]
  if pad == 0:
    return images
  lo = pad // 2
  return jnp.pad(images, ((0, 0), (lo, pad - lo), (lo, pad - lo), (0, 0)), constant_values=-1.0)


def crop_to(images: jax.Array, size: int) -> jax.Array:
  """The centred `size` x `size` window of [B, S, S, C]: `pad_to` undone."""
  lo = (images.shape[1] - size) // 2
  return images[:, lo:lo + size, lo:lo + size]


def real_at_level(real: jax.Array, level: int, alpha: jax.Array) -> jax.Array:
  """Final-size real images [B, S, S, C] as the generator draws them at
  `level`: average-pooled to its resolution, and during the fade-in blended
  with the previous resolution's, (1 - alpha) * upsample(pool(x)) + alpha * x."""
  x = nets.downsample(real, real.shape[1] // nets.resolution_of(level))
  if level == 0:
    return x
  return (1.0 - alpha) * nets.upsample(nets.downsample(x)) + alpha * x


# --- the train step ---------------------------------------------------------------------------


class Options(NamedTuple):
  latent_dim: int
  fade_steps: int
  stable_steps: int
  gp_weight: float
  drift: float  # epsilon of the drift term on D's real scores
  ema_decay: float
  reset_each_phase: bool  # reset both Adam states when a fade-in begins

  def schedule(self, image_size: int) -> Schedule:
    return Schedule(nets.num_levels(final_resolution(image_size)), self.fade_steps,
                    self.stable_steps)


def _reset_adam(ts: TrainState, reset: jax.Array) -> TrainState:
  """Adam's moments and count back to zero where `reset`; the optimiser's
  numbers (learning rate, betas: injected hyperparameters) are kept."""
  opt = ts.opt_state
  inner = jax.tree.map(lambda x: jnp.where(reset, jnp.zeros_like(x), x), opt.inner_state)
  return ts.replace(opt_state=opt._replace(inner_state=inner))


def level_step(state: ProGANState, real: jax.Array, key: jax.Array, *, level: int,
               sched: Schedule, opts: Options):
  """The step at `level` (one branch of `train_step`'s switch).

  real: [B, S, S, C] at the final size S, in [-1, 1]."""
  alpha = alpha_at(state.step, level, sched)
  g, d = state.generator, state.discriminator
  if opts.reset_each_phase and level > 0:
    begins = state.step == sched.fade_starts[level]
    g, d = _reset_adam(g, begins), _reset_adam(d, begins)
  z_key, gp_key = jax.random.split(key)
  b = real.shape[0]
  real = real_at_level(real, level, alpha)  # [B, r, r, C]
  z_BxZ = jax.random.normal(z_key, (b, opts.latent_dim))
  fake, g_vjp = jax.vjp(lambda p: g.apply_fn({"params": p}, z_BxZ, level, alpha), g.params)

  def d_loss_fn(params):
    critic = lambda x: d.apply_fn({"params": params}, x, level, alpha)
    scores = critic(jnp.concatenate([real, fake]))  # groups of the stddev never straddle
    real_scores, fake_scores = scores[:b], scores[b:]
    wgan = losses.wasserstein_critic_loss(real_scores, fake_scores)
    gp = losses.gradient_penalty(critic, real, fake, gp_key)
    drift = jnp.mean(real_scores**2)
    total = wgan + opts.gp_weight * gp + opts.drift * drift
    return total, {"d_loss": wgan, "gp": gp, "drift": drift,
                   "d_real": jnp.mean(real_scores), "d_fake": jnp.mean(fake_scores)}

  (_, d_metrics), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d.params)
  d = d.apply_gradients(grads=d_grads)

  critic = lambda x: d.apply_fn({"params": d.params}, x, level, alpha)
  g_loss, d_fake = jax.value_and_grad(
      lambda x: losses.wasserstein_generator_loss(critic(x)))(fake)
  (g_grads,) = g_vjp(d_fake)
  g = g.apply_gradients(grads=g_grads)
  ema = optax.incremental_update(g.params, state.ema_params, 1.0 - opts.ema_decay)
  metrics = {**d_metrics, "g_loss": g_loss,
             "resolution": jnp.asarray(nets.resolution_of(level), jnp.float32), "alpha": alpha}
  return state.replace(step=state.step + 1, generator=g, discriminator=d, ema_params=ema), metrics


def train_step(state: ProGANState, batch, key: jax.Array, *, opts: Options):
  """One generator update at the level of `state.step`.

  batch['image']: [1, B, H, W, C] in [-1, 1], padded here to the final size."""
  sched = opts.schedule(batch["image"].shape[2])
  real = pad_to(batch["image"][-1], nets.resolution_of(sched.levels - 1))
  branches = [functools.partial(level_step, level=l, sched=sched, opts=opts)
              for l in range(sched.levels)]
  return jax.lax.switch(level_at(state.step, sched), branches, state, real, key)


def make_train_step(config: ml_collections.ConfigDict):
  opts = Options(
      latent_dim=config.model.latent_dim,
      fade_steps=steps_for_images(config.phase.fade_images, config.batch_size),
      stable_steps=steps_for_images(config.phase.stable_images, config.batch_size),
      gp_weight=float(config.gp_weight), drift=float(config.drift),
      ema_decay=float(config.ema_decay), reset_each_phase=bool(config.opt.reset_each_phase))
  return functools.partial(train_step, opts=opts)


# --- sampling ---------------------------------------------------------------------------------


def generate(state: ProGANState, z: jax.Array, sched: Schedule, ema: bool = True) -> jax.Array:
  """G(z) at the level and alpha the state was last trained at, upsampled
  (nearest) to the final resolution and cropped to the data's size:
  [B, image_size, image_size, C], unclipped."""
  params = state.ema_params if ema else state.generator.params
  level, alpha = trained_progress(state.step, sched)
  size = nets.resolution_of(sched.levels - 1)

  def at(l):
    return lambda: nets.upsample(state.generator.apply_fn({"params": params}, z, l, alpha),
                                 size // nets.resolution_of(l))

  images = jax.lax.switch(level, [at(l) for l in range(sched.levels)])
  return crop_to(images, state.image_size)


def sample(state: ProGANState, key: jax.Array, num: int, config: ml_collections.ConfigDict,
           labels: jax.Array | None = None) -> jax.Array:
  """num samples [num, H, W, C] in [-1, 1] from the EMA generator at the run's
  current resolution, upsampled to the final size (the data's)."""
  del labels  # unconditional
  z = jax.random.normal(key, (num, config.model.latent_dim))
  return jnp.clip(generate(state, z, schedule(config, state.image_size)), -1.0, 1.0)


# --- config -----------------------------------------------------------------------------------


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad key; called before anything compiles."""
  m = config.model
  for key, value in (("model.latent_dim", m.latent_dim), ("model.g_width", m.g_width),
                     ("model.d_width", m.d_width), ("model.max_width", m.max_width),
                     ("model.mbstd_group", m.mbstd_group)):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"config.{key}={value!r} must be a positive integer.")
  if config.batch_size % m.mbstd_group:
    raise ValueError(f"config.batch_size={config.batch_size} must be a multiple of "
                     f"config.model.mbstd_group={m.mbstd_group} (the minibatch-stddev groups).")
  for key in ("fade_images", "stable_images"):
    value = config.phase[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      raise ValueError(f"config.phase.{key}={value!r} must be an integer >= 0 (images).")
  if config.phase.stable_images < config.batch_size:
    raise ValueError(f"config.phase.stable_images={config.phase.stable_images} must be at "
                     f"least config.batch_size={config.batch_size} (one step per phase).")
  for key in ("gp_weight", "drift"):
    value = config[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
      raise ValueError(f"config.{key}={value!r} must be a number >= 0 (the paper: gp_weight "
                       "10, drift 0.001).")
  if not 0 <= config.ema_decay < 1:
    raise ValueError(f"config.ema_decay={config.ema_decay!r} must be in [0, 1) (0.999 is usual; "
                     "0 turns the average off).")
  if not isinstance(config.opt.reset_each_phase, bool):
    raise ValueError(f"config.opt.reset_each_phase={config.opt.reset_each_phase!r} must be "
                     "True or False.")
  size = config.data.get("image_size", 0)
  if size and final_resolution(size) > 1024:
    raise ValueError(f"config.data.image_size={size}: a progressive GAN here grows to 1024 "
                     "at most.")


def phase_table(config: ml_collections.ConfigDict, image_size: int) -> list[dict]:
  """The phases as rows {resolution, fade_start, stable_start, end} in steps
  (end None for the last, which runs to num_steps): for logs and docs."""
  sched = schedule(config, image_size)
  rows = []
  for l, start in enumerate(sched.fade_starts):
    stable = start + (sched.fade_steps if l else 0)
    end = stable + sched.stable_steps if l < sched.levels - 1 else None
    rows.append({"resolution": nets.resolution_of(l), "fade_start": start,
                 "stable_start": stable, "end": end})
  return rows

