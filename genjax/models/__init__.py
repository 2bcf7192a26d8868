"""Model families: the contract, the registry, and one folder per family.

A `Family` is everything the training loop, `genjax.sample` and
`genjax.evaluate` need to know about a kind of model: they look it up by
`config.family` and call its functions, and never test for a family's name
or attributes. Each family is a folder, `genjax/models/<name>/`:

  networks.py   its Flax modules
  step.py       state, create_state, train step, sampler, config checks
  evaluate.py   what it reports at an evaluation and in `genjax.evaluate`
  __init__.py   the `register(Family(...))` that puts them together

docs/adding_a_family.md is the checklist for a new one.
"""

import dataclasses
from typing import Any, Callable, Optional, Protocol

import jax
import ml_collections
import numpy as np

from genjax import data, parallel
from genjax.data import device

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


class Diverged(FloatingPointError):
  """Raised by a metric reader when training diverged: `what` says where; the
  loop adds the checkpoint it keeps and, unless `advice` is given, how to
  resume with lower learning rates."""

  def __init__(self, what: str, advice: str = ""):
    super().__init__(what)
    self.what, self.advice = what, advice


def finite_metrics(config: Config, state: State) -> Callable:
  """The metric reader of one model: (stacked {name: [k]}, first step, last
  step, log) -> {name: mean over the k steps}; Diverged on a NaN/Inf."""
  del config, state

  def read(stacked: dict, first: int, last: int, log) -> dict[str, float]:
    del log
    bad = [name for name, v in stacked.items() if not np.all(np.isfinite(v))]
    if bad:
      raise Diverged(f"{', '.join(bad)} became NaN/Inf between steps {first} and {last}")
    return {name: float(np.mean(v)) for name, v in stacked.items()}

  return read


def _load_image_split(config: Config, split: str) -> data.ArrayDataset:
  return data.load_from_config(config.data, split)


def _images_to_device(dataset: data.ArrayDataset, mesh) -> device.DeviceData:
  return device.to_device(dataset.images, dataset.labels, mesh)


@dataclasses.dataclass(frozen=True)
class Translator:
  """What `genjax.translate` needs of a trained translator.

  Attributes:
    directions: the directions it translates ('ab'; CycleGAN: 'ab', 'ba').
    size: the side of the square images its networks take and give.
    prepare: uint8 [H, W, C] of any size -> uint8 [size, size, C], resized
      and cropped as the run's training images were.
    how: a sentence saying what `prepare` does, for the user.
    apply: (state, prepared images [N, h, w, C'] in [-1, 1], direction, key)
      -> images [N, size, size, C].
    needs_masks: whether each input comes with a mask (inpainting): the
      prepared image then carries it as a last channel (255: hole, 0: known).
  """

  directions: tuple[str, ...]
  size: int
  prepare: Callable[[np.ndarray], np.ndarray]
  how: str
  apply: Callable[..., jax.Array]
  needs_masks: bool = False


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
      in [-1, 1] (a sampler that also takes truncation=None gets
      `genjax.sample --truncation`); None for a family that only translates
      (no generator of new images), which then gets no FID/KID during training.
    evaluate_metrics: (state, config, test split, key, *, progress,
      **options) -> dict, the family's own measures for `genjax.evaluate`;
      None if it has none beyond the sample metrics.
    translator: (config, image_shape) -> Translator, for `genjax.translate`;
      None for a family that does not translate images.
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

  Placement and bookkeeping, which a population (genjax.train.population)
  replaces and a single model leaves at their defaults:
    make_mesh: devices (None: all) -> the mesh.
    state_sharding: (mesh, abstract state) -> the state's shardings.
    batch_sharding: mesh -> the sharding of one step's batch [n, B, ...].
    make_metric_reader: (config, initial state) -> read(stacked metrics
      {name: [k, ...]}, first step, last step, log) -> {name: float}; names
      with a '/' are breakdowns ('d_loss/member_3') for TensorBoard.
      Raises Diverged.
    num_models: models trained at once (images/s counts each).
    describe: mesh -> a line the loop prints at start, or None.
  """

  name: str
  create_state: Callable[[Config, jax.Array, tuple, int], State]
  make_train_step: Callable[[Config], TrainStep]
  validate_config: Callable[[Config], None]
  make_evaluator: Callable[[Config, jax.Array, Any], Evaluator]
  sample: Optional[Callable[..., jax.Array]] = None
  evaluate_metrics: Optional[Callable[..., dict]] = None
  metric_options: tuple[str, ...] = ()
  translator: Optional[Callable[[Config, tuple], Translator]] = None
  batches_per_step: Callable[[Config], int] = lambda config: 1
  load_split: Callable[[Config, str], Any] = _load_image_split
  to_device: Callable[[Any, Any], Any] = _images_to_device
  make_draw_batch: Callable[[Config], Callable] = lambda config: device.draw_batch
  streams: bool = True
  convolutional: Callable[[Config], bool] = lambda config: True
  make_mesh: Callable[[Any], Any] = parallel.make_mesh
  state_sharding: Callable[[Any, State], Any] = lambda mesh, state: parallel.replicated(mesh)
  batch_sharding: Callable[[Any], Any] = lambda mesh: parallel.batch_sharding(mesh, batch_axis=1)
  make_metric_reader: Callable[[Config, State], Callable] = finite_metrics
  num_models: int = 1
  describe: Callable[[Any], Optional[str]] = lambda mesh: None


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




# Importing each family's folder registers it (its __init__ calls `register`).
from genjax.models import biggan, cyclegan, gan, pix2pix, progan, vae  # noqa: E402,F401  pylint: disable=wrong-import-position
