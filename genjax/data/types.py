"""The types every data module shares: the two kinds of split, and what a source is asked and answers."""

import dataclasses
from typing import Optional

import numpy as np


class DatasetUnavailableError(RuntimeError):
  """No source could provide the dataset; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
  """A whole split in memory."""

  images: np.ndarray  # [N, H, W, C] uint8
  labels: np.ndarray  # [N] int64
  num_classes: int
  source: str  # where it came from, for the run's log
  class_names: tuple[str, ...] = ()  # a folder's classes (label i is class_names[i]); () if unnamed

  def __len__(self) -> int:
    return self.images.shape[0]

  def take(self, n: int) -> "ArrayDataset":
    """The first n examples (all of them when n is 0 or larger than the split)."""
    if not n or n >= len(self):
      return self
    return dataclasses.replace(self, images=self.images[:n], labels=self.labels[:n])

  def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
    return self.images[i], int(self.labels[i])

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.images.shape[1:])


@dataclasses.dataclass(frozen=True)
class StreamedDataset:
  """A split read example by example (`dataset[i] -> (uint8 [H, W, C], label)`),
  for the streaming path: nothing is held in memory."""

  examples: "object"  # len() and [i] -> (image, label)
  image_shape: tuple[int, int, int]
  num_classes: int
  source: str
  class_names: tuple[str, ...] = ()  # a folder's classes (label i is class_names[i]); () if unnamed

  def __len__(self) -> int:
    return len(self.examples)

  def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
    return self.examples[i]

  def take(self, n: int) -> "StreamedDataset":
    """The first n examples (all of them when n is 0 or larger than the split)."""
    if not n or n >= len(self):
      return self
    return dataclasses.replace(self, examples=_First(self.examples, n))


class _First:
  """The first n examples of an indexable sequence."""

  def __init__(self, examples, n: int):
    self.examples, self.n = examples, n

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, i: int):
    if not 0 <= i < self.n:
      raise IndexError(i)
    return self.examples[i]


def materialize(dataset: StreamedDataset, threads: int = 4) -> ArrayDataset:
  """A streamed split read whole into memory, `threads` examples at a time."""
  import concurrent.futures  # pylint: disable=g-import-not-at-top

  images = np.empty((len(dataset), *dataset.image_shape), np.uint8)
  labels = np.empty(len(dataset), np.int64)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    for i, (image, label) in enumerate(pool.map(dataset.__getitem__, range(len(dataset)))):
      images[i], labels[i] = image, label
  return ArrayDataset(images, labels, dataset.num_classes, dataset.source, dataset.class_names)


@dataclasses.dataclass(frozen=True)
class Request:
  """What a source is asked for: one split of a dataset by TFDS name."""

  name: str
  split: str
  data_dir: str
  idx_dir: Optional[str]
  download: bool


class NotHere(Exception):
  """A source cannot serve a request; the message says what it looked for
  (empty when the source does not apply to the dataset)."""
