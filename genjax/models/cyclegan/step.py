"""CycleGAN state and train step (Zhu et al. 2017).

The state holds four TrainStates, G_AB, G_BA, D_A and D_B, and two image
pools of generated images (fixed-size arrays with a fill count), so the whole
run, pools included, is one pytree: jitted, sharded and checkpointed alike.

One step, on a batch {'a': real A, 'b': real B}:
  1. both generators, jointly: least-squares adversarial losses through
     D_B(G_AB(a)) and D_A(G_BA(b)), cycle losses |G_BA(G_AB(a)) - a| and
     |G_AB(G_BA(b)) - b| weighted by lambda (10), identity losses
     |G_AB(b) - b| and |G_BA(a) - a| weighted by identity * lambda (0.5 * 10);
  2. the generated images go through the pools: until a pool holds
     `pool_size` images each is stored and used; after, each is used with
     probability 1/2, and otherwise swapped for a random stored one, which is
     used instead (the authors' ImagePool);
  3. D_A and D_B: least-squares losses on real images and pooled fakes, halved.
The learning rate is constant for `decay_start` steps, then falls linearly to
zero at `num_steps` (the authors' 'linear' policy, in steps instead of epochs).
"""

import functools
from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections

from genjax import losses, optim
from genjax.models.cyclegan import networks as cyclegan_nn
from genjax.nn import precision
from genjax.state import TrainState


@flax.struct.dataclass
class CycleGANState:
  step: jax.Array  # [] int32
  g_ab: TrainState  # A -> B
  g_ba: TrainState  # B -> A
  d_a: TrainState  # real A vs G_BA(b)
  d_b: TrainState  # real B vs G_AB(a)
  pool_a: jax.Array  # [pool_size, H, W, C] generated A images
  pool_b: jax.Array  # [pool_size, H, W, C] generated B images
  pool_count: jax.Array  # [2] int32: images stored in pool_a, pool_b


def lr_multiplier(config: ml_collections.ConfigDict) -> optim.Multiplier:
  """1 until `decay_start`, then linear to 0 at `num_steps` (times `opt.lr`)."""
  return optim.linear_decay(config.num_steps, config.decay_start)


def build_models(config: ml_collections.ConfigDict, image_shape):
  m = config.model
  generator = cyclegan_nn.ResnetGenerator(
      out_channels=image_shape[-1], width=m.g_width, num_blocks=m.g_blocks,
      num_down=m.g_down, upsample=m.upsample, dtype=precision.compute_dtype(config))
  discriminator = cyclegan_nn.PatchDiscriminator(width=m.d_width, num_layers=m.d_layers,
                                                 dtype=precision.compute_dtype(config))
  return generator, discriminator


def create_state(config: ml_collections.ConfigDict, key: jax.Array, image_shape,
                 num_classes: int = 0) -> CycleGANState:
  del num_classes
  generator, discriminator = build_models(config, image_shape)
  schedule = lr_multiplier(config)
  x = jnp.zeros((1, *image_shape), jnp.float32)
  keys = jax.random.split(key, 4)

  def make(module, k):
    return optim.train_state(module.apply, module.init(k, x)["params"], schedule=schedule,
                             learning_rate=config.opt.lr, b1=config.opt.b1, b2=config.opt.b2)

  pool = jnp.zeros((config.pool_size, *image_shape), jnp.float32)
  return CycleGANState(
      step=jnp.zeros((), jnp.int32),
      g_ab=make(generator, keys[0]), g_ba=make(generator, keys[1]),
      d_a=make(discriminator, keys[2]), d_b=make(discriminator, keys[3]),
      pool_a=pool, pool_b=pool, pool_count=jnp.zeros((2,), jnp.int32))


def query_pool(pool: jax.Array, count: jax.Array, images: jax.Array, key: jax.Array):
  """The authors' ImagePool.query, functionally: returns (images to use, pool, count).

  For each image in turn: while the pool is not full it is stored and used;
  once full, with probability 1/2 it is used as it is, otherwise it replaces
  a uniformly chosen stored image, and the stored one is used.
  """
  size = pool.shape[0]
  if size == 0:
    return images, pool, count

  def one(carry, inputs):
    pool, count = carry
    image, k = inputs
    swap_key, index_key = jax.random.split(k)
    full = count >= size
    swap = full & (jax.random.uniform(swap_key) > 0.5)
    index = jnp.where(full, jax.random.randint(index_key, (), 0, size), count)
    stored = pool[index]
    out = jnp.where(swap, stored, image)
    pool = pool.at[index].set(jnp.where(full & ~swap, stored, image))
    return (pool, jnp.minimum(count + 1, size)), out

  (pool, count), out = jax.lax.scan(one, (pool, count),
                                    (images, jax.random.split(key, images.shape[0])))
  return out, pool, count


class Options(NamedTuple):
  cycle_weight: float  # lambda of the cycle L1 losses
  identity_weight: float  # identity L1 losses weighted identity_weight * lambda; 0 = off


def train_step(state: CycleGANState, batch, key: jax.Array, *, opts: Options):
  """One step; batch {'a', 'b'}: [1, B, H, W, C] in [-1, 1]."""
  cycle_weight, identity_weight = opts.cycle_weight, opts.identity_weight
  real_a, real_b = batch["a"][0], batch["b"][0]
  g_ab, g_ba, d_a, d_b = state.g_ab, state.g_ba, state.d_a, state.d_b

  def g_loss_fn(params):
    p_ab, p_ba = params
    fake_b = g_ab.apply_fn({"params": p_ab}, real_a)
    fake_a = g_ba.apply_fn({"params": p_ba}, real_b)
    rec_a = g_ba.apply_fn({"params": p_ba}, fake_b)
    rec_b = g_ab.apply_fn({"params": p_ab}, fake_a)
    adv_b = losses.lsgan_patch_generator_loss(d_b.apply_fn({"params": d_b.params}, fake_b))
    adv_a = losses.lsgan_patch_generator_loss(d_a.apply_fn({"params": d_a.params}, fake_a))
    cycle_a, cycle_b = losses.l1_loss(rec_a, real_a), losses.l1_loss(rec_b, real_b)
    total = adv_a + adv_b + cycle_weight * (cycle_a + cycle_b)
    metrics = {"g_adv_a": adv_a, "g_adv_b": adv_b, "cycle_a": cycle_a, "cycle_b": cycle_b}
    if identity_weight:
      idt_b = losses.l1_loss(g_ab.apply_fn({"params": p_ab}, real_b), real_b)
      idt_a = losses.l1_loss(g_ba.apply_fn({"params": p_ba}, real_a), real_a)
      total += identity_weight * cycle_weight * (idt_a + idt_b)
      metrics.update(identity_a=idt_a, identity_b=idt_b)
    return total, (fake_a, fake_b, metrics)

  (_, (fake_a, fake_b, metrics)), (grad_ab, grad_ba) = jax.value_and_grad(
      g_loss_fn, has_aux=True)(
          (g_ab.params, g_ba.params))
  g_ab, g_ba = g_ab.apply_gradients(grads=grad_ab), g_ba.apply_gradients(grads=grad_ba)

  key_a, key_b = jax.random.split(key)
  pooled_a, pool_a, count_a = query_pool(state.pool_a, state.pool_count[0],
                                         jax.lax.stop_gradient(fake_a), key_a)
  pooled_b, pool_b, count_b = query_pool(state.pool_b, state.pool_count[1],
                                         jax.lax.stop_gradient(fake_b), key_b)

  def d_update(d: TrainState, real, fake):
    def loss_fn(params):
      return losses.lsgan_patch_discriminator_loss(d.apply_fn({"params": params}, real),
                                                   d.apply_fn({"params": params}, fake))
    loss, grads = jax.value_and_grad(loss_fn)(d.params)
    return d.apply_gradients(grads=grads), loss

  d_a, metrics["d_a"] = d_update(d_a, real_a, pooled_a)
  d_b, metrics["d_b"] = d_update(d_b, real_b, pooled_b)
  new = CycleGANState(step=state.step + 1, g_ab=g_ab, g_ba=g_ba, d_a=d_a, d_b=d_b,
                      pool_a=pool_a, pool_b=pool_b, pool_count=jnp.stack([count_a, count_b]))
  return new, metrics


def make_train_step(config: ml_collections.ConfigDict):
  return functools.partial(train_step, opts=Options(
      cycle_weight=config.cycle_weight, identity_weight=config.identity_weight))


def translate(state: CycleGANState, images: jax.Array, direction: str) -> jax.Array:
  """G_AB(images) for direction 'ab', G_BA(images) for 'ba'."""
  g = state.g_ab if direction == "ab" else state.g_ba
  return g.apply_fn({"params": g.params}, images)


def validate_config(config: ml_collections.ConfigDict) -> None:
  m = config.model
  for key, value in (("model.g_width", m.g_width), ("model.g_blocks", m.g_blocks),
                     ("model.d_width", m.d_width), ("model.d_layers", m.d_layers),
                     ("model.g_down", m.g_down)):
    if not isinstance(value, int) or value < (0 if key == "model.g_blocks" else 1):
      raise ValueError(f"config.{key}={value!r} must be a positive integer.")
  if not isinstance(config.pool_size, int) or config.pool_size < 0:
    raise ValueError(f"config.pool_size={config.pool_size!r} must be an integer >= 0 "
                     "(50 as the authors; 0 turns the pool off).")
  for key in ("cycle_weight", "identity_weight"):
    if not config[key] >= 0:
      raise ValueError(f"config.{key}={config[key]!r} must be >= 0.")
  if not 0 <= config.decay_start <= config.num_steps:
    raise ValueError(f"config.decay_start={config.decay_start!r} must be between 0 and "
                     f"config.num_steps={config.num_steps}.")
  if not config.opt.lr > 0:
    raise ValueError(f"config.opt.lr={config.opt.lr!r} must be positive.")
