"""Feature visualisation by gradient ascent on the input ("DeepDream").

Mordvintsev, Olah and Tyka, "Inceptionism: Going Deeper into Neural
Networks" (2015): start from noise or a real image and change the image, not
the network, to raise a chosen unit's activation. Three regularisers keep the
result an image rather than adversarial noise:

- octaves: the ascent runs first on a coarse copy of the image, which is then
  enlarged and refined at the next scale, so large structures form before
  fine ones. The network always sees the full-size image (the coarse image is
  resized up before it), so networks with a fixed input size work too;
- jitter: the image is rolled by a random shift of up to `jitter` pixels in
  each step, so no pattern can rely on exact pixel positions;
- a total-variation penalty, tv_weight * mean |x[i+1] - x[i]| over both axes,
  which favours smooth images.

Each step moves the image by step_size * g / mean|g| (the gradient scaled to
unit mean magnitude, as the original DeepDream does) and clips it to [-1, 1].

    network = features.load("mnist")
    objective = visualise.unit_objective(network.module, {"params": network.params},
                                         "Dense_1", channel=3)
    image, trace = visualise.ascend(objective, noise, jax.random.key(0))
"""

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# [B, H, W, C] in [-1, 1] -> [B]: what the ascent raises, per image.
Objective = Callable[[jax.Array], jax.Array]


class AscentOptions(NamedTuple):
  steps: int = 64  # per octave
  step_size: float = 0.02  # in [-1, 1] units, after scaling the gradient to mean |g| = 1
  octaves: int = 3  # scales, the coarsest first; 1 = the full size only
  octave_scale: float = 1.4  # each octave's size over the previous one's
  jitter: int = 2  # largest random shift in pixels per step; 0 = none
  tv_weight: float = 0.0  # weight of the total-variation penalty


def total_variation(x: jax.Array) -> jax.Array:
  """Mean absolute difference of neighbouring pixels per image: [B, H, W, C] -> [B]."""
  dy = jnp.abs(x[:, 1:] - x[:, :-1]).mean(axis=(1, 2, 3))
  dx = jnp.abs(x[:, :, 1:] - x[:, :, :-1]).mean(axis=(1, 2, 3))
  return dy + dx


def unit_objective(module, variables, layer: str, channel: int | Sequence[int] | None = None,
                   preprocess: Callable[[jax.Array], jax.Array] | None = None) -> Objective:
  """The mean activation of `channel` of `layer`'s output (its pre-activation:
  Flax modules' outputs), or with channel=None the mean square of every unit
  of the layer (DeepDream's objective, which amplifies whatever the layer
  already sees). For the logits layer a channel is a class. A sequence of
  B channels raises channel b in image b.

  `layer` names a submodule of `module` as Flax names it ("Conv_1",
  "Dense_1", "Mixed_5b"); a module whose call returns a tuple (the feature
  networks' (logits, features)) is fine, only the layer's output is read.
  """
  def objective(x):
    if preprocess is not None:
      x = preprocess(x)
    _, state = module.apply(variables, x, capture_intermediates=lambda m, _: m.name == layer,
                            mutable=["intermediates"])
    found = state.get("intermediates", {}).get(layer)
    if found is None:
      raise ValueError(f"layer {layer!r} is not a submodule of {type(module).__name__}; "
                       f"name one of its submodules, e.g. {layer_names(module, variables, x)}.")
    out = found["__call__"][0]  # [B, ..., C]
    axes = tuple(range(1, out.ndim - 1))
    if channel is None:
      return jnp.mean(jnp.square(out), axis=tuple(range(1, out.ndim)))
    channels = np.atleast_1d(np.asarray(channel))
    if channels.min() < 0 or channels.max() >= out.shape[-1]:
      raise ValueError(f"channel={channel}: layer {layer!r} has channels 0..{out.shape[-1] - 1}.")
    if isinstance(channel, (int, np.integer)):
      picked = out[..., channel]
    else:  # one channel per image
      if channels.size != out.shape[0]:
        raise ValueError(f"channel={channel}: one channel per image, but the batch has "
                         f"{out.shape[0]} images.")
      index = jnp.asarray(channels).reshape(-1, *[1] * (out.ndim - 1))
      picked = jnp.take_along_axis(out, index, -1)[..., 0]
    return picked.mean(axis=axes) if axes else picked
  return objective


def layer_names(module, variables, x) -> list[str]:
  """The names of `module`'s direct submodules, in the order they run on `x`."""
  _, state = module.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
  return [k for k in state["intermediates"] if k != "__call__"]


def _resize(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  return jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), "bilinear")


def octave_sizes(size: tuple[int, int], octaves: int, scale: float) -> list[tuple[int, int]]:
  """Image sizes from the coarsest octave to `size` (the last)."""
  return [tuple(max(1, round(s / scale ** k)) for s in size) for k in reversed(range(octaves))]


def ascend(objective: Objective, image: jax.Array, key: jax.Array,
           options: AscentOptions = AscentOptions()) -> tuple[jax.Array, jax.Array]:
  """Raises `objective` by gradient ascent on the input.

  Args:
    objective: images [B, H, W, C] in [-1, 1] -> [B], the value to raise.
    image: the start, [B, H, W, C] in [-1, 1] (noise or real images).
    key: draws the jitter shifts.
    options: steps, step size, octaves, jitter and the TV weight.

  Returns:
    (the final images [B, H, W, C], the objective before each step and after
    the last, [octaves * steps + 1, B], measured on the full-size unjittered image).
  """
  if image.ndim != 4:
    raise ValueError(f"image has shape {image.shape}; give a batch [B, H, W, C].")
  size = image.shape[1:3]
  sizes = octave_sizes(size, options.octaves, options.octave_scale)
  x = _resize(image, sizes[0])
  trace = []
  for octave, small in enumerate(sizes):
    x = _resize(x, small)
    x, values = _octave(objective, x, jax.random.fold_in(key, octave), size, options)
    trace.append(values)
  x = _resize(x, size)
  trace.append(objective(x)[None])
  return x, jnp.concatenate(trace)


def _octave(objective, x, key, size, options):
  """`options.steps` ascent steps on the image x at its own size."""
  def score(x, shift):
    full = _resize(x, size)
    rolled = jnp.roll(full, shift, axis=(1, 2))
    return (objective(rolled) - options.tv_weight * total_variation(full)).sum()

  @jax.jit
  def run(x, key):
    def step(x, key):
      shift = jax.random.randint(key, (2,), -options.jitter, options.jitter + 1)
      grad = jax.grad(score)(x, shift)
      grad = grad / (jnp.abs(grad).mean(axis=(1, 2, 3), keepdims=True) + 1e-8)
      value = objective(_resize(x, size))
      return jnp.clip(x + options.step_size * grad, -1.0, 1.0), value
    return jax.lax.scan(step, x, jax.random.split(key, options.steps))

  return run(x, key)
