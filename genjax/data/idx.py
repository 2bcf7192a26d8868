"""Reading MNIST-format IDX files (LeCun et al.), plain or gzipped.

Format: two zero bytes, a type byte (0x08 = uint8), the number of dimensions,
then each dimension as a big-endian int32, then the data in C order.
"""

import gzip
import os
from pathlib import Path

import numpy as np

# The four files of an MNIST-format dataset, by split and part.
IDX_FILES = {
    ("train", "image"): "train-images-idx3-ubyte",
    ("train", "label"): "train-labels-idx1-ubyte",
    ("test", "image"): "t10k-images-idx3-ubyte",
    ("test", "label"): "t10k-labels-idx1-ubyte",
}

# Where `python -m genjax.data.fetch` writes datasets and `genjax.data.load` looks.
IDX_HOME = Path(os.environ.get("GENJAX_IDX_HOME", Path.home() / ".cache" / "genjax" / "idx"))


def default_folder(name: str) -> Path:
  """The folder of `name`'s IDX files fetched by `python -m genjax.data.fetch`."""
  return IDX_HOME / name


class IdxFormatError(ValueError):
  """An IDX file is missing, truncated or not an IDX file."""


def find_idx_file(folder: os.PathLike, split: str, part: str) -> Path:
  """Returns the path of `split`'s `part` file in `folder`, .gz or not."""
  stem = IDX_FILES[(split, part)]
  for name in (stem + ".gz", stem):
    if (Path(folder) / name).is_file():
      return Path(folder) / name
  raise FileNotFoundError(
      f"{Path(folder) / stem}[.gz] not found. An MNIST-format folder holds "
      f"{', '.join(v + '.gz' for v in IDX_FILES.values())}. For Fashion-MNIST "
      "run `apt-get install dataset-fashion-mnist` (files in "
      "/usr/share/datasets/fashion-mnist) or point --config.data.idx_dir at "
      "a folder holding these files."
  )


def read_idx(path: os.PathLike) -> np.ndarray:
  """Reads one IDX file into a uint8 array of the shape its header gives."""
  path = Path(path)
  opener = gzip.open if path.suffix == ".gz" else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
    raise IdxFormatError(f"{path}: cannot be read as {'gzip' if opener is gzip.open else 'a file'} ({e}). "
                         "Replace it with an intact copy.") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
    raise IdxFormatError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()}). "
                         "Replace it with an intact copy.")
  if raw[2] != 0x08:
    raise IdxFormatError(f"{path}: IDX type 0x{raw[2]:02x} is not supported, only uint8 (0x08).")
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise IdxFormatError(f"{path}: truncated header. Replace it with an intact copy.")
  shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4"))
  expected = int(np.prod(shape)) if shape else 0
  if len(raw) - header != expected:
    raise IdxFormatError(
        f"{path}: header promises shape {shape} ({expected} bytes) but the file "
        f"holds {len(raw) - header} bytes of data; it is truncated or corrupt. "
        "Replace it with an intact copy."
    )
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: os.PathLike, array: np.ndarray) -> None:
  """Writes a uint8 array as an IDX file (gzipped if the name ends in .gz)."""
  array = np.ascontiguousarray(array, dtype=np.uint8)
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(header + array.tobytes())


def load_idx_split(folder: os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images [N, H, W, 1] uint8 and labels [N] int64 of one split."""
  images = read_idx(find_idx_file(folder, split, "image"))
  labels = read_idx(find_idx_file(folder, split, "label"))
  if images.ndim != 3:
    raise IdxFormatError(f"{find_idx_file(folder, split, 'image')}: expected [N, H, W] images, got shape {images.shape}.")
  if labels.shape != images.shape[:1]:
    raise IdxFormatError(
        f"{folder}: {split} has {images.shape[0]} images but {labels.shape[0]} labels."
    )
  return images[..., None], labels.astype(np.int64)
