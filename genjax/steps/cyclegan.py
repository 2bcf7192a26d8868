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

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genjax import losses, viz
from genjax.data import unpaired
from genjax.nn import cyclegan as cyclegan_nn
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


def learning_rate(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Constant `opt.lr` until `decay_start`, then linear to 0 at `num_steps`."""
  lr = config.opt.lr
  decay_steps = max(config.num_steps - config.decay_start, 1)
  return optax.join_schedules(
      [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, decay_steps)],
      [config.decay_start])


def build_models(config: ml_collections.ConfigDict, image_shape):
  m = config.model
  generator = cyclegan_nn.ResnetGenerator(
      out_channels=image_shape[-1], width=m.g_width, num_blocks=m.g_blocks,
      num_down=m.g_down, upsample=m.upsample)
  discriminator = cyclegan_nn.PatchDiscriminator(width=m.d_width, num_layers=m.d_layers)
  return generator, discriminator


def create_state(config: ml_collections.ConfigDict, key: jax.Array, image_shape,
                 num_classes: int = 0) -> CycleGANState:
  del num_classes
  generator, discriminator = build_models(config, image_shape)
  tx = optax.adam(learning_rate(config), b1=config.opt.b1, b2=config.opt.b2)
  x = jnp.zeros((1, *image_shape), jnp.float32)
  keys = jax.random.split(key, 4)

  def make(module, k):
    return TrainState.create(apply_fn=module.apply, params=module.init(k, x)["params"], tx=tx)

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


def train_step(state: CycleGANState, batch, key: jax.Array, *, cycle_weight: float,
               identity_weight: float):
  """One step; batch {'a', 'b'}: [1, B, H, W, C] in [-1, 1]."""
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
  return functools.partial(train_step, cycle_weight=config.cycle_weight,
                           identity_weight=config.identity_weight)


def batches_per_step(config: ml_collections.ConfigDict) -> int:
  del config
  return 1


# The loop's data hooks: two domains instead of one image set.
def load_split(config: ml_collections.ConfigDict, split: str) -> unpaired.UnpairedDataset:
  return unpaired.load(config.data, split)


def to_device(dataset: unpaired.UnpairedDataset, mesh) -> unpaired.DevicePair:
  return unpaired.to_device(dataset, mesh)


def make_draw_batch(config: ml_collections.ConfigDict):
  return unpaired.make_draw_batch(config.data.load_size, config.data.crop_size,
                                  config.data.flip)


def translate(state: CycleGANState, images: jax.Array, direction: str) -> jax.Array:
  """G_AB(images) for direction 'ab', G_BA(images) for 'ba'."""
  g = state.g_ab if direction == "ab" else state.g_ba
  return g.apply_fn({"params": g.params}, images)


def _as_float(images) -> jax.Array:
  return jnp.asarray(images, jnp.float32) / 127.5 - 1.0


def translation_metrics(state: CycleGANState, test: unpaired.UnpairedDataset,
                        batch: int = 250, classifier=None) -> dict:
  """Cycle L1 both ways; for a paired test split, A->B L1 and PSNR against the
  truth; with a classifier of domain A, the share of B->A translations of
  paired test images classified as their source image's label."""
  ab = jax.jit(lambda s, x: (lambda y: (y, translate(s, y, "ba")))(translate(s, x, "ab")))
  ba = jax.jit(lambda s, x: (lambda y: (y, translate(s, y, "ab")))(translate(s, x, "ba")))
  sums = {"cycle_l1_a": 0.0, "cycle_l1_b": 0.0, "ab_l1": 0.0, "ab_psnr": 0.0}
  n = min(len(test.a), len(test.b))
  recognised, translated_a = 0, []
  for i in range(0, n, batch):
    xa, xb = _as_float(test.a.images[i:i + batch]), _as_float(test.b.images[i:i + batch])
    fake_b, rec_a = ab(state, xa)
    fake_a, rec_b = ba(state, xb)
    sums["cycle_l1_a"] += float(jnp.sum(jnp.mean(jnp.abs(rec_a - xa), axis=(1, 2, 3))))
    sums["cycle_l1_b"] += float(jnp.sum(jnp.mean(jnp.abs(rec_b - xb), axis=(1, 2, 3))))
    if test.paired:
      # Errors on the [0, 1] pixel scale; PSNR from the mean squared error of each image.
      diff = (fake_b - xb) / 2.0
      sums["ab_l1"] += float(jnp.sum(jnp.mean(jnp.abs(diff), axis=(1, 2, 3))))
      mse = jnp.maximum(jnp.mean(diff**2, axis=(1, 2, 3)), 1e-10)
      sums["ab_psnr"] += float(jnp.sum(10.0 * jnp.log10(1.0 / mse)))
      if classifier is not None:
        logits, _ = classifier(np.asarray(fake_a))
        recognised += int(np.sum(logits.argmax(1) == test.a.labels[i:i + batch]))
  out = {"cycle_l1_a": sums["cycle_l1_a"] / n, "cycle_l1_b": sums["cycle_l1_b"] / n,
         "num_test_pairs": n}
  if test.paired:
    out.update(ab_l1=sums["ab_l1"] / n, ab_psnr_db=sums["ab_psnr"] / n)
    if classifier is not None:
      out["ba_class_recognised"] = recognised / n
  return out


def _classifier(config):
  """The Fashion-MNIST feature network for edges2fashion, else None."""
  if config.data.name != unpaired.EDGES2FASHION:
    return None
  from genjax.metrics import features  # pylint: disable=g-import-not-at-top
  return features.load("fashion_mnist")


def evaluate_metrics(state, config, test, key, progress=None, **unused) -> dict:
  """genjax.evaluate's metrics of a CycleGAN run on its test split."""
  del key, unused
  result = translation_metrics(state, test, classifier=_classifier(config))
  if progress is not None:
    progress(len(test))
  return result


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test):
  """state -> (translation grids A->B->A and B->A->B, test-split metrics on up to 500 pairs)."""
  del key
  num = min(8, len(test))
  xa, xb = _as_float(test.a.images[:num]), _as_float(test.b.images[:num])
  small = unpaired.UnpairedDataset(
      *(type(test.a)(d.images[:500], d.labels[:500], d.num_classes, d.source)
        for d in (test.a, test.b)), paired=test.paired, source=test.source)
  classifier = _classifier(config)

  @jax.jit
  def grids(state):
    fake_b = translate(state, xa, "ab")
    fake_a = translate(state, xb, "ba")
    return (jnp.concatenate([xa, fake_b, translate(state, fake_b, "ba")]),
            jnp.concatenate([xb, fake_a, translate(state, fake_a, "ab")]))

  def evaluate(state):
    ab, ba = grids(state)
    images = {"translation_a2b": viz.grid(viz.to_uint8(ab), ncol=num),
              "translation_b2a": viz.grid(viz.to_uint8(ba), ncol=num)}
    return images, translation_metrics(state, small, classifier=classifier)

  return evaluate


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
