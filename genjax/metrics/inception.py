"""The standard Inception FID, from a local copy of the weights the PyTorch FID tools use.

Published FIDs are computed in the 2048-unit pool3 features of the 2015
TensorFlow Inception-v3 graph. pytorch-fid ports those weights to a PyTorch
file, `pt_inception-2015-12-05-6726825d.pth` (the network differs slightly from
torchvision's Inception-v3: average pools that do not count padding, a max
pool in the last block). This module is that network in Flax, loading that
file without PyTorch (`genjax.metrics.torch_file`, once the file's SHA-256
is checked).

genjax never downloads the file. `find_weights()` looks, in order, at
`$GENJAX_INCEPTION_WEIGHTS` and at torch.hub's cache (`$TORCH_HOME/hub/checkpoints/`,
by default `~/.cache/torch/hub/checkpoints/`), where pytorch-fid keeps it once
it has run on a machine; `python -m genjax.evaluate
--inception_weights PATH` names a file directly. The file's SHA-256 must be
pytorch-fid's (`SHA256`, whose first eight digits are the 6726825d in its
name, all torch.hub checks); any other file is refused, before it is parsed.
`check_weights_file()` does just that check, for a command line to call at
start-up. Without the file the Inception FID is reported as unavailable.

Images go in as pytorch-fid feeds them: [0, 1] RGB (grey images repeated
over three channels), resized to 299 x 299 bilinearly (half-pixel centres,
no antialiasing), then scaled to [-1, 1].
"""

import functools
import hashlib
import os
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import images as images_lib
from genjax.metrics import torch_file

FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"
# The SHA-256 of pytorch-fid's release file, as other FID code pins it next to
# its download URL (e.g. snap-research/discoscene, models/inception_model.py);
# its first 8 digits are the 6726825d in the file's name.
SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
ENV_VAR = "GENJAX_INCEPTION_WEIGHTS"


def torch_hub_dir() -> Path:
  """Where torch.hub (and so pytorch-fid) keeps downloaded weights."""
  if os.environ.get("TORCH_HOME"):
    return Path(os.environ["TORCH_HOME"]).expanduser() / "hub" / "checkpoints"
  cache = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
  return cache / "torch" / "hub" / "checkpoints"

FEATURE_DIM = 2048


class InceptionUnavailable(RuntimeError):
  """No usable Inception weights; the message says where they were looked for."""


# --- the network -------------------------------------------------------------


class BasicConv(nn.Module):
  """Convolution without bias, batch norm (eps 1e-3, running statistics), ReLU."""

  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    pad = [(self.padding[0], self.padding[0]), (self.padding[1], self.padding[1])]
    x = nn.Conv(self.features, self.kernel, (self.strides, self.strides), pad, use_bias=False,
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x):  # TensorFlow's: padding not counted in the mean
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, (1, 1), name="branch1x1")(x)
    b5 = BasicConv(48, (1, 1), name="branch5x5_1")(x)
    b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), strides=2, name="branch3x3")(x)
    bd = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, (3, 3), strides=2, name="branch3x3dbl_3")(bd)
    bp = nn.max_pool(x, (3, 3), (2, 2))
    return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    b1 = BasicConv(192, (1, 1), name="branch1x1")(x)
    b7 = BasicConv(c, (1, 1), name="branch7x7_1")(x)
    b7 = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c, (1, 1), name="branch7x7dbl_1")(x)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, (1, 1), name="branch3x3_1")(x)
    b3 = BasicConv(320, (3, 3), strides=2, name="branch3x3_2")(b3)
    b7 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, (3, 3), strides=2, name="branch7x7x3_4")(b7)
    bp = nn.max_pool(x, (3, 3), (2, 2))
    return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionE(nn.Module):
  pool: str  # "avg" (Mixed_7b) or "max" (Mixed_7c, as in the FID graph)

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, (1, 1), name="branch1x1")(x)
    b3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = BasicConv(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], -1)
    if self.pool == "avg":
      bp = _avg_pool_3x3(x)
    else:
      bp = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    bp = BasicConv(192, (1, 1), name="branch_pool")(bp)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """Inception-v3 up to pool3: [B, 299, 299, 3] in [-1, 1] -> [B, 2048]."""

  @nn.compact
  def __call__(self, x):
    x = BasicConv(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = nn.max_pool(x, (3, 3), (2, 2))
    x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = nn.max_pool(x, (3, 3), (2, 2))
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = InceptionC(128, name="Mixed_6b")(x)
    x = InceptionC(160, name="Mixed_6c")(x)
    x = InceptionC(160, name="Mixed_6d")(x)
    x = InceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE("avg", name="Mixed_7b")(x)
    x = InceptionE("max", name="Mixed_7c")(x)
    return x.mean(axis=(1, 2))


def preprocess(images) -> jax.Array:
  """uint8 [B, H, W, C] (C = 1 or 3) -> [B, 299, 299, 3] in [-1, 1], as pytorch-fid."""
  x = jnp.asarray(images, jnp.float32) / 255.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  x = jax.image.resize(x, (x.shape[0], 299, 299, 3), "bilinear", antialias=False)
  return 2.0 * x - 1.0


# --- weights -----------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _variable_shapes():
  """The network's variables as shapes (nothing computed)."""
  return jax.eval_shape(FIDInceptionV3().init, jax.random.key(0), jnp.zeros((1, 299, 299, 3)))


def torch_shapes() -> dict[str, tuple[int, ...]]:
  """{PyTorch state-dict name: shape} of every tensor the network needs."""
  variables = _variable_shapes()
  shapes = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    keys = [p.key for p in path]
    name, shape = _torch_name(keys), leaf.shape
    if keys[-1] == "kernel":  # HWIO -> OIHW
      shape = (shape[3], shape[2], shape[0], shape[1])
    shapes[name] = tuple(shape)
  return shapes


_FLAX_TO_TORCH = {"kernel": "weight", "scale": "weight", "bias": "bias",
                  "mean": "running_mean", "var": "running_var"}


def _torch_name(keys) -> str:
  return ".".join([*keys[1:-1], _FLAX_TO_TORCH[keys[-1]]])


def from_torch(state: dict) -> dict:
  """Flax variables of FIDInceptionV3 from pytorch-fid's state dict (numpy arrays).

  Raises ValueError naming the first missing tensor or mismatched shape;
  tensors the network does not use (fc.*, num_batches_tracked) are ignored.
  """
  variables = _variable_shapes()

  def convert(path, leaf):
    keys = [p.key for p in path]
    name = _torch_name(keys)
    if name not in state:
      raise ValueError(f"The Inception weights have no tensor {name!r}; "
                       f"is this pytorch-fid's {FILE_NAME}?")
    value = np.asarray(state[name], np.float32)
    expected = leaf.shape
    if keys[-1] == "kernel":  # PyTorch's OIHW, Flax's HWIO
      expected = (expected[3], expected[2], expected[0], expected[1])
    if value.shape != expected:
      raise ValueError(f"Inception tensor {name!r} has shape {value.shape}, expected {expected}.")
    return jnp.asarray(value.transpose(2, 3, 1, 0) if keys[-1] == "kernel" else value)

  return jax.tree_util.tree_map_with_path(convert, variables)


def find_weights(path=None) -> Path:
  """The weights file to use: `path`, else $GENJAX_INCEPTION_WEIGHTS, else the
  torch.hub cache. Raises InceptionUnavailable saying where it looked."""
  if path:
    candidates = [Path(path).expanduser()]
  else:
    candidates = [Path(os.environ[ENV_VAR]).expanduser()] if os.environ.get(ENV_VAR) else []
    candidates.append(torch_hub_dir() / FILE_NAME)
  for candidate in candidates:
    if candidate.is_file():
      return candidate
  raise InceptionUnavailable(
      f"no Inception weights at {', '.join(str(c) for c in candidates)}. The standard "
      f"Inception FID needs pytorch-fid's {FILE_NAME} (download it where there is a network, "
      f"from pytorch-fid's GitHub releases) at one of these paths, or --inception_weights PATH.")


def _check_hash(path: Path) -> str:
  """The file's SHA-256, read in chunks; InceptionUnavailable unless it is SHA256."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  digest = digest.hexdigest()
  if digest != SHA256:
    raise InceptionUnavailable(
        f"{path} has sha256 {digest}, not {SHA256} as pytorch-fid's {FILE_NAME} has; "
        "FIDs from other weights are not the standard Inception FID.")
  return digest


def check_weights_file(path=None) -> Path:
  """The weights file `find_weights(path)` finds, once its SHA-256 is pytorch-fid's.

  Only finds and hashes the file (its 95 MB in a fraction of a second):
  nothing is parsed and nothing runs on JAX, so a command line can call this
  at start-up and stop at once on a missing or wrong file, rather than after
  training or sampling. Raises InceptionUnavailable saying what is wrong.
  """
  found = find_weights(path)
  _check_hash(found)
  return found


class InceptionFeatures:
  """pool3 features of uint8 images: `InceptionFeatures(path)(images) -> [N, 2048]`."""

  def __init__(self, path=None, batch_size: int = 50, check_hash: bool = True, variables=None):
    if variables is None:
      self.path = find_weights(path)
      self.sha256 = _check_hash(self.path) if check_hash else None  # before any parsing
      variables = from_torch(torch_file.load_state_dict(self.path))
    else:
      self.path, self.sha256 = None, None
    self.variables = variables
    self.batch_size = batch_size
    module = FIDInceptionV3()
    self._apply = jax.jit(lambda v, images: module.apply(v, preprocess(images)))

  def __call__(self, images, progress=None) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"Inception features take uint8 images [N, H, W, 1 or 3], not "
                       f"{images.dtype} {images.shape}.")
    out = images_lib.map_in_batches(lambda chunk: self._apply(self.variables, chunk), images,
                                    self.batch_size, progress)
    return np.concatenate(out).astype(np.float64)


@functools.lru_cache(maxsize=2)
def load(path=None) -> InceptionFeatures:
  """A cached InceptionFeatures for the weights `find_weights(path)` finds."""
  return InceptionFeatures(path)
