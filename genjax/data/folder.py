"""A folder of the user's own images as a dataset.

Every JPEG, PNG and WebP file under the folder, recursively, in the sorted
order of their paths relative to it. Each is turned upright by its EXIF
orientation; an image with transparency (RGBA, LA, or a palette or tRNS
transparent colour) is composited on `background` (white unless set;
`None` drops the alpha channel and keeps each pixel's stored colour, PIL's
`convert`); it is converted to the configured channels (1: greyscale, 3:
RGB; 16-bit greyscale PNGs scaled to 8 bits as round(v / 257), 16-bit
RGB(A) by PIL's high byte), resized so that its shorter side is `image_size` and
centre-cropped to a square (`PIL.ImageOps.fit`, bicubic). With
`labels="folders"` the first-level subfolder of each image is its class
(classes in sorted order of the subfolder names), for conditional models.

Decoding is bounded: a JPEG is decoded at the smallest of 1/1, 1/2, 1/4, 1/8
scale that keeps both sides >= `image_size` (`Image.draft`); any image
that would still be more than `max_megapixels` ($GENJAX_MAX_MEGAPIXELS,
default 40) once decoded is skipped without being decoded.

Files that cannot be used are skipped, and the run prints one line per kind
with the count and the first few names, and records the counts in
`run.json`: files that do not decode (truncated, not an image), found by a
scan that decodes every file once, in threads; files too large to decode;
names that are not UTF-8 (named by their bytes). It says, in one line each,
how many images have transparent pixels (and the background they are
composited on), and how many greyscale images are converted to RGB (or
colour images to greyscale) for the configured channels. A folder in which
no file is usable is an error. The scan's result is kept in `~/.cache/genjax/folders/`
($GENJAX_CACHE) under a hash of the folder's file list (names, sizes,
modification times), so a folder is scanned once until it changes; a cache
file that is unreadable or does not list the folder's files is rebuilt.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
IMAGE_SIZES = (28, 32, 64, 128, 256)  # sizes the GAN generators are built for
# Images larger than this once decoded are skipped: a 40 MP RGBA PNG decodes
# to 160 MB per reader thread. $GENJAX_MAX_MEGAPIXELS sets another bound.
MAX_MEGAPIXELS = 40
_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_DRAFTED = ("JPEG", "MPO")  # formats PIL decodes at a reduced scale (Image.draft)
_CACHE_VERSION = 3
_GREY_MODES = ("1", "L", "LA", "La", "I", "F", *_SIXTEEN_BIT_GREY)
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
_STATUSES = ("ok", "unreadable", "unchecked")  # unchecked: too large to decode when scanned


class FolderError(ValueError):
  """The folder cannot be used; the message names it and the fix."""


def cache_dir() -> Path:
  return Path(os.environ.get("GENJAX_CACHE", Path.home() / ".cache" / "genjax")) / "folders"


def max_pixels() -> int:
  """The decoding bound in pixels: $GENJAX_MAX_MEGAPIXELS, else MAX_MEGAPIXELS."""
  text = os.environ.get("GENJAX_MAX_MEGAPIXELS", "")
  if not text:
    return MAX_MEGAPIXELS * 10**6
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not (math.isfinite(value) and value > 0):
    raise FolderError(f"GENJAX_MAX_MEGAPIXELS={text!r} must be a positive number of "
                      f"megapixels (default {MAX_MEGAPIXELS}); unset it for the default.")
  return int(value * 10**6)


def parse_background(text: str) -> tuple[int, int, int] | None:
  """'white', 'black' or '#rrggbb' as an RGB triple; 'none' as None (alpha dropped)."""
  value = str(text).strip().lower()
  if value == "none":
    return None
  if value in BACKGROUNDS:
    return BACKGROUNDS[value]
  if len(value) == 7 and value[0] == "#":
    try:
      return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))
    except ValueError:
      pass
  raise FolderError(f"data.background={text!r}: 'white', 'black', '#rrggbb' (e.g. '#808080') "
                    "or 'none' (the alpha channel dropped, each pixel's stored colour kept).")


def has_alpha(image: Image.Image) -> bool:
  """Whether `image` (as opened) carries transparency: an alpha band or a transparent colour."""
  return "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info


def is_transparent(image: Image.Image) -> bool:
  """Whether any pixel of the loaded `image` is less than opaque."""
  if not has_alpha(image):
    return False
  if "A" not in image.getbands():
    image = image.convert("RGBA")
  return image.getchannel("A").getextrema()[0] < 255


def flatten(image: Image.Image, background: tuple[int, int, int] | None) -> Image.Image:
  """`image` composited on `background` (opaque RGB) when it carries transparency;
  as it is otherwise, or when `background` is None."""
  if background is None or not has_alpha(image):
    return image
  rgba = image.convert("RGBA")
  return Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)),
                               rgba).convert("RGB")


def decoded_pixels(width: int, height: int, image_format: str, image_size: int) -> float:
  """Pixels of an image of that size and format once decoded for `image_size`
  (a JPEG at the scale `Image.draft` picks); inf when its size is unknown."""
  if width < 0:
    return math.inf
  scale = 1
  if image_format in _DRAFTED:
    fits = min(width // image_size, height // image_size)
    scale = next(s for s in (8, 4, 2, 1) if fits >= s or s == 1)
  return -(-width // scale) * -(-height // scale)


def _draft(image: Image.Image, image_size: int) -> Image.Image:
  """`image` (opened, not loaded) set to decode a JPEG at a reduced scale."""
  if image.format in _DRAFTED:
    image.draft(None, (image_size, image_size))
  return image


_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the transpose that undoes it


def _upright_8bit(image: Image.Image) -> Image.Image:
  """`image` loaded, 16-bit greyscale scaled to 8 bits (round(v / 257)), and
  turned upright by its EXIF orientation (PIL itself reads 16-bit RGB(A) as
  their high bytes)."""
  image.load()
  try:
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
  except Exception:  # pylint: disable=broad-except  (a damaged EXIF block: no orientation)
    orientation = 1
  if image.mode in _SIXTEEN_BIT_GREY:
    wide = np.asarray(image)
    if wide.dtype.kind == "i":  # mode I (32-bit): read as 16-bit values
      wide = np.clip(wide, 0, 65535)
    image = Image.fromarray(((wide.astype(np.uint32) + 128) // 257).astype(np.uint8), "L")
  if orientation in _UPRIGHT:
    image = image.transpose(_UPRIGHT[orientation])
  return image


def decode(path, image_size: int, channels: int, limit: int | None = None,
           background: tuple[int, int, int] | None = BACKGROUNDS["white"]) -> np.ndarray:
  """One image file as uint8 [image_size, image_size, channels], composited on
  `background` where transparent; FolderError when it would be more than
  `limit` pixels decoded."""
  with Image.open(path) as opened:
    _draft(opened, image_size)
    if limit and opened.width * opened.height > limit:
      raise FolderError(f"{path} is {opened.width}x{opened.height} once decoded, more than "
                        f"{limit / 10**6:g} megapixels; shrink it, or raise "
                        "$GENJAX_MAX_MEGAPIXELS.")
    image, mode = flatten(_upright_8bit(opened), background), "L" if channels == 1 else "RGB"
    image = image if image.mode == mode else image.convert(mode)  # no copy when it is
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
  unreadable: tuple[str, ...]  # relative paths of the files that do not decode
  too_large: tuple[str, ...] = ()  # relative paths of the files above the pixel bound
  bad_names: tuple[bytes, ...] = ()  # relative paths, as bytes, that are not UTF-8
  limit: int | None = None  # the pixel bound decoding was checked against
  background: tuple[int, int, int] | None = BACKGROUNDS["white"]  # None: alpha dropped

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
    return (decode(self.root / self.files[i], self.image_size, self.channels, self.limit,
                   self.background), int(self.labels[i]))

  @property
  def num_classes(self) -> int:
    return max(len(self.class_names), 1)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.image_size, self.image_size, self.channels)

  @property
  def source(self) -> str:
    skipped = "".join(f", {len(files)} {kind} skipped" for files, kind in (
        (self.unreadable, "unreadable files"), (self.too_large, "too large files"),
        (self.bad_names, "non-UTF-8 file names")) if files)
    return f"image folder {self.root} ({len(self)} images{skipped})"


def _list_images(root: Path) -> tuple[list[Path], list[bytes]]:
  """The image files under `root`, sorted, and the relative paths (as bytes)
  of those whose names are not UTF-8."""
  files, bad_names = [], []
  for p in root.rglob("*"):
    if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
      continue
    try:
      str(p.relative_to(root)).encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as surrogates
      bad_names.append(os.fsencode(p.relative_to(root)))
      continue
    files.append(p)
  return sorted(files), sorted(bad_names)


def _listing(root: Path, files: list[Path]) -> list[list]:
  """[relative path, size, mtime_ns] of each file: what the scan cache must match."""
  out = []
  for p in files:
    st = p.stat()
    out.append([str(p.relative_to(root)), st.st_size, st.st_mtime_ns])
  return out


def _inspect(path: Path, image_size: int, limit: int) -> list:
  """[status, width, height, format, mode, transparent] of one file, decoding
  it only when it is within `limit` pixels decoded (status 'unchecked' when it
  is not)."""
  try:
    with Image.open(path) as image:
      size, image_format, mode = list(image.size), image.format or "", image.mode
      _draft(image, image_size)
      if image.width * image.height > limit:
        return ["unchecked", *size, image_format, mode, has_alpha(image)]
      image.load()  # decodes the whole file: a truncated one fails here
      return ["ok", *size, image_format, mode, is_transparent(image)]
  except Image.DecompressionBombError:  # above PIL's own bound: size not given
    return ["unchecked", -1, -1, "", "", False]
  except Exception:  # pylint: disable=broad-except  (PIL raises many kinds)
    return ["unreadable", 0, 0, "", "", False]


def _read_cache(path: Path, listing: list[list]) -> tuple[list[list] | None, str]:
  """The cached [status, width, height, format, mode, transparent] of each
  file, or None and why not."""
  try:
    cached = json.loads(path.read_text())
    if cached.get("version") != _CACHE_VERSION:
      return None, "is of another format"
    entries = cached["files"]
    if len(entries) != len(listing):
      return None, f"lists {len(entries)} files where the folder holds {len(listing)}"
    out = []
    for entry, (name, size, mtime) in zip(entries, listing):
      if entry[:3] != [name, size, mtime]:
        return None, f"does not list {name} as the folder holds it"
      status, width, height, image_format, mode, transparent = entry[3:]
      if status not in _STATUSES or not all(isinstance(v, int) for v in (width, height)) \
          or not all(isinstance(v, str) for v in (image_format, mode)) \
          or not isinstance(transparent, bool):
        return None, f"has a malformed entry for {name}"
      out.append([status, width, height, image_format, mode, transparent])
    return out, ""
  except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
    return None, f"is unreadable ({type(e).__name__})"


def _write_cache(path: Path, root: Path, listing: list[list], checks: list[list]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(f".{os.getpid()}.tmp")
  tmp.write_text(json.dumps({"version": _CACHE_VERSION, "root": str(root),
                             "files": [a + b for a, b in zip(listing, checks)]}))
  tmp.replace(path)


def _check(paths: list[Path], image_size: int, limit: int, threads: int) -> list[list]:
  with warnings.catch_warnings():  # PIL's DecompressionBombWarning: ours is the lower bound
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
      return list(pool.map(lambda p: _inspect(p, image_size, limit), paths))


def _scan(root: Path, files: list[Path], image_size: int, limit: int, threads: int,
          log) -> tuple[list[str], list[str], list[bool]]:
  """Each file's status for `image_size` and `limit` ('ok', 'unreadable' or
  'large'), PIL mode and whether it has transparent pixels; the decoding is
  cached per content of the folder's file list."""
  listing = _listing(root, files)
  key = hashlib.sha256(str(root.resolve()).encode())
  for name, size, mtime in listing:
    key.update(f"{name}\0{size}\0{mtime}\n".encode())
  path = cache_dir() / f"{key.hexdigest()[:24]}.json"
  checks, why = _read_cache(path, listing) if path.exists() else (None, "")
  if checks is None:
    log(f"{root}: the scan cache {path} {why}; checking again that each of {len(files)} "
        "images decodes." if why else f"{root}: checking that each of {len(files)} images "
        f"decodes (once; cached in {path}).")
    checks = _check(files, image_size, limit, threads)
    _write_cache(path, root, listing, checks)
  large = [decoded_pixels(w, h, f, image_size) > limit for _, w, h, f, *_ in checks]
  again = [i for i, (c, big) in enumerate(zip(checks, large)) if c[0] == "unchecked" and not big]
  if again:  # too large at an earlier scan's bound, within this one's
    for i, result in zip(again, _check([files[i] for i in again], image_size, limit, threads)):
      checks[i] = result
    _write_cache(path, root, listing, checks)
  status = ["large" if big or c[0] == "unchecked" else c[0] for c, big in zip(checks, large)]
  return status, [c[4] for c in checks], [c[5] for c in checks]


def _names(items) -> str:
  return ", ".join(map(str, items[:5])) + (", ..." if len(items) > 5 else "")


def _conversion_notes(root: Path, modes: list[str], transparent: list[bool], channels: int,
                      background: str) -> list[str]:
  """The lines that say how many of the used images are composited and converted."""
  total, notes = len(modes), []
  if any(transparent):
    how = (f"composited on {background} (data.background; 'none' drops the alpha)"
           if parse_background(background) else "kept at their stored colours, the alpha "
           "dropped (data.background='none'; 'white', 'black' or '#rrggbb' composites)")
    notes.append(f"{root}: {sum(transparent)} of {total} images have transparent pixels, "
                 f"{how}.")
  grey = sum(m in _GREY_MODES for m in modes)
  if channels == 3 and grey:
    notes.append(f"{root}: {grey} of {total} images are greyscale, converted to RGB "
                 "(data.channels=3).")
  if channels == 1 and total - grey:
    notes.append(f"{root}: {total - grey} of {total} images are colour, converted to "
                 "greyscale (data.channels=1).")
  return notes


def open_folder(path: str, image_size: int, channels: int, labels: str = "none",
                threads: int = 8, log=None, background: str = "white") -> ImageFolder:
  """The readable images under `path` (see the module docstring).

  Args:
    path: a folder of images, searched recursively.
    image_size: the side of the square images out; one of IMAGE_SIZES.
    channels: 1 (greyscale) or 3 (RGB).
    labels: "none" (every image class 0) or "folders" (first-level subfolders).
    threads: decoding threads of the scan.
    log: where messages go (default: stderr).
    background: what transparent pixels are composited on: 'white', 'black',
      '#rrggbb', or 'none' (the alpha dropped, the stored colours kept).

  The pixel bound is $GENJAX_MAX_MEGAPIXELS, else MAX_MEGAPIXELS.
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
  if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
    raise FolderError(f"threads={threads!r} must be an integer >= 1 (the scan's decoding "
                      "threads).")
  limit, colour = max_pixels(), parse_background(background)
  files, bad_names = _list_images(root)
  if bad_names:
    log(f"WARNING: {len(bad_names)} files under {root} have names that are not UTF-8 and are "
        f"skipped (rename them): {_names(bad_names)}.")
  if not files:
    raise FolderError(f"data.path={path!r} holds no {'/'.join(IMAGE_SUFFIXES)} files "
                      "(searched recursively)" + (f", none with a UTF-8 name (first: "
                                                  f"{bad_names[0]!r})." if bad_names else "."))
  status, modes, transparent = _scan(root, files, image_size, limit, threads, log)
  kinds = {k: [str(f.relative_to(root)) for f, s in zip(files, status) if s == k]
           for k in ("ok", "unreadable", "large")}
  bad, large = kinds["unreadable"], kinds["large"]
  if large:
    log(f"WARNING: {len(large)} of {len(files)} files under {root} would be more than "
        f"{limit / 10**6:g} megapixels decoded and are skipped, undecoded (shrink them, or "
        f"raise $GENJAX_MAX_MEGAPIXELS): {_names(large)}.")
  if bad:
    log(f"WARNING: {len(bad)} of {len(files)} files under {root} cannot be decoded and are "
        f"skipped: {_names(bad)}.")
  good = [root / f for f in kinds["ok"]]
  used = [i for i, s in enumerate(status) if s == "ok"]
  for note in _conversion_notes(root, [modes[i] for i in used], [transparent[i] for i in used],
                                channels, background):
    log(note)
  if not good:
    first = (bad or large)[0]
    raise FolderError(f"None of the {len(files)} image files under {path!r} can be decoded "
                      f"(first: {first}{' is too large' if first in large else ''}).")
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
                     image_size, channels, tuple(bad), tuple(large), tuple(bad_names), limit,
                     colour)
