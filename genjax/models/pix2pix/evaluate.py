"""pix2pix evaluations: input | output | target grids, and the test pairs' measures.

On the test pairs, at the size the networks were trained at: the mean L1,
PSNR and SSIM of the outputs against the targets (genjax.metrics.image_quality,
[0, 1] pixels), and, where the targets' dataset has a feature network
(Fashion-MNIST for edges2fashion), the FID of the outputs against the
targets in it. Beside them, `identity`: the same measures of the baseline
that outputs its input unchanged. The generator's dropout is on, as the
paper tests, with noise drawn from a fixed key; batch norm uses each
batch's statistics.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import images as images_lib
from genjax import viz
from genjax.data import paired, unpaired
from genjax.metrics import distances, features, image_quality
from genjax.models.pix2pix import step as pix2pix


def feature_network(config):
  """The Fashion-MNIST feature network for edges2fashion, else None."""
  if config.data.name != paired.EDGES2FASHION:
    return None
  return features.load("fashion_mnist")


def to_feature_shape(images_u8: np.ndarray, shape) -> np.ndarray:
  """uint8 [N, S, S, C] as the feature network's [H, W, C]: centre-cropped
  when S is H + 4 (edges2fashion's padding), else resized (bilinear)."""
  n, s, _, c = images_u8.shape
  h = shape[0]
  if s == h:
    return images_u8
  if s == h + 4:
    return images_u8[:, 2:-2, 2:-2]
  out = jax.image.resize(jnp.asarray(images_u8, jnp.float32), (n, h, h, c), "bilinear")
  return np.asarray(jnp.clip(jnp.round(out), 0, 255), np.uint8)


def fid(network, outputs_u8: np.ndarray, targets_u8: np.ndarray) -> float:
  """FID of outputs against targets in `network`'s feature space."""
  shape = network.record["image_shape"]
  _, f_out = network(to_feature_shape(outputs_u8, shape))
  _, f_tgt = network(to_feature_shape(targets_u8, shape))
  return distances.frechet_distance(*distances.feature_statistics(f_out),
                                    *distances.feature_statistics(f_tgt))


def test_pairs(test: unpaired.UnpairedDataset, data_config, start: int, stop: int):
  """Inputs and targets [n, M, M, C] of test pairs start:stop, in [-1, 1] at
  the networks' size."""
  x = jnp.asarray(images_lib.to_float(test.a.images[start:stop]))
  y = jnp.asarray(images_lib.to_float(test.b.images[start:stop]))
  return paired.to_model_size(x, data_config), paired.to_model_size(y, data_config)


_translate = jax.jit(pix2pix.translate)


def translation_metrics(state: pix2pix.Pix2PixState, config, test: unpaired.UnpairedDataset,
                        key: jax.Array, batch: int = 250, network=None, progress=None) -> dict:
  """{'l1', 'psnr_db', 'ssim'[, 'fid'], 'identity': {the same}, 'num_test_pairs'}."""
  translate = _translate
  n = len(test)
  sums = {"model": {}, "identity": {}}
  outputs, targets, inputs = [], [], []
  for i in range(0, n, batch):
    x, y = test_pairs(test, config.data, i, i + batch)
    out = translate(state, x, jax.random.fold_in(key, i))
    for name, images in (("model", out), ("identity", x)):
      if images.shape[-1] == y.shape[-1]:
        for k, v in image_quality.all_measures(images, y).items():
          sums[name][k] = sums[name].get(k, 0.0) + float(jnp.sum(v))
    outputs.append(images_lib.to_uint8(out))
    targets.append(images_lib.to_uint8(y))
    inputs.append(images_lib.to_uint8(x))
    if progress is not None:
      progress(min(i + batch, n))
  result = {k: v / n for k, v in sums["model"].items()}
  identity = {k: v / n for k, v in sums["identity"].items()}
  if network is not None:
    outputs, targets, inputs = (np.concatenate(v) for v in (outputs, targets, inputs))
    result["fid"] = fid(network, outputs, targets)
    if identity:
      identity["fid"] = fid(network, inputs, targets)
    result["feature_network"] = {k: network.record[k] for k in ("sha256", "test_accuracy")}
  result["identity"] = identity or "not comparable (input and target channels differ)"
  result["num_test_pairs"] = n
  return result


def evaluate_metrics(state, config, test, key, *, progress=None) -> dict:
  """genjax.evaluate's measures of a pix2pix run on its test pairs."""
  return translation_metrics(state, config, test, key, network=feature_network(config),
                             progress=progress)


def make_evaluator(config: ml_collections.ConfigDict, key: jax.Array, test):
  """state -> (a grid of inputs, outputs and targets, the measures of up to 500 test pairs)."""
  num = min(config.num_eval_samples, len(test))
  x, y = test_pairs(test, config.data, 0, num)
  small = test.take(500)
  network = feature_network(config)
  grid_key, metric_key = jax.random.split(key)

  @jax.jit
  def rows(state):
    return jnp.concatenate([x, pix2pix.translate(state, x, grid_key), y])

  def evaluate(state):
    images = {"translation": viz.grid(images_lib.to_uint8(rows(state)), ncol=num)}
    measures = translation_metrics(state, config, small, metric_key, network=network)
    scalars = {k: v for k, v in measures.items() if isinstance(v, float)}
    scalars.update({f"identity_{k}": v for k, v in measures["identity"].items()
                    if isinstance(v, float)} if isinstance(measures["identity"], dict) else {})
    return images, scalars

  return evaluate
