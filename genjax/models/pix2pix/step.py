"""pix2pix state and train step (Isola et al. 2017): conditional GAN + L1.

The state holds two TrainStates, G (a U-Net, input -> output) and D (a
PatchGAN on (input, image) pairs). One step, on a batch {'a': inputs x,
'b': targets y}, in the authors' order:
  1. G(x), dropout active (its noise);
  2. D: (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)) / 2, the generated images
     held fixed;
  3. G, through the updated D: BCE(D(x, G(x)), 1) + lambda |G(x) - y|_1,
     lambda = 100 (the non-saturating loss, the authors' 'vanilla' GAN).
Both with Adam(2e-4, b1 0.5). The learning rate is constant for
`decay_start` steps, then falls linearly to zero at `num_steps` (the
authors' 'linear' policy, in steps instead of epochs).

`config.task` names what the pairs are (inputs made as genjax.nn.degrade
says):
  paired    any aligned pairs, as above.
  superres  input: the target box-downsampled by data.scale and
            bicubic-upsampled back. `model.generator=srresnet` (the
            superres experiments' default) is SRGAN's residual generator
            with sub-pixel upsampling, working at the low resolution
            (networks.SRResNet); `unet` refines the bicubic image at the
            target's size. Loss: the L1, `content_weight` x the mean squared
            difference of G(x)'s and y's features in a fixed feature network
            (SRGAN's content loss; `content_network`'s conv features, which
            the family passes to make_train_step), and a small
            `adv_weight` (SRGAN weighs its adversarial term 1e-3 of the
            content loss).
  inpaint   input: the target with a hole (data.mask) filled with its known
            pixels' mean, and the mask as an extra channel. G's output is
            composited: its pixels in the hole, the input's known pixels
            exactly elsewhere; D sees the composite. The L1 is
            l1_weight (mean |G(x) - y| over the hole + known_weight x that
            over the known pixels), on G's output before compositing.
`adv_weight` scales the adversarial term of G's loss (1: the paper's).
`content_network` ('': none) adds the content loss to any task, weighted by
`content_weight`.
"""

import functools
from typing import Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections

from genjax import losses, optim
from genjax.models.pix2pix import networks as pix2pix_nn
from genjax.nn import degrade, precision
from genjax.state import TrainState

TASKS = ("paired", *degrade.TASKS)
NORMS = ("batch", "instance")
GENERATORS = ("unet", "srresnet")


@flax.struct.dataclass
class Pix2PixState:
  step: jax.Array  # [] int32
  generator: TrainState  # input -> output
  discriminator: TrainState  # (input, image) -> patch logits


def build_models(config: ml_collections.ConfigDict, out_channels: int):
  m = config.model
  dtype = precision.compute_dtype(config)
  if m.get("generator", "unet") == "srresnet":
    generator = pix2pix_nn.SRResNet(out_channels=out_channels, scale=config.data.scale,
                                    width=m.g_width, num_blocks=m.res_blocks, norm=m.norm,
                                    dtype=dtype)
  else:
    generator = pix2pix_nn.UNetGenerator(
        out_channels=out_channels, width=m.g_width, num_down=m.g_down, dropout=m.dropout,
        dropout_layers=m.dropout_layers, norm=m.norm, dtype=dtype)
  discriminator = pix2pix_nn.PairDiscriminator(width=m.d_width, num_layers=m.d_layers,
                                               norm=m.norm, dtype=dtype)
  return generator, discriminator


def create_state(config: ml_collections.ConfigDict, key: jax.Array, image_shape,
                 num_classes: int = 0) -> Pix2PixState:
  """`image_shape` [H, W, C] is the stored images' (inputs and targets alike);
  the networks see data.crop_size (else load_size) where set."""
  del num_classes
  size = config.data.crop_size or config.data.load_size or image_shape[0]
  out_c = image_shape[-1]
  in_c = out_c + 1 if config.task == "inpaint" else image_shape[-1]  # + the mask
  generator, discriminator = build_models(config, out_c)
  x = jnp.zeros((1, size, size, in_c), jnp.float32)
  y = jnp.zeros((1, size, size, out_c), jnp.float32)
  g_key, d_key, drop_key = jax.random.split(key, 3)
  schedule = optim.linear_decay(config.num_steps, config.decay_start)

  def make(module, k, *args):
    params = module.init({"params": k, "dropout": drop_key}, *args)["params"]
    return optim.train_state(module.apply, params, schedule=schedule,
                             learning_rate=config.opt.lr, b1=config.opt.b1, b2=config.opt.b2)

  return Pix2PixState(step=jnp.zeros((), jnp.int32), generator=make(generator, g_key, x),
                      discriminator=make(discriminator, d_key, x, y))


class Options(NamedTuple):
  l1_weight: float  # lambda of |G(x) - y|_1
  adv_weight: float  # weight of G's adversarial loss
  task: str  # paired | superres | inpaint
  known_weight: float  # inpaint: the L1 outside the hole, relative to that inside
  content_weight: float = 0.0  # weight of the content loss (feature MSE)
  content_features: Callable | None = None  # images [B, H, W, C] -> features, differentiable


def finish(raw: jax.Array, inputs: jax.Array, task: str) -> jax.Array:
  """G's images from its raw outputs: composited with the known pixels for inpaint."""
  return degrade.composite(raw, inputs) if task == "inpaint" else raw


def masked_l1(raw: jax.Array, y: jax.Array, hole: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean |raw - y| over the hole's pixels and over the known pixels."""
  err = jnp.abs(raw - y)
  area = lambda m: jnp.maximum(jnp.sum(m) * y.shape[-1], 1.0)
  return jnp.sum(err * hole) / area(hole), jnp.sum(err * (1 - hole)) / area(1 - hole)


def train_step(state: Pix2PixState, batch, key: jax.Array, *, opts: Options):
  """One step; batch {'a': inputs, 'b': targets}: [1, B, H, W, C] in [-1, 1]."""
  x, y = batch["a"][0], batch["b"][0]
  g, d = state.generator, state.discriminator
  raw, g_vjp = jax.vjp(lambda p: g.apply_fn({"params": p}, x, rngs={"dropout": key}), g.params)

  def d_loss_fn(params):
    real_logits = d.apply_fn({"params": params}, x, y)
    fake = finish(jax.lax.stop_gradient(raw), x, opts.task)
    fake_logits = d.apply_fn({"params": params}, x, fake)
    return 0.5 * losses.minimax_discriminator_loss(real_logits, fake_logits)

  d_loss, d_grads = jax.value_and_grad(d_loss_fn)(d.params)
  d = d.apply_gradients(grads=d_grads)

  def g_loss_fn(raw):
    fake = finish(raw, x, opts.task)
    adv = losses.non_saturating_generator_loss(d.apply_fn({"params": d.params}, x, fake))
    if opts.task == "inpaint":
      hole_l1, known_l1 = masked_l1(raw, y, degrade.hole_of(x))
      l1 = hole_l1 + opts.known_weight * known_l1
    else:
      l1 = hole_l1 = losses.l1_loss(raw, y)
    loss = opts.adv_weight * adv + opts.l1_weight * l1
    content = jnp.zeros(())
    if opts.content_features is not None:
      content = jnp.mean(jnp.square(opts.content_features(fake) - y_features))
      loss += opts.content_weight * content
    return loss, (adv, hole_l1, content)

  if opts.content_features is not None:
    y_features = opts.content_features(y)
  (_, (adv, l1, content)), raw_grad = jax.value_and_grad(g_loss_fn, has_aux=True)(raw)
  (g_grads,) = g_vjp(raw_grad)
  g = g.apply_gradients(grads=g_grads)
  metrics = {"d_loss": d_loss, "g_adv": adv, "l1": l1}  # inpaint: l1 in the hole
  if opts.content_features is not None:
    metrics["content"] = content
  return Pix2PixState(step=state.step + 1, generator=g, discriminator=d), metrics


def make_train_step(config: ml_collections.ConfigDict, content_features: Callable | None = None):
  """The train step. `content_features` (images -> a fixed network's
  features; evaluate.content_features) adds the content loss, weighted by
  config.content_weight (which a population may sweep)."""
  return functools.partial(train_step, opts=Options(
      l1_weight=config.l1_weight, adv_weight=config.adv_weight, task=config.task,
      known_weight=config.known_weight, content_weight=config.get("content_weight", 0.0),
      content_features=content_features))


def translate(state: Pix2PixState, inputs: jax.Array, key: jax.Array,
              task: str = "paired") -> jax.Array:
  """G(inputs) [N, H, W, C] in [-1, 1], with dropout drawn from `key` (the
  paper's test-time noise); batch norm uses the statistics of `inputs`.
  For inpaint, composited: the inputs' known pixels exactly outside the hole."""
  g = state.generator
  return finish(g.apply_fn({"params": g.params}, inputs, rngs={"dropout": key}), inputs, task)


def validate_config(config: ml_collections.ConfigDict) -> None:
  if config.task not in TASKS:
    raise ValueError(f"config.task={config.task!r}: choose one of {list(TASKS)} (paired: "
                     "aligned input and target images; superres, inpaint: inputs made from "
                     "the targets).")
  m = config.model
  for key, value, least in (("model.g_width", m.g_width, 1), ("model.g_down", m.g_down, 1),
                            ("model.d_width", m.d_width, 1), ("model.d_layers", m.d_layers, 1),
                            ("model.dropout_layers", m.dropout_layers, 0)):
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
      raise ValueError(f"config.{key}={value!r} must be an integer >= {least}.")
  generator = m.get("generator", "unet")
  if generator not in GENERATORS:
    raise ValueError(f"config.model.generator={generator!r}: choose one of {list(GENERATORS)} "
                     "(srresnet: super-resolution only).")
  if generator == "srresnet":
    if config.task != "superres":
      raise ValueError(f"config.model.generator='srresnet' upsamples by data.scale: it needs "
                       f"config.task='superres', not {config.task!r}; use generator='unet'.")
    if not isinstance(m.res_blocks, int) or isinstance(m.res_blocks, bool) or m.res_blocks < 0:
      raise ValueError(f"config.model.res_blocks={m.res_blocks!r} must be an integer >= 0 "
                       "(16: SRGAN's).")
  if m.norm not in NORMS:
    raise ValueError(f"config.model.norm={m.norm!r}: choose one of {list(NORMS)} (batch: the "
                     "paper's).")
  if not 0 <= m.dropout < 1:
    raise ValueError(f"config.model.dropout={m.dropout!r} must be in [0, 1) (0.5: the paper's).")
  if m.dropout_layers > m.g_down - 1:
    raise ValueError(f"config.model.dropout_layers={m.dropout_layers} must be at most "
                     f"model.g_down - 1 = {m.g_down - 1} (decoder layers outside the innermost).")
  size = config.data.crop_size or config.data.load_size or config.data.image_size
  if generator == "unet" and size % 2**m.g_down:
    raise ValueError(f"config.model.g_down={m.g_down}: the U-Net halves {size} px images "
                     f"{m.g_down} times, so their size must be divisible by {2**m.g_down}; "
                     f"use g_down <= {(size & -size).bit_length() - 1} or another image size.")
  for key in ("l1_weight", "adv_weight", "known_weight", "content_weight"):
    if key in config and not config[key] >= 0:
      raise ValueError(f"config.{key}={config[key]!r} must be >= 0.")
  if not 0 <= config.decay_start <= config.num_steps:
    raise ValueError(f"config.decay_start={config.decay_start!r} must be between 0 and "
                     f"config.num_steps={config.num_steps}.")
