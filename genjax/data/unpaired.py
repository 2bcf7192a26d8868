"""Two image domains for unpaired translation (CycleGAN).

`edges2fashion` is built offline from Fashion-MNIST: domain A holds garment
images of one half of the training split, domain B the edge maps of the
other half (a fixed split, so no image in A has its edge map in B). Its test
split is paired: the test garments and their own edge maps, so a
translation A -> B can be compared with the truth.

`cycle_gan/<name>` are TFDS's copies of the authors' datasets
(horse2zebra, monet2photo, ...), with splits trainA/trainB/testA/testB.

Your own images (`data.path`, genjax.data.folder): a folder laid out as the
authors' downloads are, with subfolders trainA, trainB and, optionally,
testA, testB; or two folders `data.path_a`, `data.path_b`. Without test
folders, each domain's test split is the `test_percent` of its images that
a hash of the path picks, as for a single folder.
"""

import copy
import dataclasses
from pathlib import Path

import jax
import numpy as np

from genjax import data as data_lib
from genjax import images as images_lib
from genjax.data import device

EDGES2FASHION = "edges2fashion"


@dataclasses.dataclass(frozen=True)
class UnpairedDataset:
  """Domains A and B of one split; `paired` when b[i] is the truth for a[i]."""

  a: "data_lib.ArrayDataset"
  b: "data_lib.ArrayDataset"
  paired: bool
  source: str

  @property
  def images(self) -> np.ndarray:  # for the image shape
    return self.a.images

  @property
  def num_classes(self) -> int:
    return self.a.num_classes

  @property
  def image_shape(self) -> tuple[int, ...]:
    return self.a.image_shape

  def __len__(self) -> int:
    return min(len(self.a), len(self.b))

  def take(self, n: int) -> "UnpairedDataset":
    """The first n images of each domain (all when n is 0 or larger)."""
    return dataclasses.replace(self, a=self.a.take(n), b=self.b.take(n))


def edge_map(images: np.ndarray, threshold: float = 0.5) -> np.ndarray:
  """Black-on-white edges of uint8 images [N, H, W, 1]: Sobel gradient
  magnitude (on [0, 1] intensities) above `threshold`."""
  x = np.pad(images[..., 0].astype(np.float32) / 255.0, ((0, 0), (1, 1), (1, 1)), mode="edge")
  gx = (x[:, :-2, 2:] + 2 * x[:, 1:-1, 2:] + x[:, 2:, 2:]
        - x[:, :-2, :-2] - 2 * x[:, 1:-1, :-2] - x[:, 2:, :-2])
  gy = (x[:, 2:, :-2] + 2 * x[:, 2:, 1:-1] + x[:, 2:, 2:]
        - x[:, :-2, :-2] - 2 * x[:, :-2, 1:-1] - x[:, :-2, 2:])
  edges = np.hypot(gx, gy) > threshold
  return np.where(edges, 0, 255).astype(np.uint8)[..., None]


def _subset(ds, idx, images=None):
  return data_lib.ArrayDataset(ds.images[idx] if images is None else images, ds.labels[idx],
                               ds.num_classes, ds.source)


def load_edges2fashion(split: str, data_config) -> UnpairedDataset:
  """A = garments, B = edge maps; train halves are disjoint, test is paired."""
  cfg = data_config
  fashion = data_lib.load("fashion_mnist", split, data_dir=cfg.data_dir or None,
                          idx_dir=cfg.idx_dir or None, download=cfg.download)
  source = f"edges2fashion from {fashion.source}"
  if split == "test":
    a = fashion
    b = _subset(fashion, np.arange(len(fashion)), edge_map(fashion.images))
    return UnpairedDataset(a, b, paired=True, source=source)
  order = np.random.default_rng(0).permutation(len(fashion))
  half = len(order) // 2
  a_idx, b_idx = np.sort(order[:half]), np.sort(order[half:])
  a = _subset(fashion, a_idx)
  b = _subset(fashion, b_idx, edge_map(fashion.images[b_idx]))
  return UnpairedDataset(a, b, paired=False, source=source)


def folder_domains(data_config) -> tuple[str, str, str, str] | None:
  """(train A, train B, test A, test B) folders of a user's images ('' where a
  test folder is absent), or None when the config names no folder."""
  path, path_a, path_b = (data_config.get(k, "") for k in ("path", "path_a", "path_b"))
  if not (path or path_a or path_b):
    return None
  if path and (path_a or path_b):
    raise ValueError("config.data.path and config.data.path_a/path_b both set: give a folder "
                     "with trainA/trainB subfolders as data.path, or two folders as "
                     "data.path_a and data.path_b.")
  if path:
    root = Path(path).expanduser()
    missing = [d for d in ("trainA", "trainB") if not (root / d).is_dir()]
    if missing:
      raise ValueError(f"config.data.path={path}: CycleGAN reads a folder with subfolders "
                       f"trainA and trainB (and optionally testA, testB), as the authors' "
                       f"datasets come; {', '.join(missing)} not found. Two folders of your "
                       "own: set config.data.path_a and config.data.path_b instead.")
    test = [str(root / d) if (root / d).is_dir() else "" for d in ("testA", "testB")]
    return str(root / "trainA"), str(root / "trainB"), *test
  if not (path_a and path_b):
    raise ValueError(f"config.data.path_a={path_a!r}, path_b={path_b!r}: CycleGAN needs both "
                     "domains' folders.")
  return path_a, path_b, "", ""


def _folder_domain(data_config, train_folder: str, test_folder: str, split: str):
  """One domain's split from its folders, read whole (CycleGAN's data live on
  the devices)."""
  cfg = copy.deepcopy(data_config)
  if split == "test" and test_folder:  # the whole test folder
    cfg.path, cfg.test_percent, split = test_folder, 0, "train"
  else:  # held out by a hash of the path when there is no test folder
    cfg.path = train_folder
    if test_folder:
      cfg.test_percent = 0
  dataset = data_lib.folder_split(cfg, split)
  if cfg.path == test_folder:
    dataset = dataclasses.replace(dataset, source=dataset.source.replace("train split",
                                                                         "test folder"))
  return data_lib.materialize(dataset, threads=cfg.get("threads", 4))


def load(data_config, split: str) -> UnpairedDataset:
  """The `split` ('train' or 'test') of config.data.name's two domains."""
  data_lib.check_config(data_config)
  folders = folder_domains(data_config)
  if folders is not None:
    train_a, train_b, test_a, test_b = folders
    a = _folder_domain(data_config, train_a, test_a, split)
    b = _folder_domain(data_config, train_b, test_b, split)
    return UnpairedDataset(a, b, paired=False, source=f"A: {a.source}; B: {b.source}")
  name = data_config.name
  if name == "folder":
    raise ValueError("config.data.path is empty: give a folder with trainA/ and trainB/ "
                     "subfolders as --config.data.path, or two folders as "
                     "--config.data.path_a and --config.data.path_b.")
  if name == EDGES2FASHION:
    return load_edges2fashion(split, data_config)
  if not name.startswith("cycle_gan/"):
    raise ValueError(f"config.data.name={name!r}: CycleGAN takes {EDGES2FASHION!r} or a TFDS "
                     "'cycle_gan/<name>' dataset (e.g. 'cycle_gan/horse2zebra').")
  kw = dict(data_dir=data_config.data_dir or None, download=data_config.download)
  a = data_lib.load(name, f"{split}A", **kw)
  b = data_lib.load(name, f"{split}B", **kw)
  return UnpairedDataset(a, b, paired=False, source=a.source)


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class DevicePair:
  a: device.DeviceData
  b: device.DeviceData


def to_device(dataset: UnpairedDataset, mesh) -> DevicePair:
  return DevicePair(device.to_device(dataset.a.images, dataset.a.labels, mesh),
                    device.to_device(dataset.b.images, dataset.b.labels, mesh))


def augment(images: jax.Array, key: jax.Array, load_size: int, crop_size: int,
            flip: bool = True) -> jax.Array:
  """The authors' 'resize_and_crop' + flip: resize [B, H, W, C] to load_size,
  crop a random crop_size square per image, flip half of them left-right."""
  b, _, _, c = images.shape
  if load_size:
    images = jax.image.resize(images, (b, load_size, load_size, c), method="bilinear")
  return images_lib.random_crop_flip(images, key, crop_size, flip)


def make_draw_batch(load_size: int = 0, crop_size: int = 0, flip: bool = False):
  """draw(pair, step, key, batch_size, num_batches) -> {'a', 'b'}: [num_batches, B, H, W, C].

  The two domains are drawn from independent permutations (separate keys),
  so which A and B images meet in a batch is random.
  """

  def draw(pair: DevicePair, step, key, batch_size: int, num_batches: int = 1):
    out = {}
    for i, name in enumerate(("a", "b")):
      k = jax.random.fold_in(key, i)
      x = device.draw_batch(getattr(pair, name), step, k, batch_size, num_batches)["image"]
      if load_size or crop_size or flip:
        flat = x.reshape(-1, *x.shape[2:])
        flat = augment(flat, jax.random.fold_in(jax.random.fold_in(k, step), 1), load_size,
                       crop_size, flip)
        x = flat.reshape(num_batches, batch_size, *flat.shape[1:])
      out[name] = x
    return out

  return draw
