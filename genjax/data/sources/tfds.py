"""TFDS sources: data prepared in the data dir, a TFDS download, and folders `genjax.data.prepare` wrote."""

import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from genjax.data.types import ArrayDataset, NotHere, Request, StreamedDataset

DEFAULT_DATA_DIR = os.environ.get("TFDS_DATA_DIR", str(Path.home() / "tensorflow_datasets"))
_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


@contextlib.contextmanager
def _quiet_fd2():
  """Sends file descriptor 2 to /dev/null: TensorFlow's C++ start-up lines
  ("oneDNN custom operations are on", ...) ignore TF_CPP_MIN_LOG_LEVEL."""
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def import_tfds():
  """Imports TFDS with TensorFlow kept off accelerators and quiet."""
  if "tensorflow_datasets" in sys.modules:
    return sys.modules["tensorflow_datasets"]
  # TensorFlow only reads files here: its log lines are noise to a genjax user.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  with _quiet_fd2():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    # TensorFlow only reads files here; it must not take GPU memory from JAX.
    tf.config.set_visible_devices([], "GPU")
  return tfds


def _network_available(timeout: float = 3.0) -> bool:
  try:
    socket.create_connection(_DOWNLOAD_HOST, timeout=timeout).close()
    return True
  except OSError:
    return False


def from_builder(builder, split: str, source: str) -> ArrayDataset:
  """The whole `split` of a prepared TFDS builder, in memory."""
  tfds = import_tfds()
  if split not in builder.info.splits:
    raise ValueError(
        f"Dataset {builder.name} has no split {split!r}; it has {sorted(builder.info.splits)}."
    )
  ds = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  images = np.asarray(ds["image"], dtype=np.uint8)
  if images.ndim == 3:
    images = images[..., None]
  labels = np.asarray(ds.get("label", np.zeros(len(images))), dtype=np.int64)
  label_feature = builder.info.features.get("label") if hasattr(builder.info.features, "get") else None
  num_classes = getattr(label_feature, "num_classes", 0) or int(labels.max()) + 1
  return ArrayDataset(images, labels, num_classes, source)


def _builder(name: str, data_dir: str):
  """TFDS's builder of `name`, without its warning about each empty version folder
  (expected here: nothing prepared yet; the outcome is reported by `load`)."""
  tfds = import_tfds()
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(
        f"Unknown dataset {name!r}: TFDS has no dataset of that name. Use a TFDS "
        "name such as fashion_mnist, mnist or cifar10."
    ) from e
  finally:
    absl_logging.set_verbosity(verbosity)


def source_prepared(req: Request) -> ArrayDataset:
  """TFDS data already prepared in data_dir."""
  builder = _builder(req.name, req.data_dir)
  if not builder.is_prepared():
    raise NotHere(f"no prepared TFDS data in {req.data_dir}")
  return from_builder(builder, req.split, f"TFDS {req.name} in {req.data_dir}")


def source_download(req: Request) -> ArrayDataset:
  """A TFDS download, where allowed and the network answers."""
  if not req.download:
    raise NotHere("download disabled")
  if not _network_available():
    raise NotHere("no network for a TFDS download")
  builder = _builder(req.name, req.data_dir)
  builder.download_and_prepare()
  return from_builder(builder, req.split, f"TFDS {req.name}, downloaded to {req.data_dir}")


class _DataSource:
  """A TFDS data source (ArrayRecord: random access) as (image, label) pairs."""

  def __init__(self, source):
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
    example = self.source[i]
    image = np.asarray(example["image"], np.uint8)
    return (image[..., None] if image.ndim == 2 else image), int(example.get("label", 0))


def prepared_folder(name: str, data_dir: Optional[str], split: str) -> Optional[StreamedDataset]:
  """The `split` of a dataset `genjax.data.prepare` wrote under the data dir,
  read example by example; None when there is none of that name."""
  folder = Path(data_dir or DEFAULT_DATA_DIR) / name / "1.0.0"
  if not (folder / "dataset_info.json").exists():
    return None
  builder = import_tfds().builder_from_directory(str(folder))
  try:
    data_source = builder.as_data_source(split=split)
  except Exception as e:  # pylint: disable=broad-except  (TFDS raises several kinds)
    raise ValueError(
        f"{builder.name} cannot be streamed: its prepared files are not in ArrayRecord "
        f"format ({str(e).splitlines()[0][:200]}). Prepare it with "
        "download_and_prepare(file_format='array_record'), or set "
        "config.data.pipeline=device.") from None
  info = builder.info
  shape = tuple(info.features["image"].shape)
  shape = shape + (1,) if len(shape) == 2 else shape
  label = info.features["label"] if "label" in info.features else None
  return StreamedDataset(_DataSource(data_source), shape, getattr(label, "num_classes", 1) or 1,
                         f"{name} prepared in {builder.data_dir}")
