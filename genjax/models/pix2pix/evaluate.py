"""pix2pix evaluations: input | output | target grids, and the test pairs' measures.

On the test pairs, at the size the networks were trained at: the mean L1,
PSNR and SSIM of the outputs against the targets (genjax.metrics.image_quality,
[0, 1] pixels; for Fashion-MNIST padded to 32 px, on its 28x28 centre:
paired.stored_view), and, where the targets' dataset has a feature network
(Fashion-MNIST for edges2fashion), the FID of the outputs against the
targets in it. Beside them, the same measures of a baseline (by task):
  paired    `identity`: the input unchanged;
  superres  `bicubic`: the input itself (box-downsampled, bicubic-upsampled);
  inpaint   `mean_fill`: the input without its mask channel (the hole filled
            with the image's known mean); every measure but FID is taken
            inside the hole only (image_quality.hole_measures).
Test inputs of superres and inpaint are made from the targets with fixed
keys (genjax.data.paired.test_inputs), the same for every run. Where the
run's data is Fashion-MNIST (edges2fashion, fashion_mnist) the FID is in
its feature network. The generator's dropout is on, as the paper tests,
with noise drawn from a fixed key; batch norm uses each batch's statistics.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import images as images_lib
from genjax import viz
from genjax.data import paired, unpaired
from genjax.nn import degrade
from genjax.metrics import features, image_quality
from genjax.models.pix2pix import step as pix2pix


BASELINES = {"paired": "identity", "superres": "bicubic", "inpaint": "mean_fill"}


def content_features(config):
  """The content loss's features, images [B, H, W, C] in [-1, 1] -> conv
  features of `config.content_network` (features.conv_features, its
  parameters held fixed), or None when it is ''."""
  if not config.get("content_network", ""):
    return None
  return functools.partial(features.conv_features, features.load(config.content_network).params)


def check_content_network(config) -> None:
  """ValueError naming a content_network genjax does not ship, or a content
  weight without one."""
  name, weight = config.get("content_network", ""), config.get("content_weight", 0.0)
  if name and name not in features.KNOWN_WEIGHTS:
    raise ValueError(f"config.content_network={name!r}: choose a feature network genjax "
                     f"ships, one of {sorted(features.KNOWN_WEIGHTS)}, or '' for none.")
  if weight and not name:
    raise ValueError(f"config.content_weight={weight} needs a config.content_network (mnist: "
                     "the MNIST classifier's conv features); set one, or the weight to 0.")


def feature_network(config):
  """The Fashion-MNIST feature network for edges2fashion and fashion_mnist, else None."""
  if config.data.name not in (paired.EDGES2FASHION, paired.FASHION_MNIST):
    return None
  return features.load("fashion_mnist")


def test_pairs(test: unpaired.UnpairedDataset, config, start: int, stop: int):
  """Inputs and targets [n, M, M, C] of test pairs start:stop, in [-1, 1] at
  the networks' size (inputs made from the targets for superres and inpaint)."""
  y = paired.to_model_size(jnp.asarray(images_lib.to_float(test.b.images[start:stop])),
                           config.data)
  if config.task != "paired":
    return paired.test_inputs(y, config.task, config.data, start), y
  x = jnp.asarray(images_lib.to_float(test.a.images[start:stop]))
  return paired.to_model_size(x, config.data), y


_translate = jax.jit(pix2pix.translate, static_argnames="task")


def baseline(inputs: jax.Array, task: str) -> jax.Array:
  """The baseline's images: the inputs as images (degrade.shown)."""
  return degrade.shown(inputs, task)


def _measures(images: jax.Array, targets: jax.Array, inputs: jax.Array, task: str,
              config) -> dict:
  images, targets, inputs = (paired.stored_view(v, config.data) for v in (images, targets, inputs))
  if task == "inpaint":
    return image_quality.hole_measures(images, targets, degrade.hole_of(inputs))
  return image_quality.all_measures(images, targets)


def translation_metrics(state: pix2pix.Pix2PixState, config, test: unpaired.UnpairedDataset,
                        key: jax.Array, batch: int = 250, network=None, progress=None) -> dict:
  """{'l1', 'psnr_db', 'ssim'[, 'fid'], BASELINES[task]: {the same}, 'num_test_pairs'}."""
  task = config.task
  n = len(test)
  sums = {"model": {}, "baseline": {}}
  outputs, targets, inputs = [], [], []
  for i in range(0, n, batch):
    x, y = test_pairs(test, config, i, i + batch)
    out = _translate(state, x, jax.random.fold_in(key, i), task=task)
    base = baseline(x, task)
    for name, images in (("model", out), ("baseline", base)):
      if images.shape[-1] == y.shape[-1]:
        for k, v in _measures(images, y, x, task, config).items():
          sums[name][k] = sums[name].get(k, 0.0) + float(jnp.sum(v))
    outputs.append(images_lib.to_uint8(out))
    targets.append(images_lib.to_uint8(y))
    inputs.append(images_lib.to_uint8(base))
    if progress is not None:
      progress(min(i + batch, n))
  result = {k: v / n for k, v in sums["model"].items()}
  identity = {k: v / n for k, v in sums["baseline"].items()}
  if network is not None:
    outputs, targets, inputs = (np.concatenate(v) for v in (outputs, targets, inputs))
    result["fid"] = features.frechet_between(network, outputs, targets)
    if identity:
      identity["fid"] = features.frechet_between(network, inputs, targets)
    result["feature_network"] = {k: network.record[k] for k in ("sha256", "test_accuracy")}
  result[BASELINES[task]] = identity or "not comparable (input and target channels differ)"
  result["num_test_pairs"] = n
  return result


def evaluate_metrics(state, config, test, key, *, progress=None) -> dict:
  """genjax.evaluate's measures of a pix2pix run on its test pairs."""
  return translation_metrics(state, config, test, key, network=feature_network(config),
                             progress=progress)


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test):
  """state -> (a grid of inputs, outputs and targets, the measures of up to 500 test pairs)."""
  num = min(config.num_eval_samples, len(test))
  x, y = test_pairs(test, config, 0, num)
  small = test.take(500)
  network = feature_network(config)
  grid_key, metric_key = jax.random.split(key)

  @jax.jit
  def rows(state):
    return jnp.concatenate([baseline(x, config.task),
                            pix2pix.translate(state, x, grid_key, config.task), y])

  def evaluate(state):
    images = {"translation": viz.grid(images_lib.to_uint8(rows(state)), ncol=num)}
    measures = translation_metrics(state, config, small, metric_key, network=network)
    scalars = {k: v for k, v in measures.items() if isinstance(v, float)}
    name = BASELINES[config.task]
    scalars.update({f"{name}_{k}": v for k, v in measures[name].items()
                    if isinstance(v, float)} if isinstance(measures[name], dict) else {})
    return images, scalars

  return evaluate
