"""Reads a `torch.save`d state dict of tensors as numpy arrays, without PyTorch.

  state = torch_file.load_state_dict("pt_inception-2015-12-05-6726825d.pth")
  state["Conv2d_1a_3x3.conv.weight"]  # a numpy array [32, 3, 3, 3]

Both of `torch.save`'s formats are read: the zip archive (torch >= 1.6) and
the older sequence of pickles followed by raw storages.

The pickle goes through Python's unpickler with `find_class` limited to the
names a state dict of tensors uses (`_ALLOWED` and torch's storage types), so
loading runs no code from the file: any other global is refused, by name. A
tensor must lie inside its storage, so a record cannot read outside it.
Nothing more is checked: the one file genjax reads with this is pytorch-fid's
Inception weights, whose SHA-256 `genjax.metrics.inception` checks first.
"""

import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c  # the first pickle of a pre-zip torch.save file


class TorchFileError(ValueError):
  """The file is not a torch.save'd state dict this reader loads; says why."""


class _Storage:
  def __init__(self, dtype: np.dtype):
    self.dtype, self.array = dtype, None  # the array once its bytes are read


class _Tensor:
  def __init__(self, storage, offset, size, stride, *unused):  # torch._utils._rebuild_tensor_v2
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _Tensor,
    ("torch._utils", "_rebuild_tensor"): _Tensor,
    ("torch._utils", "_rebuild_parameter"): lambda data, *unused: data,
}


class _Unpickler(pickle.Unpickler):
  """Builds only what `_ALLOWED` names; storages are collected in `storages`."""

  def __init__(self, file, storages: dict):
    super().__init__(file)
    self.storages = storages

  def find_class(self, module, name):
    if (module, name) in _ALLOWED:
      return _ALLOWED[module, name]
    if module == "torch" and name in _DTYPES:
      return np.dtype(_DTYPES[name])
    raise TorchFileError(f"the file's pickle asks for {module}.{name}, which a state dict of "
                         "tensors does not need; refusing to load it.")

  def persistent_load(self, pid):
    # zip: ('storage', type, key, location, numel); legacy adds view_metadata.
    if not (type(pid) is tuple and len(pid) in (5, 6) and pid[0] == "storage"
            and isinstance(pid[1], np.dtype)):
      raise TorchFileError(f"the file's pickle names a storage as {pid!r:.100}, not as "
                           "('storage', torch.<type>Storage, key, location, size).")
    if len(pid) == 6 and pid[5] is not None:
      raise TorchFileError(f"storage {pid[2]!r} is a storage view (torch < 0.4); not supported.")
    return self.storages.setdefault(str(pid[2]), _Storage(pid[1]))


def _load_zip(archive: zipfile.ZipFile):
  pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
  if len(pickles) != 1:
    raise TorchFileError("a zip file without exactly one data.pkl is not a torch.save file.")
  prefix = pickles[0][:-len("data.pkl")]
  storages = {}
  obj = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
  for key, storage in storages.items():
    storage.array = np.frombuffer(archive.read(f"{prefix}data/{key}"), storage.dtype)
  return obj


def _load_legacy(f):
  """Pickles of the magic number, protocol, system info, the object and its
  storage keys, then each storage as an int64 element count and its bytes."""
  try:
    magic = _Unpickler(f, {}).load()
  except Exception:
    magic = None
  if type(magic) is not int or magic != _LEGACY_MAGIC:
    raise TorchFileError("neither a zip archive nor a pre-1.6 torch.save file.")
  _Unpickler(f, {}).load()  # protocol version
  _Unpickler(f, {}).load()  # system info
  storages = {}
  obj = _Unpickler(f, storages).load()
  for key in _Unpickler(f, {}).load():
    storage = storages[str(key)]
    numel = int.from_bytes(f.read(8), "little", signed=True)
    storage.array = np.frombuffer(f.read(numel * storage.dtype.itemsize), storage.dtype)
  return obj


def _array(name: str, t: _Tensor) -> np.ndarray:
  """A C-contiguous, native-byte-order copy of the tensor `t` describes."""
  flat = t.storage.array if isinstance(t.storage, _Storage) else None
  if flat is None:
    raise TorchFileError(f"tensor {name!r} has no storage in the file.")
  if 0 in t.size:
    return np.zeros(t.size, flat.dtype.newbyteorder("="))
  last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
  if t.offset < 0 or min(t.stride, default=0) < 0 or last >= flat.size:
    raise TorchFileError(f"tensor {name!r} (offset {t.offset}, size {t.size}, stride {t.stride}) "
                         f"does not lie inside its storage of {flat.size} elements.")
  strides = [s * flat.itemsize for s in t.stride]
  view = np.lib.stride_tricks.as_strided(flat[t.offset:], t.size, strides, writeable=False)
  return np.array(view, flat.dtype.newbyteorder("="), order="C")


def load_state_dict(path) -> dict:
  """{name: numpy array} of a `torch.save`d state dict (either format).

  Raises FileNotFoundError, or TorchFileError (a ValueError) saying why the
  file is not a state dict of tensors.
  """
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"No file at {path}.")
  try:
    if zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as archive:
        obj = _load_zip(archive)
    else:
      with open(path, "rb") as f:
        obj = _load_legacy(f)
    if not isinstance(obj, dict):
      raise TorchFileError(f"the file holds a {type(obj).__name__}, not a state dict.")
    for name, value in obj.items():
      if not isinstance(value, _Tensor):
        raise TorchFileError(f"{name!r} is a {type(value).__name__}, not a tensor.")
    return {name: _array(name, t) for name, t in obj.items()}
  except TorchFileError as e:
    raise TorchFileError(f"{path}: {e}") from None
  except Exception as e:  # whatever a damaged archive or pickle raises
    raise TorchFileError(f"{path} is not a readable torch.save file of a state dict "
                         f"({type(e).__name__}: {e}).") from e
