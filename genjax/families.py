"""The model-family contract and its registry.

A `Family` is everything the training loop, `genjax.sample` and
`genjax.evaluate` need to know about a kind of model: they look it up by
`config.family` and call its functions, and never test for a family's name
or attributes. Each family is assembled here from its step module
(`genjax.steps.<family>`: state, train step, sampler, config checks), its
evaluator (`genjax.evaluators.<family>`) and, where its data are not one
labelled image set, its data hooks (`genjax.data.unpaired` for CycleGAN).
docs/adding_a_family.md is the checklist for a new one.
"""

import dataclasses
from typing import Any, Callable, Optional, Protocol

import jax
import ml_collections

from genjax import data
from genjax.data import device, unpaired
from genjax.evaluators import cyclegan as cyclegan_eval
from genjax.evaluators import gan as gan_eval
from genjax.evaluators import progan as progan_eval
from genjax.evaluators import vae as vae_eval
from genjax.steps import cyclegan, gan, progan, vae

Config = ml_collections.ConfigDict
State = Any  # a family's state pytree (GANState, VAEState, ...)
Metrics = dict[str, jax.Array]


class TrainStep(Protocol):

  def __call__(self, state: State, batch: dict[str, jax.Array],
               key: jax.Array) -> tuple[State, Metrics]:
    ...


class Evaluator(Protocol):
  """Called at every evaluation of the loop: (grids {name: uint8 [H, W, C]},
  scalars {name: float}) for PNG files and TensorBoard."""

  def __call__(self, state: State) -> tuple[dict[str, Any], dict[str, float]]:
    ...


def _load_image_split(config: Config, split: str) -> data.ArrayDataset:
  return data.load_from_config(config.data, split)


def _images_to_device(dataset: data.ArrayDataset, mesh) -> device.DeviceData:
  return device.to_device(dataset.images, dataset.labels, mesh)


@dataclasses.dataclass(frozen=True)
class Family:
  """A model family: pure functions, no state of its own.

  Attributes:
    name: the value of `config.family` that selects it.
    create_state: (config, key, image_shape [H, W, C], num_classes) -> state.
    make_train_step: config -> train_step(state, batch, key) -> (state,
      metrics); the batch holds `batches_per_step(config)` batches stacked
      on a leading axis.
    validate_config: config -> None; raises ValueError naming the bad key.
      Called before anything is loaded or compiled.
    make_evaluator: (config, key, test split) -> Evaluator, for the loop.
    sample: (state, key, num, config, labels=None) -> images [num, H, W, C]
      in [-1, 1]; None for a family that only translates (no generator of
      new images), which then gets no FID/KID during training.
    evaluate_metrics: (state, config, test split, key, *, progress,
      **options) -> dict, the family's own measures for `genjax.evaluate`;
      None if it has none beyond the sample metrics.
    metric_options: the names of `genjax.evaluate`'s options that
      `evaluate_metrics` takes as keyword arguments (e.g. `iwae_k`).
    batches_per_step: config -> batches drawn for one step (GANs: n_critic).
    load_split: (config, split) -> the split in memory (an ArrayDataset, or
      the family's own dataset type).
    to_device: (loaded split, mesh) -> a pytree of device arrays.
    make_draw_batch: config -> draw(device data, step, key, batch_size,
      num_batches) -> the batch dict of one step, inside the compiled call.
    streams: whether its data can take the streaming path
      (`config.data.pipeline=stream`, genjax.data.stream), which reads one
      labelled image set; False for families with their own data hooks.
    convolutional: config -> whether the train step has convolutions; on
      CPU, the steps of one call are unrolled for such steps and run in a
      rolled loop otherwise (`parallel.unroll_steps`).
  """

  name: str
  create_state: Callable[[Config, jax.Array, tuple, int], State]
  make_train_step: Callable[[Config], TrainStep]
  validate_config: Callable[[Config], None]
  make_evaluator: Callable[[Config, jax.Array, Any], Evaluator]
  sample: Optional[Callable[..., jax.Array]] = None
  evaluate_metrics: Optional[Callable[..., dict]] = None
  metric_options: tuple[str, ...] = ()
  batches_per_step: Callable[[Config], int] = lambda config: 1
  load_split: Callable[[Config, str], Any] = _load_image_split
  to_device: Callable[[Any, Any], Any] = _images_to_device
  make_draw_batch: Callable[[Config], Callable] = lambda config: device.draw_batch
  streams: bool = True
  convolutional: Callable[[Config], bool] = lambda config: True


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
  """Adds `family` to the registry under `family.name`."""
  if family.name in FAMILIES:
    raise ValueError(f"A model family named {family.name!r} is already registered.")
  FAMILIES[family.name] = family
  return family


def get(name: str) -> Family:
  """The registered family `name`; a ValueError lists the choices."""
  try:
    return FAMILIES[name]
  except KeyError:
    raise ValueError(f"Unknown model family config.family={name!r}; choose one of "
                     f"{sorted(FAMILIES)}.") from None


register(Family(
    name="gan",
    create_state=gan.create_state,
    make_train_step=gan.make_train_step,
    validate_config=gan.validate_config,
    make_evaluator=gan_eval.make_evaluator,
    sample=gan.sample,
    batches_per_step=gan.batches_per_step,
))

register(Family(
    name="vae",
    create_state=vae.create_state,
    make_train_step=vae.make_train_step,
    validate_config=vae.validate_config,
    make_evaluator=vae_eval.make_evaluator,
    sample=vae.sample,
    evaluate_metrics=vae_eval.evaluate_metrics,
    metric_options=("iwae_k", "chunk"),
    convolutional=lambda config: config.model.arch != "mlp",
))

register(Family(
    name="cyclegan",
    create_state=cyclegan.create_state,
    make_train_step=cyclegan.make_train_step,
    validate_config=cyclegan.validate_config,
    make_evaluator=cyclegan_eval.make_evaluator,
    evaluate_metrics=cyclegan_eval.evaluate_metrics,
    load_split=lambda config, split: unpaired.load(config.data, split),
    to_device=unpaired.to_device,
    make_draw_batch=lambda config: unpaired.make_draw_batch(
        config.data.load_size, config.data.crop_size, config.data.flip),
    streams=False,
))

register(Family(
    name="progan",
    create_state=progan.create_state,
    make_train_step=progan.make_train_step,
    validate_config=progan.validate_config,
    make_evaluator=progan_eval.make_evaluator,
    sample=progan.sample,
))
