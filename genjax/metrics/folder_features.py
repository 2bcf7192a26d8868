"""The features a user's image folder is scored in: Inception-v3, or a network trained on the folder.

A folder has no committed classifier (genjax.metrics.features) and, offline,
usually no Inception weights. `python -m genjax.metrics.train_classifier
--workdir RUN` (or `--folder DIR` with the reading options) trains a feature
network on the folder's own training split, read as the run reads it
(image size, channels, background, labels, test split):

  - with classes (`data.labels=folders`, 2 or more subfolders): a
    classifier of the classes, with random 2-pixel shifts and horizontal
    flips;
  - without: a rotation predictor (Gidaris et al. 2018), which tells which
    of 0, 90, 180 or 270 degrees an image was turned by; telling it needs
    the image's content, so its features describe content without labels.

Its accuracy on the folder's held-out test split (the split FID is scored
against, never seen in training) is recorded beside chance. It is kept in
`~/.cache/genjax/features/<key>/folder.msgpack` and `.json`
($GENJAX_CACHE), where <key> hashes the bytes and relative paths of every
image of the folder and the reading options: a changed folder, size or
background has no network until one is trained for it.

`choose(data_config)` picks the features of a folder run: Inception-v3
(pytorch-fid's pool3, genjax.metrics.inception) when its weights file is
given or found, else the folder's own network when it has one, else a
FeatureNetworkError naming the command that trains one. A result names its
features (`identity`: name, file, SHA-256); numbers in different features
are never compared (genjax.metrics.scores.check_same_features).
"""

import hashlib
import json
import os
from pathlib import Path

import ml_collections
import numpy as np

from genjax.data import folder as folder_lib
from genjax.metrics import features, inception

NAME = "folder"  # the file stem of a folder's network: folder.msgpack, folder.json
_KEY_VERSION = 1


def cache_dir() -> Path:
  return Path(os.environ.get("GENJAX_CACHE", Path.home() / ".cache" / "genjax")) / "features"


def is_folder(data_config) -> bool:
  """Whether a run's `config.data` reads a user's folder (data.path set)."""
  return bool(data_config.get("path"))


def reading(data_config) -> ml_collections.ConfigDict:
  """The keys of `data_config` that decide which images a network sees, with the
  whole folder read into memory (no data.limit, the device pipeline)."""
  return ml_collections.ConfigDict({
      "name": "folder", "path": str(data_config.path), "image_size": data_config.image_size,
      "channels": data_config.get("channels", 3), "labels": data_config.get("labels", "none"),
      "test_percent": data_config.get("test_percent", 5),
      "background": data_config.get("background", "white"), "pipeline": "device",
      "threads": data_config.get("threads", 4), "limit": 0})


def folder_key(data_config) -> str:
  """SHA-256 (24 hex digits) of the folder's images (relative paths and bytes)
  and of the options that decide what a network sees of them."""
  options = reading(data_config)
  images = folder_lib.open_folder(options.path, options.image_size, options.channels,
                                  options.labels, options.threads, log=lambda m: None,
                                  background=options.background)
  digest = hashlib.sha256(json.dumps(
      [_KEY_VERSION, options.image_size, options.channels, options.labels,
       options.test_percent, str(options.background).lower()]).encode())
  for name in images.files:
    digest.update(name.encode() + b"\0" + hashlib.sha256(
        (images.root / name).read_bytes()).digest())
  return digest.hexdigest()[:24]


def network_dir(data_config) -> Path:
  return cache_dir() / folder_key(data_config)


def train_command(data_config) -> str:
  options = reading(data_config)
  return (f"python -m genjax.metrics.train_classifier --folder {options.path} "
          f"--image_size {options.image_size} --channels {options.channels} --labels "
          f"{options.labels} --background {options.background} --test_percent "
          f"{options.test_percent}")


def load(data_config) -> features.FeatureNetwork:
  """The folder's own feature network, checked against its record's SHA-256;
  FeatureNetworkError naming the command that trains it when there is none."""
  directory = network_dir(data_config)
  record_path = features.weights_path(NAME, directory).with_suffix(".json")
  if not record_path.exists():
    raise features.FeatureNetworkError(
        f"No feature network for the folder {data_config.path} as this run reads it (none in "
        f"{directory}), and no Inception weights: train one with `{train_command(data_config)}` "
        "(or give pytorch-fid's Inception weights, docs/evaluation.md).")
  record = json.loads(record_path.read_text())
  return features.load(NAME, directory, expected_sha256=record["sha256"])


class InceptionNetwork:
  """Inception-v3 pool3 features in the interface of a FeatureNetwork: no logits."""

  def __init__(self, weights=None, progress=None):
    self.inception = inception.load(weights)
    self.progress = progress
    self.record = {"image_shape": None, "num_classes": 0}

  @property
  def identity(self) -> dict:
    return {"name": "Inception-v3 pool3, 2048 features (pytorch-fid's FID Inception)",
            "file": str(self.inception.path), "sha256": self.inception.sha256}

  def __call__(self, images) -> tuple[None, np.ndarray]:
    return None, self.inception(images, progress=self.progress)


def choose(data_config, inception_weights=None, use_inception: bool = True, progress=None):
  """The feature network a folder run is scored in (module docstring):
  Inception when its weights are given or found, else the folder's own.
  A weights file named by `inception_weights` must be usable."""
  if use_inception:
    try:
      inception.check_weights_file(inception_weights)
      return InceptionNetwork(inception_weights, progress)
    except inception.InceptionUnavailable as e:
      if inception_weights:
        raise ValueError(f"--inception_weights: {e}") from e
  return load(data_config)
