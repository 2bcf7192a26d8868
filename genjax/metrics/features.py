"""The feature network of the sample-quality metrics: a small classifier per dataset.

Inception-v3 weights cannot be obtained offline, so FID, KID, precision/recall
and density/coverage are computed in the penultimate layer (128 ReLU units) of
a small CNN trained by `python -m genjax.metrics.train_classifier` on the
dataset's training split with a fixed seed. Its weights are committed in
`genjax/metrics/weights/` as msgpack, with a JSON record of how they were
trained and their test accuracy. The SHA-256 of every weights file is fixed
in `KNOWN_WEIGHTS` below and checked on load, so every machine and version
measures in the same feature space; a file with another hash is refused.

These numbers are comparable between genjax runs on the same dataset, never
with published (Inception) FIDs.
"""

import functools
import hashlib
import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from genjax import images as images_lib
from genjax.metrics import distances

WEIGHTS_DIR = Path(__file__).parent / "weights"

# Dataset -> SHA-256 of weights/<dataset>.msgpack. Retraining changes the hash;
# update it here only together with the committed file, since every metric
# computed before becomes incomparable.
KNOWN_WEIGHTS = {
    "mnist": "b6c4f8ebab593582afc7e4eb97a31484e06d7ea31740cfe6aa9d359dfb8ee2d5",
    "fashion_mnist": "70b2e74b9931dd12bc61004bed09bed26fc70d3b7be1effc85696da780d93e81",
}


class FeatureNetworkError(RuntimeError):
  """No usable feature network for a dataset; the message says why and what to do."""


class Classifier(nn.Module):
  """conv-conv-pool x2, a 128-unit feature layer and a linear classifier.

  Input: images [B, H, W, C] in [-1, 1] (H, W multiples of 4).
  Output: (logits [B, num_classes], features [B, feature_dim]). With
  `train=True` and dropout > 0 it needs a 'dropout' rng.
  """

  num_classes: int = 10
  widths: tuple[int, ...] = (32, 64)
  feature_dim: int = 128
  dropout: float = 0.0  # on the features, before the last layer, in training only

  @nn.compact
  def __call__(self, x, train: bool = False):
    for width in self.widths:
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.avg_pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    features = nn.relu(nn.Dense(self.feature_dim)(x))
    dropped = nn.Dropout(self.dropout, deterministic=not train)(features)
    return nn.Dense(self.num_classes)(dropped), features


def sha256(path: Path) -> str:
  return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class FeatureNetwork:
  """A loaded, hash-checked classifier: `network(images) -> (logits, features)`."""

  def __init__(self, dataset: str, params, record: dict, path: Path | None = None):
    self.dataset = dataset
    self.params = params
    self.record = record
    self.path = path
    self.module = Classifier(num_classes=record["num_classes"],
                             widths=tuple(record.get("widths", (32, 64))))
    self._apply = jax.jit(lambda p, x: self.module.apply({"params": p}, x))

  @property
  def identity(self) -> dict:
    """What these features are: {'name', 'file', 'sha256'}, as results name them."""
    name = self.record.get("name", f"{self.dataset} classifier (genjax.metrics.features)")
    return {"name": name, "file": str(self.path or self.record.get("file", "")),
            "sha256": self.record.get("sha256", "")}

  def __call__(self, images, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Logits [N, K] and features [N, D] (float32 numpy) of uint8 or [-1, 1] images.
    uint8 images are converted a batch at a time (never all N in float32)."""
    images = np.asarray(images)

    def apply(chunk):
      if chunk.dtype == np.uint8:
        chunk = images_lib.to_float(chunk)
      return self._apply(self.params, jnp.asarray(chunk, jnp.float32))

    outputs = images_lib.map_in_batches(apply, images, batch_size)
    return tuple(np.concatenate(parts) for parts in zip(*outputs))


def conv_features(params, images: jax.Array, blocks: int = 2) -> jax.Array:
  """The Classifier's convolutional features of `images` [B, H, W, C] in
  [-1, 1], any H and W: the ReLU output of block `blocks`' second conv
  (64 channels at H/2 for 2), before its pooling. A one-channel network
  reads each channel of a C-channel image as an image of its own (a
  [B * C, h, w, F] result): the content features of a super-resolution
  loss, differentiable in `images`."""
  b, h, w, c = images.shape
  if params["Conv_0"]["kernel"].shape[2] == 1 and c != 1:
    images = images.transpose(0, 3, 1, 2).reshape(b * c, h, w, 1)
  x = images
  for block in range(blocks):
    if block:
      x = nn.avg_pool(x, (2, 2), (2, 2))
    for j in (2 * block, 2 * block + 1):
      p = params[f"Conv_{j}"]
      x = jax.lax.conv_general_dilated(x, p["kernel"].astype(x.dtype), (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
      x = nn.relu(x + p["bias"].astype(x.dtype)[None, None, None])
  return x


def weights_path(dataset: str, directory: Path = WEIGHTS_DIR) -> Path:
  return Path(directory) / f"{dataset}.msgpack"


def save(dataset: str, params, record: dict, directory: Path = WEIGHTS_DIR) -> dict:
  """Writes weights/<dataset>.msgpack and .json; returns the record with its sha256."""
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  path = weights_path(dataset, directory)
  path.write_bytes(serialization.msgpack_serialize(jax.device_get(params)))
  record = {**record, "sha256": sha256(path), "file": path.name}
  path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
  return record


def at_network_shape(images_u8: np.ndarray, shape) -> np.ndarray:
  """uint8 [N, S, S, C] as a network's [H, W, C] images: centre-cropped when S
  is H + 4 (28 px images padded to 32), else resized (bilinear)."""
  n, s, _, c = images_u8.shape
  h = shape[0]
  if s == h:
    return images_u8
  if s == h + 4:
    return images_u8[:, 2:-2, 2:-2]
  out = jax.image.resize(jnp.asarray(images_u8, jnp.float32), (n, h, h, c), "bilinear")
  return np.asarray(jnp.clip(jnp.round(out), 0, 255), np.uint8)


def frechet_between(network: FeatureNetwork, images_u8: np.ndarray,
                    reference_u8: np.ndarray) -> float:
  """FID of uint8 `images` against `reference` in `network`'s feature space
  (a translator's outputs against its targets)."""
  shape = network.record["image_shape"]
  _, f_img = network(at_network_shape(images_u8, shape))
  _, f_ref = network(at_network_shape(reference_u8, shape))
  return distances.frechet_distance(*distances.feature_statistics(f_img),
                                    *distances.feature_statistics(f_ref))


@functools.lru_cache(maxsize=8)
def _network(dataset: str, path: Path, sha: str) -> FeatureNetwork:
  del sha  # part of the cache key: a changed file is a new network
  record = json.loads(path.with_suffix(".json").read_text())
  params = serialization.msgpack_restore(path.read_bytes())
  return FeatureNetwork(dataset, jax.tree.map(jnp.asarray, params), record, path)


def load(dataset: str, directory: Path = WEIGHTS_DIR, expected_sha256: str | None = None):
  """The committed feature network of `dataset`, after checking its hash.

  Raises FeatureNetworkError when there is none or the file is not the one
  the metrics were defined with.
  """
  path = weights_path(dataset, directory)
  expected = expected_sha256 if expected_sha256 is not None else KNOWN_WEIGHTS.get(dataset)
  if not expected or not path.exists():
    known = sorted(k for k, v in KNOWN_WEIGHTS.items() if v)
    raise FeatureNetworkError(
        f"No feature network for dataset {dataset!r} (have: {', '.join(known)}). "
        f"Train one with `python -m genjax.metrics.train_classifier --dataset {dataset}` "
        f"and add its sha256 to genjax.metrics.features.KNOWN_WEIGHTS.")
  actual = sha256(path)
  if actual != expected:
    raise FeatureNetworkError(
        f"{path} has sha256 {actual}, but the metrics are defined with {expected}. "
        "Metrics from other weights are not comparable; restore the committed file "
        "(git checkout genjax/metrics/weights).")
  return _network(dataset, path, actual)  # checked on every call, built once per file
