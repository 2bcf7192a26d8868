"""Reads a PyTorch checkpoint of plain tensors (a state dict) without PyTorch.

  state = torch_file.load_state_dict("pt_inception-2015-12-05-6726825d.pth")
  state["Conv2d_1a_3x3.conv.weight"]  # a numpy array [32, 3, 3, 3]

Both of `torch.save`'s formats are read: the zip archive (torch >= 1.6) and
the older sequence of pickles followed by raw storages. The pickle is read
by an unpickler that builds only dicts, tuples, numbers, strings and tensors
from torch's storage records; any other object in the file (code, classes)
is refused, so a file cannot run code when it is loaded.
"""

import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


class TorchFileError(ValueError):
  """The file is not a PyTorch state dict this reader can load; says why."""


class _StorageType:
  def __init__(self, name: str):
    if name not in _STORAGE_DTYPES:
      raise TorchFileError(f"tensor storage type torch.{name} is not supported "
                           f"(supported: {', '.join(sorted(_STORAGE_DTYPES))}).")
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _TensorRef:
  """A tensor as the pickle describes it; its bytes may come later in the file."""

  def __init__(self, storage_key, offset, size, stride):
    self.storage_key, self.offset = storage_key, int(offset)
    self.size, self.stride = tuple(size), tuple(stride)


class _StorageRef:
  def __init__(self, key, dtype: np.dtype):
    self.key, self.dtype = key, dtype


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
  return data


class _Unpickler(pickle.Unpickler):
  _ALLOWED = {
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
      ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
      ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  }

  def __init__(self, file, storages: dict):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module, name):
    if (module, name) in self._ALLOWED:
      return self._ALLOWED[(module, name)]
    if module == "torch" and name.endswith("Storage"):
      return _StorageType(name)
    raise TorchFileError(f"the file's pickle asks for {module}.{name}, which a state dict of "
                         "tensors does not need; refusing to load it.")

  def persistent_load(self, pid):
    # zip: ('storage', type, key, location, numel)
    # legacy: ('storage', type, key, location, numel, view_metadata)
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
      raise TorchFileError(f"unknown persistent record {pid!r} in the file's pickle.")
    storage_type, key = pid[1], str(pid[2])
    if len(pid) > 5 and pid[5] is not None:
      raise TorchFileError("storage views (saved by torch < 0.4) are not supported.")
    if not isinstance(storage_type, _StorageType):
      raise TorchFileError(f"unknown storage type {storage_type!r} in the file's pickle.")
    self._storages.setdefault(key, _StorageRef(key, storage_type.dtype))
    return self._storages[key]


def _materialise(obj, buffers: dict):
  if isinstance(obj, _TensorRef):
    storage = obj.storage_key
    flat = buffers[storage.key]
    itemsize = storage.dtype.itemsize
    if obj.size and any(s > 0 for s in obj.size):
      last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride)) + 1
      if last > flat.size:
        raise TorchFileError(f"a tensor of shape {obj.size} runs past the end of its storage.")
    view = np.lib.stride_tricks.as_strided(
        flat[obj.offset:], shape=obj.size, strides=[s * itemsize for s in obj.stride])
    return np.array(view)  # a contiguous copy
  if isinstance(obj, dict):
    return type(obj)((k, _materialise(v, buffers)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v, buffers) for v in obj)
  return obj


def _load_zip(path: Path):
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
      raise TorchFileError(f"{path} is a zip file without exactly one data.pkl; not a torch.save file.")
    prefix = pickles[0][:-len("data.pkl")]
    if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
      raise TorchFileError(f"{path} was written on a big-endian machine; not supported.")
    storages = {}
    obj = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
    buffers = {key: np.frombuffer(archive.read(f"{prefix}data/{key}"), ref.dtype)
               for key, ref in storages.items()}
  return _materialise(obj, buffers)


def _load_legacy(path: Path):
  with open(path, "rb") as f:
    plain = lambda: _Unpickler(f, {}).load()
    if plain() != _LEGACY_MAGIC:
      raise TorchFileError(f"{path} is neither a zip archive nor a legacy torch.save file.")
    plain()  # protocol version
    plain()  # sys info
    storages = {}
    obj = _Unpickler(f, storages).load()
    keys = plain()
    buffers = {}
    for key in keys:
      dtype = storages[str(key)].dtype
      numel = int(np.frombuffer(f.read(8), "<i8")[0])
      raw = f.read(numel * dtype.itemsize)
      if len(raw) != numel * dtype.itemsize:
        raise TorchFileError(f"{path} ends inside storage {key}; the file is truncated.")
      buffers[str(key)] = np.frombuffer(raw, dtype)
  return _materialise(obj, buffers)


def load_state_dict(path) -> dict:
  """{name: numpy array} of a `torch.save`d state dict (either format)."""
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"No file at {path}.")
  try:
    state = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
  except (pickle.UnpicklingError, EOFError, KeyError) as e:
    raise TorchFileError(f"{path} is not a readable torch.save file ({e}).") from e
  if not isinstance(state, dict):
    raise TorchFileError(f"{path} holds a {type(state).__name__}, not a state dict.")
  return state
