"""Reading MNIST-format IDX files (LeCun et al.), plain or gzipped.

Format: two zero bytes, a type byte (0x08 = uint8), the number of dimensions,
then each dimension as a big-endian int32, then the data in C order.
"""

import gzip
import math
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

# Every MNIST-format dataset genjax reads (mnist, fashion_mnist) has 28x28
# grey images in ten classes; the `local_idx` TFDS builder, the committed
# feature networks and the experiments' networks are all built for that.
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

# Where `python -m genjax.data.fetch` writes datasets and `genjax.data.load` looks.
IDX_HOME = Path(os.environ.get("GENJAX_IDX_HOME", Path.home() / ".cache" / "genjax" / "idx"))


def default_folder(name: str) -> Path:
  """The folder of `name`'s IDX files fetched by `python -m genjax.data.fetch`."""
  return IDX_HOME / name


class IdxFormatError(ValueError):
  """An IDX file is truncated, corrupt, not an IDX file, or holds data that
  is not an MNIST-format split; the message names the file and the fix."""


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
  if ndim == 0:
    raise IdxFormatError(f"{path}: the IDX header gives no dimensions; the file is corrupt. "
                         "Replace it with an intact copy.")
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise IdxFormatError(f"{path}: truncated header. Replace it with an intact copy.")
  shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4"))
  if any(d < 0 for d in shape):
    raise IdxFormatError(
        f"{path}: the IDX header gives negative dimensions {shape}; sizes cannot be negative, "
        "so the header is corrupt. Replace the file with an intact copy."
    )
  # Python integers: a product of large int32 dimensions must not wrap around.
  expected = math.prod(shape)
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
  """Images [N, H, W, 1] uint8 and labels [N] int64 of one split.

  Checks everything the `local_idx` TFDS builder and the experiments rely on
  (28x28 images, labels in 0..9, one label per image) so that a bad file is
  one IdxFormatError naming it, before anything is prepared or trained.
  """
  image_path = find_idx_file(folder, split, "image")
  label_path = find_idx_file(folder, split, "label")
  images = read_idx(image_path)
  labels = read_idx(label_path)
  if images.ndim != 3:
    raise IdxFormatError(
        f"{image_path}: expected images of shape [N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}] (an "
        f"idx3 file), got shape {images.shape}. Replace it with the dataset's own "
        f"{IDX_FILES[(split, 'image')]}.gz."
    )
  if images.shape[1:] != IMAGE_SHAPE:
    raise IdxFormatError(
        f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, but MNIST-format "
        f"datasets (mnist, fashion_mnist) are {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}. Use the "
        f"dataset's own files, or resize the images to {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} and "
        "write them with genjax.data.idx.write_idx."
    )
  if labels.ndim != 1:
    raise IdxFormatError(
        f"{label_path}: expected labels of shape [N] (an idx1 file), got shape {labels.shape}. "
        f"Replace it with the dataset's own {IDX_FILES[(split, 'label')]}.gz."
    )
  if len(images) == 0:
    raise IdxFormatError(f"{image_path}: holds no images. Replace it with an intact copy.")
  if len(labels) != len(images):
    raise IdxFormatError(
        f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} "
        f"labels; the {split} split needs one label per image. Use an images file and a "
        "labels file of the same dataset release."
    )
  bad = np.flatnonzero(labels >= NUM_CLASSES)
  if bad.size:
    first = int(bad[0])
    raise IdxFormatError(
        f"{label_path}: label {int(labels[first])} at index {first} is not a class "
        f"(0..{NUM_CLASSES - 1}); {bad.size} of {len(labels)} labels are out of range. "
        "Replace it with the dataset's own labels file."
    )
  return images[..., None], labels.astype(np.int64)
