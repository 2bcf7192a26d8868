"""Aligned image pairs for paired translation (pix2pix): input a[i], target b[i].

A split is an `unpaired.UnpairedDataset` with `paired=True`: domain `a`
holds the inputs and `b` the targets, image i of one the counterpart of
image i of the other.

`edges2fashion` is built offline from Fashion-MNIST: each garment's input is
its own edge map (`unpaired.edge_map`), on the training split (every image)
and on the test split. At `data.image_size` 28 the images are the dataset's;
at 32 they are padded by 2 pixels of their background (black for garments,
white for edges), so that a U-Net halves them down to 1x1; at any other size
they are resized (bilinear).

Your own pairs (`data.path`, `data.layout`):
  aligned   pix2pix's datasets as they ship: each file holds A|B side by side
            (A the left half), in subfolders train/ and test/ (else val/);
            without either, `test_percent` of train/ (by a hash of the name)
            is held out.
  folders   subfolders A/ and B/ whose files share relative names (the
            suffix may differ: A/x.jpg pairs with B/x.png); `test_percent`
            held out by a hash of the name.
Each half (or file) is resized to `image_size` x `image_size` (bicubic), as
pix2pix resizes without keeping the aspect ratio. `data.direction` BtoA
swaps input and target. Every error names the file or value, and is raised
before anything is written.

For the tasks whose inputs are made from the targets (`task` 'superres' or
'inpaint', genjax.nn.degrade), a split holds the targets only (as both
`a` and `b`): `fashion_mnist`'s garments (28: as stored, 32: padded with
black, else resized), or every image under `data.path` (recursively, each
resized to `image_size`, `test_percent` held out by a hash of the relative
name). The inputs are made per batch in the compiled step (make_draw_batch)
and per test image by `test_inputs`, from a key per image.
"""

import concurrent.futures
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageOps

from genjax import data as data_lib
from genjax import images as images_lib
from genjax.data import device, folder, unpaired
from genjax.nn import degrade

EDGES2FASHION = unpaired.EDGES2FASHION
FASHION_MNIST = "fashion_mnist"
TASKS = ("paired", *degrade.TASKS)
LAYOUTS = ("aligned", "folders")
DIRECTIONS = ("AtoB", "BtoA")


def model_size(data_config) -> int:
  """The side of the images the networks see: the crop, else the load size,
  else the stored size."""
  return data_config.crop_size or data_config.load_size or data_config.image_size


def _fit(images: np.ndarray, size: int, background: int) -> np.ndarray:
  """uint8 [N, 28, 28, C] at `size`: as they are (28), padded with
  `background` (32), else resized (bilinear)."""
  n, h, w, c = images.shape
  if size == h:
    return images
  if size == h + 4:
    return np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=background)
  out = jax.image.resize(jnp.asarray(images, jnp.float32), (n, size, size, c), "bilinear")
  return np.asarray(jnp.clip(jnp.round(out), 0, 255), np.uint8)


def _fashion_mnist(cfg, split: str):
  """Fashion-MNIST's `split`, the training split cut to `cfg.limit` images."""
  fashion = data_lib.load("fashion_mnist", split, data_dir=cfg.data_dir or None,
                          idx_dir=cfg.idx_dir or None, download=cfg.download)
  return fashion.take(cfg.limit) if split == "train" and cfg.limit else fashion


def load_edges2fashion(data_config, split: str) -> unpaired.UnpairedDataset:
  """Edge maps (input) and garments (target) of Fashion-MNIST's `split`."""
  cfg = data_config
  fashion = _fashion_mnist(cfg, split)
  size = cfg.image_size
  garments = _fit(fashion.images, size, 0)
  edges = _fit(unpaired.edge_map(fashion.images), size, 255)
  a = data_lib.ArrayDataset(edges, fashion.labels, fashion.num_classes, fashion.source)
  b = data_lib.ArrayDataset(garments, fashion.labels, fashion.num_classes, fashion.source)
  return unpaired.UnpairedDataset(a, b, paired=True,
                                  source=f"edges2fashion pairs from {fashion.source}")


def read_image(path: Path, channels: int) -> np.ndarray:
  """One file as uint8 [H, W, channels], upright by its EXIF orientation."""
  with Image.open(path) as opened:
    image = ImageOps.exif_transpose(opened)
    image = image.convert("L" if channels == 1 else "RGB")
    out = np.asarray(image, np.uint8)
  return out[..., None] if channels == 1 else out


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """uint8 [H, W, C] -> [size, size, C], bicubic, aspect ratio not kept."""
  mode = "L" if image.shape[-1] == 1 else "RGB"
  pil = Image.fromarray(image[..., 0] if mode == "L" else image, mode)
  out = np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC), np.uint8)
  return out[..., None] if mode == "L" else out


def _images(root: Path) -> list[Path]:
  return sorted(p for p in root.rglob("*") if p.suffix.lower() in folder.IMAGE_SUFFIXES
                and p.is_file())


def _first(names) -> str:
  names = sorted(map(str, names))
  return ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")


def _held_out(name: str, percent: int) -> bool:
  return zlib.crc32(name.encode("utf-8", "surrogateescape")) % 100 < percent


def _read_aligned(path: Path, size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
  image = read_image(path, channels)
  width = image.shape[1]
  if width % 2:
    raise folder.FolderError(f"{path} is {width} pixels wide, an odd width: an aligned pair "
                             "holds A and B side by side, each half the width (or set "
                             "--config.data.layout=folders for A/ and B/ subfolders).")
  half = width // 2
  return resize(image[:, :half], size), resize(image[:, half:], size)


def _read_pair(paths: tuple[Path, Path], size: int, channels: int):
  return tuple(resize(read_image(p, channels), size) for p in paths)


def _list_aligned(root: Path, split: str, percent: int) -> list[tuple[Path, ...]]:
  """The files of `split` in the aligned layout (module docstring)."""
  if not (root / "train").is_dir():
    raise folder.FolderError(f"config.data.path={str(root)!r} has no train/ subfolder: the "
                             "aligned layout is train/ and test/ (or val/) of A|B images; "
                             "for A/ and B/ subfolders set --config.data.layout=folders.")
  test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
  if split == "test" and test_dir is not None:
    files = _images(test_dir)
    where = test_dir
  else:
    where = root / "train"
    files = _images(where)
    if test_dir is None and percent:
      files = [f for f in files
               if _held_out(str(f.relative_to(where)), percent) == (split == "test")]
  if not files:
    raise folder.FolderError(f"{where} holds no {'/'.join(folder.IMAGE_SUFFIXES)} files for the "
                             f"{split} split.")
  return [(f,) for f in files]


def _list_folders(root: Path, split: str, percent: int) -> list[tuple[Path, ...]]:
  """(A file, B file) of each shared name in the folders layout, after
  checking that every name has both."""
  dirs = [root / "A", root / "B"]
  missing = [str(d) for d in dirs if not d.is_dir()]
  if missing:
    raise folder.FolderError(f"config.data.path={str(root)!r}: {', '.join(missing)} not found; "
                             "the folders layout is A/ and B/ subfolders whose files share "
                             "names (for A|B images set --config.data.layout=aligned).")
  found = []
  for d in dirs:
    files = {str(p.relative_to(d).with_suffix("")): p for p in _images(d)}
    if not files:
      raise folder.FolderError(f"{d} holds no {'/'.join(folder.IMAGE_SUFFIXES)} files.")
    found.append(files)
  a, b = found
  only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
  if only_a or only_b:
    raise folder.FolderError(
        f"Unmatched pairs under {root}: {len(only_a)} names only in A/ ({_first(only_a) or '-'}), "
        f"{len(only_b)} only in B/ ({_first(only_b) or '-'}); each A/ file needs a B/ file of "
        "the same name.")
  names = sorted(a)
  if percent:
    names = [n for n in names if _held_out(n, percent) == (split == "test")]
  if not names:
    raise folder.FolderError(f"{root}: none of its {len(a)} pairs falls in the {split} split "
                             f"(config.data.test_percent={percent}, picked by a hash of the "
                             "name); change test_percent or add pairs.")
  return [(a[n], b[n]) for n in names]


def load_folder(data_config, split: str) -> unpaired.UnpairedDataset:
  """The `split` of the pairs under `data.path` (module docstring), read whole."""
  cfg = data_config
  root = Path(cfg.path).expanduser()
  if not root.is_dir():
    raise folder.FolderError(f"config.data.path={cfg.path!r} is not a folder; point it at a "
                             "folder of pairs (train/ and test/ of A|B images, or A/ and B/).")
  lister = _list_aligned if cfg.layout == "aligned" else _list_folders
  entries = lister(root, split, cfg.test_percent)
  if split == "train" and cfg.limit:
    entries = entries[:cfg.limit]
  read = _read_aligned if cfg.layout == "aligned" else _read_pair
  with concurrent.futures.ThreadPoolExecutor(cfg.threads) as pool:
    pairs = list(pool.map(lambda e: read(e[0] if len(e) == 1 else e, cfg.image_size,
                                         cfg.channels), entries))
  a, b = (np.stack(side) for side in zip(*pairs))
  if cfg.direction == "BtoA":
    a, b = b, a
  labels = np.zeros(len(a), np.int64)
  source = f"{len(a)} {cfg.layout} pairs under {root} ({split})"
  return unpaired.UnpairedDataset(data_lib.ArrayDataset(a, labels, 1, source),
                                  data_lib.ArrayDataset(b, labels, 1, source),
                                  paired=True, source=source)


def _targets_only(images: np.ndarray, labels: np.ndarray, num_classes: int, source: str):
  ds = data_lib.ArrayDataset(images, labels, num_classes, source)
  return unpaired.UnpairedDataset(ds, ds, paired=True, source=source)


def load_fashion_targets(data_config, split: str) -> unpaired.UnpairedDataset:
  """Fashion-MNIST's garments of `split` at image_size, as targets only."""
  cfg = data_config
  fashion = _fashion_mnist(cfg, split)
  return _targets_only(_fit(fashion.images, cfg.image_size, 0), fashion.labels,
                       fashion.num_classes, f"garments of {fashion.source}")


def load_folder_targets(data_config, split: str) -> unpaired.UnpairedDataset:
  """The `split` of the images under `data.path`, resized to image_size, as targets only."""
  cfg = data_config
  root = Path(cfg.path).expanduser()
  if not root.is_dir():
    raise folder.FolderError(f"config.data.path={cfg.path!r} is not a folder; point it at a "
                             "folder of images.")
  files = [f for f in _images(root)
           if _held_out(str(f.relative_to(root)), cfg.test_percent) == (split == "test")]
  if not files:
    raise folder.FolderError(f"{root} holds no {'/'.join(folder.IMAGE_SUFFIXES)} files for the "
                             f"{split} split (config.data.test_percent={cfg.test_percent}, "
                             "picked by a hash of the name).")
  if split == "train" and cfg.limit:
    files = files[:cfg.limit]
  with concurrent.futures.ThreadPoolExecutor(cfg.threads) as pool:
    images = np.stack(list(pool.map(
        lambda f: resize(read_image(f, cfg.channels), cfg.image_size), files)))
  return _targets_only(images, np.zeros(len(images), np.int64), 1,
                       f"{len(images)} images under {root} ({split})")


def check_config(data_config, task: str = "paired") -> None:
  """Raises ValueError naming the first bad `config.data` value of a run of `task`."""
  cfg = data_config
  data_lib.check_config(cfg)
  if task != "paired":
    if cfg.name not in (FASHION_MNIST, "folder"):
      raise ValueError(f"config.data.name={cfg.name!r}: config.task={task!r} reads "
                       f"{FASHION_MNIST!r} or 'folder' (with config.data.path).")
    if cfg.name == "folder" and not cfg.get("path", ""):
      raise ValueError("config.data.path is empty: give a folder of images, e.g. "
                       "--config.data.path=~/photos.")
    if cfg.name == "folder" and cfg.channels not in (1, 3):
      raise ValueError(f"config.data.channels={cfg.channels!r}: 1 (greyscale) or 3 (RGB).")
    if cfg.name == "folder" and (not isinstance(cfg.test_percent, int)
                                 or not 0 < cfg.test_percent < 100):
      raise ValueError(f"config.data.test_percent={cfg.test_percent!r} must be an integer in "
                       "[1, 100): the held-out images are the evaluation's.")
    if not isinstance(cfg.image_size, int) or cfg.image_size < 8:
      raise ValueError(f"config.data.image_size={cfg.image_size!r} must be an integer >= 8.")
    degrade.check(task, cfg.get("scale"), cfg.get("mask"), model_size(cfg))
  elif cfg.name == EDGES2FASHION:
    if not isinstance(cfg.image_size, int) or cfg.image_size < 8:
      raise ValueError(f"config.data.image_size={cfg.image_size!r} must be an integer >= 8 "
                       "(28: Fashion-MNIST's own, 32: padded; others are resized).")
  elif cfg.name == "folder":
    if not cfg.get("path", ""):
      raise ValueError("config.data.path is empty: give a folder of pairs, e.g. "
                       "--config.data.path=~/data/facades (train/ and test/ of A|B images).")
    if cfg.layout not in LAYOUTS:
      raise ValueError(f"config.data.layout={cfg.layout!r}: choose one of {list(LAYOUTS)}.")
    if cfg.direction not in DIRECTIONS:
      raise ValueError(f"config.data.direction={cfg.direction!r}: choose one of "
                       f"{list(DIRECTIONS)}.")
    if cfg.channels not in (1, 3):
      raise ValueError(f"config.data.channels={cfg.channels!r}: 1 (greyscale) or 3 (RGB).")
    if not isinstance(cfg.test_percent, int) or not 0 <= cfg.test_percent < 100:
      raise ValueError(f"config.data.test_percent={cfg.test_percent!r} must be an integer in "
                       "[0, 100).")
    if not isinstance(cfg.image_size, int) or cfg.image_size < 8:
      raise ValueError(f"config.data.image_size={cfg.image_size!r} must be an integer >= 8.")
  else:
    raise ValueError(f"config.data.name={cfg.name!r}: pix2pix reads {EDGES2FASHION!r} or "
                     "'folder' (with config.data.path).")
  for key in ("load_size", "crop_size"):
    if not isinstance(cfg[key], int) or cfg[key] < 0:
      raise ValueError(f"config.data.{key}={cfg[key]!r} must be an integer >= 0 (0: off).")
  if cfg.crop_size and cfg.crop_size > (cfg.load_size or cfg.image_size):
    raise ValueError(f"config.data.crop_size={cfg.crop_size} is larger than the images it "
                     f"crops ({cfg.load_size or cfg.image_size} px).")


def load(data_config, split: str, task: str = "paired") -> unpaired.UnpairedDataset:
  """The `split` ('train' or 'test') of config.data's pairs (targets only
  for a task that makes its inputs)."""
  check_config(data_config, task)
  if task != "paired":
    loader = load_fashion_targets if data_config.name == FASHION_MNIST else load_folder_targets
    return loader(data_config, split)
  if data_config.name == EDGES2FASHION:
    return load_edges2fashion(data_config, split)
  return load_folder(data_config, split)


def translation_input(data_config, image_shape):
  """(prepare, how): prepare(uint8 [H, W, C]) -> uint8 [M, M, C] at `model_size`,
  resized as the run's pairs were; how: that, in words."""
  size, stored = model_size(data_config), image_shape[0]
  if data_config.name == EDGES2FASHION:
    native = 28
    first = lambda im: _fit(resize(im, native)[None], stored, 255)[0]
    how = (f"resized to {native}x{native} (bicubic)"
           + (f", padded with white to {stored}x{stored}" if stored == native + 4 else
              f", resized to {stored}x{stored}" if stored != native else "")
           + ", as edges2fashion's edge maps")
  else:
    first = lambda im: resize(im, stored)
    how = f"resized to {stored}x{stored} (bicubic, aspect ratio not kept), as the pairs were"
  if size != stored:
    how += f", then to {size}x{size}, the networks' size"
  return (lambda im: resize(first(im), size) if size != stored else first(im)), how


def to_model_size(images: jax.Array, data_config) -> jax.Array:
  """float [N, S, S, C] at the stored size -> [N, M, M, C] at `model_size` (bilinear):
  test images resized as training images are, without the random crop."""
  size = model_size(data_config)
  if images.shape[1] == size:
    return images
  return jax.image.resize(images, (images.shape[0], size, size, images.shape[-1]), "bilinear")


def stored_view(images: jax.Array, data_config) -> jax.Array:
  """[N, M, M, C] at the networks' size -> the part that holds the dataset's
  pixels: Fashion-MNIST's 28x28 centre where it was padded to 32 (the
  border is constant in input and target alike, and would flatter every
  measure), else the images unchanged."""
  padded = (data_config.name in (EDGES2FASHION, FASHION_MNIST) and data_config.image_size == 32
            and model_size(data_config) == 32 and images.shape[1] == 32)
  return images[:, 2:-2, 2:-2] if padded else images


def make_draw_batch(load_size: int = 0, crop_size: int = 0, flip: bool = False,
                    task: str = "paired", scale: int = 4, mask: str = "centre"):
  """draw(pair, step, key, batch_size, num_batches) -> {'a', 'b'}: [num_batches, B, H, W, C].

  Input and target are drawn at the same indices and get the same resize,
  crop and flip (pix2pix's aligned dataset). For 'superres' and 'inpaint'
  the targets are drawn, resized, cropped and flipped, and the inputs made
  from them (genjax.nn.degrade), the masks from the step's key.
  """

  def draw(pair: unpaired.DevicePair, step, key, batch_size: int, num_batches: int = 1):
    n = pair.a.images.shape[0]
    total = num_batches * batch_size
    idx = device.step_indices(step, n, key, total)
    b = images_lib.to_float(pair.b.images[idx])
    if task != "paired":
      if load_size or crop_size or flip:
        b = unpaired.augment(b, jax.random.fold_in(jax.random.fold_in(key, step), 1),
                             load_size, crop_size, flip)
      keys = degrade.image_keys(jax.random.fold_in(jax.random.fold_in(key, step), 2), 0, total)
      a = degrade.make_inputs(b, task, scale, mask, keys)
      shape = lambda x: x.reshape(num_batches, batch_size, *x.shape[1:])
      return {"a": shape(a), "b": shape(b)}
    a = images_lib.to_float(pair.a.images[idx])
    if load_size or crop_size or flip:
      both = unpaired.augment(jnp.concatenate([a, b], axis=-1),
                              jax.random.fold_in(jax.random.fold_in(key, step), 1),
                              load_size, crop_size, flip)
      a, b = both[..., :a.shape[-1]], both[..., a.shape[-1]:]
    shape = lambda x: x.reshape(num_batches, batch_size, *x.shape[1:])
    return {"a": shape(a), "b": shape(b)}

  return draw


EVAL_KEY = 1234  # the seed of the test inputs' masks: the same for every run and call


def test_inputs(targets: jax.Array, task: str, data_config, start: int) -> jax.Array:
  """The inputs of test targets start .. start + N - 1 [N, M, M, C] (at the
  networks' size) for `task`: the same for a given image whatever the batch."""
  keys = degrade.image_keys(jax.random.key(EVAL_KEY), start, targets.shape[0])
  return degrade.make_inputs(targets, task, data_config.get("scale", 4),
                             data_config.get("mask", "centre"), keys)
