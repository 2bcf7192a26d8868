"""A user's folder of images (`data.path`, read by `genjax.data.folder`), split into train and test by a hash of each path."""

import dataclasses
import hashlib

import numpy as np

from genjax.data import folder as folder_lib
from genjax.data.types import StreamedDataset


def folder_split(data_config, split: str) -> StreamedDataset:
  """The `split` of a user's image folder (`data_config.path`), read image by
  image: 'test' holds the images whose path hashes into the first
  `test_percent` of 100 buckets, 'train' the rest."""
  images = folder_lib.open_folder(
      data_config.path, data_config.image_size, data_config.get("channels", 3),
      data_config.get("labels", "none"), threads=data_config.get("threads", 4),
      log=None if split == "train" else (lambda message: None),  # said once, for train
      background=data_config.get("background", "white"))
  percent = data_config.get("test_percent", 5)
  in_test = np.asarray([int(hashlib.sha1(f.encode()).hexdigest()[:8], 16) % 100 < percent
                        for f in images.files])
  if percent and not in_test.any():
    in_test[0] = True  # a tiny folder still has a test image
  keep = np.flatnonzero(in_test if split == "test" else ~in_test)
  if split not in ("train", "test") or not len(keep):
    raise ValueError(f"Image folder {data_config.path}: no {split!r} split (train, test).")
  subset = dataclasses.replace(images, files=tuple(images.files[i] for i in keep),
                               labels=images.labels[keep])
  return StreamedDataset(subset, subset.image_shape, subset.num_classes,
                         f"{subset.source}, {split} split", subset.class_names)


def check_named(data_config) -> None:
  """Raises ValueError for a folder experiment run without a folder (`data.path` empty)."""
  if "path" in data_config and data_config.name == "folder":
    raise ValueError("config.data.path is empty: set it to a folder of images, e.g. "
                     "--config.data.path=~/photos, or set config.data.name to a dataset "
                     "prepared by `python -m genjax.data.prepare`.")
