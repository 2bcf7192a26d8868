"""A folder of the user's own images as a dataset.

Every JPEG, PNG and WebP file under the folder, recursively, in the sorted
order of their paths relative to it. Each is converted to the configured
channels (1: greyscale, 3: RGB), resized so that its shorter side is
`image_size` and centre-cropped to a square (`PIL.ImageOps.fit`, bicubic).
With `labels="folders"` the first-level subfolder of each image is its class
(classes in sorted order of the subfolder names), for conditional models.

Unreadable files (truncated, not an image) are found by a scan that decodes
every file once, in threads, and are skipped: the run prints the first few
names and the count, and records both in `run.json`; a folder in which no
file is readable is an error. The scan's result is kept in
`~/.cache/genjax/folders/` ($GENJAX_CACHE) under a hash of the folder's file
list (names, sizes, modification times), so a folder is scanned once until
it changes.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
IMAGE_SIZES = (28, 32, 64, 128, 256)  # sizes the GAN generators are built for


class FolderError(ValueError):
  """The folder cannot be used; the message names it and the fix."""


def cache_dir() -> Path:
  return Path(os.environ.get("GENJAX_CACHE", Path.home() / ".cache" / "genjax")) / "folders"


def decode(path, image_size: int, channels: int) -> np.ndarray:
  """One image file as uint8 [image_size, image_size, channels]."""
  with Image.open(path) as image:
    image = image.convert("L" if channels == 1 else "RGB")
    image = ImageOps.fit(image, (image_size, image_size), Image.Resampling.BICUBIC)
    out = np.asarray(image, np.uint8)
  return out[..., None] if channels == 1 else out


@dataclasses.dataclass(frozen=True)
class ImageFolder:
  """The readable images of a folder: paths, labels and how to decode them.

  `len(folder)` images; `folder[i]` is (uint8 [S, S, C], label), decoded on
  the call, so that a pipeline can read any image in any order.
  """

  root: Path
  files: tuple[str, ...]  # relative paths of the readable images, sorted
  labels: np.ndarray  # [N] int32
  class_names: tuple[str, ...]
  image_size: int
  channels: int
  unreadable: tuple[str, ...]  # relative paths of the files skipped

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
    return decode(self.root / self.files[i], self.image_size, self.channels), int(self.labels[i])

  @property
  def num_classes(self) -> int:
    return max(len(self.class_names), 1)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.image_size, self.image_size, self.channels)

  @property
  def source(self) -> str:
    skipped = f", {len(self.unreadable)} unreadable files skipped" if self.unreadable else ""
    return f"image folder {self.root} ({len(self)} images{skipped})"


def _list_images(root: Path) -> list[Path]:
  return sorted(p for p in root.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _scan_key(root: Path, files: list[Path]) -> str:
  digest = hashlib.sha256(str(root.resolve()).encode())
  for p in files:
    st = p.stat()
    digest.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  return digest.hexdigest()[:24]


def _readable(path: Path) -> bool:
  try:
    with Image.open(path) as image:
      image.load()  # decodes the whole file: a truncated one fails here
    return True
  except Exception:  # pylint: disable=broad-except  (PIL raises many kinds)
    return False


def _scan(root: Path, files: list[Path], threads: int, log) -> list[bool]:
  """Which files decode, cached per content of the folder's file list."""
  path = cache_dir() / f"{_scan_key(root, files)}.json"
  if path.exists():
    return json.loads(path.read_text())["readable"]
  log(f"{root}: checking that each of {len(files)} images decodes (once; cached in {path}).")
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    readable = list(pool.map(_readable, files))
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(f".{os.getpid()}.tmp")
  tmp.write_text(json.dumps({"root": str(root), "readable": readable}))
  tmp.replace(path)
  return readable


def open_folder(path: str, image_size: int, channels: int, labels: str = "none",
                threads: int = 8, log=None) -> ImageFolder:
  """The readable images under `path` (see the module docstring).

  Args:
    path: a folder of images, searched recursively.
    image_size: the side of the square images out; one of IMAGE_SIZES.
    channels: 1 (greyscale) or 3 (RGB).
    labels: "none" (every image class 0) or "folders" (first-level subfolders).
    threads: decoding threads of the scan.
    log: where messages go (default: stderr).
  """
  log = log or (lambda m: print(m, file=sys.stderr))
  root = Path(path).expanduser()
  if not root.exists():
    raise FolderError(f"data.path={path!r} does not exist; point it at a folder of images.")
  if not root.is_dir():
    raise FolderError(f"data.path={path!r} is a file, not a folder of images.")
  if image_size not in IMAGE_SIZES:
    raise FolderError(f"data.image_size={image_size!r}: choose one of {list(IMAGE_SIZES)}.")
  if channels not in (1, 3):
    raise FolderError(f"data.channels={channels!r}: 1 (greyscale) or 3 (RGB).")
  if labels not in ("none", "folders"):
    raise FolderError(f"data.labels={labels!r}: 'none' or 'folders' (first-level subfolders).")
  files = _list_images(root)
  if not files:
    raise FolderError(f"data.path={path!r} holds no {'/'.join(IMAGE_SUFFIXES)} files "
                      "(searched recursively).")
  readable = _scan(root, files, threads, log)
  good = [f for f, ok in zip(files, readable) if ok]
  bad = [str(f.relative_to(root)) for f, ok in zip(files, readable) if not ok]
  if not good:
    raise FolderError(f"None of the {len(files)} image files under {path!r} can be decoded "
                      f"(first: {bad[0]}).")
  if bad:
    log(f"WARNING: {len(bad)} of {len(files)} files under {root} cannot be decoded and are "
        f"skipped: {', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}.")
  relative = [f.relative_to(root) for f in good]
  if labels == "folders":
    if any(len(r.parts) < 2 for r in relative):
      loose = next(str(r) for r in relative if len(r.parts) < 2)
      raise FolderError(f"data.labels='folders' needs every image in a subfolder of {path!r} "
                        f"(its class); {loose} is not.")
    class_names = tuple(sorted({r.parts[0] for r in relative}))
    index = {name: i for i, name in enumerate(class_names)}
    label_array = np.asarray([index[r.parts[0]] for r in relative], np.int32)
  else:
    class_names, label_array = (), np.zeros(len(relative), np.int32)
  return ImageFolder(root, tuple(str(r) for r in relative), label_array, class_names,
                     image_size, channels, tuple(bad))
