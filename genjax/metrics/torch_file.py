"""Reads a PyTorch checkpoint of plain tensors (a state dict) without PyTorch.

  state = torch_file.load_state_dict("pt_inception-2015-12-05-6726825d.pth")
  state["Conv2d_1a_3x3.conv.weight"]  # a numpy array [32, 3, 3, 3]

Both of `torch.save`'s formats are read: the zip archive (torch >= 1.6) and
the older sequence of pickles followed by raw storages.

The file is untrusted input, so the reader is written to fail with a
`TorchFileError` that names the offending record, never to run code, crash,
read outside a buffer or run away with time or memory:

* The pickle is not given to Python's unpickler. A small interpreter
  (`_Pickle`) runs only the opcodes `torch.save` writes and builds only
  dicts, lists, tuples, numbers, strings and tensor records; any class or
  function other than torch's tensor-rebuild functions is refused, so a file
  cannot run code when it is loaded. Every opcode takes constant work or work
  in proportion to the items it pops off the stack, which earlier opcodes
  pushed, so the pickle is read in time and memory linear in its length; the
  opcodes run and objects built are also capped in number (`MAX_STEPS`).
  Dict keys must be strings or small integers, so hashing one never walks a
  nested structure.
* Objects the pickle shares through its memo stay shared: the final walk
  that turns tensor records into arrays visits each object once, so nested
  tuples that refer twice to the same memo entry (2**n paths to a leaf in a
  file of a few hundred bytes) cost n steps, not 2**n.
* Each tensor record is checked before memory is touched: a storage type the
  reader knows, one dtype per storage, non-negative offset and strides, a
  bounded number of dimensions, and the highest element addressed inside the
  storage. Bytes read from storages and bytes of tensors built are bounded in
  total by `max_bytes` (default `MAX_BYTES`), so a zero stride with a huge size
  is refused rather than allocated.
"""

import collections
import math
import mmap
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c

MAX_BYTES = 2 << 30
"""Default bound on the bytes of storages read, and on the bytes of tensors
built, from one file (each; pytorch-fid's Inception weights are 95 MB)."""
MAX_STEPS = 1 << 21
"""Bound on the work of one file's pickles: each opcode run and each object
built or stored counts a step (pytorch-fid's Inception, 470 tensors, takes
about 40,000), so time and memory stay bounded whatever the file's length."""
_MAX_NDIM = 32  # numpy 1.x's limit
_MAX_ELEMENTS = 1 << 48  # a shape's elements, zero dimensions counted as one
_MAX_INT = 1 << 63  # offsets, sizes, strides and integer dict keys: int64
_MAX_DEPTH = 100  # nesting of containers in the state dict
_MAX_PICKLE_BYTES = 64 << 20  # a zip's data.pkl (MAX_STEPS opcodes fit in far less)


class TorchFileError(ValueError):
  """The file is not a PyTorch state dict this reader can load; says why."""


def _short(value) -> str:
  """repr of a string or number from the file, cut short for error messages."""
  if isinstance(value, (str, bytes)) and len(value) > 60:
    value = value[:60]
  text = repr(value) if isinstance(value, (str, bytes, int, float)) else type(value).__name__
  return text if len(text) <= 60 else text[:57] + "..."


class _StorageType:
  """torch.<name>Storage as the pickle names it; unknown names fail where used."""

  def __init__(self, name: str):
    self.name = name


class _StorageRef:
  def __init__(self, key: str, dtype: np.dtype):
    self.key, self.dtype = key, dtype


class _TensorRef:
  """A tensor as the pickle describes it; its bytes may come later in the file."""

  def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple):
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _int_tuple(value, what: str, storage: _StorageRef) -> tuple:
  if type(value) is not tuple or len(value) > _MAX_NDIM:
    raise TorchFileError(f"the tensor record on storage {_short(storage.key)} has a {what} "
                         f"that is not a tuple of at most {_MAX_NDIM} integers.")
  for v in value:
    if type(v) is not int or not -_MAX_INT <= v < _MAX_INT:
      raise TorchFileError(f"the tensor record on storage {_short(storage.key)} has {what} "
                           f"entry {_short(v)}, not a 64-bit integer.")
  return value


def _rebuild_tensor(storage=None, storage_offset=None, size=None, stride=None, *unused):
  """torch._utils._rebuild_tensor(_v2): only records the tensor; the types are
  checked here so that later arithmetic on them is cheap and exact."""
  if not isinstance(storage, _StorageRef):
    raise TorchFileError(f"a tensor record names a {type(storage).__name__} as its storage, "
                         "not one of the file's storages.")
  if type(storage_offset) is not int or not -_MAX_INT <= storage_offset < _MAX_INT:
    raise TorchFileError(f"the tensor record on storage {_short(storage.key)} has storage "
                         f"offset {_short(storage_offset)}, not a 64-bit integer.")
  size = _int_tuple(size, "size", storage)
  stride = _int_tuple(stride, "stride", storage)
  if len(size) != len(stride):
    raise TorchFileError(f"the tensor record on storage {_short(storage.key)} has size {size} "
                         f"but stride {stride}: one stride per dimension is needed.")
  return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data=None, *unused):
  return data


_ORDERED_DICT = object()  # collections.OrderedDict, callable only as OrderedDict()
_ALLOWED = {
    ("collections", "OrderedDict"): _ORDERED_DICT,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}
_CALLABLE = (_ORDERED_DICT, _rebuild_tensor, _rebuild_parameter)


def _find_class(module, name):
  if (module, name) in _ALLOWED:
    return _ALLOWED[(module, name)]
  if module == "torch" and name.endswith("Storage"):
    return _StorageType(name)
  raise TorchFileError(f"the file's pickle asks for {module[:100]}.{name[:100]}, which a state "
                       "dict of tensors does not need; refusing to load it.")


class _Budget:
  """What one file has used so far: pickle steps, storage bytes, tensor bytes."""

  def __init__(self, max_bytes: int):
    self.max_bytes = max_bytes
    self.steps = 0
    self.storage_bytes = 0
    self.tensor_bytes = 0

  def count(self, n: int = 1):
    self.steps += n
    if self.steps > MAX_STEPS:
      raise TorchFileError(f"the file's pickle runs more than {MAX_STEPS:,} steps (opcodes and "
                           "objects built); a state dict of tensors needs far fewer.")


class _Pickle:
  """Runs one pickle from `data` (bytes or an mmap) at `pos` with the opcodes of
  `torch.save` (protocols 2 to 5), building only what a state dict holds.

  `storages` collects the storages that persistent ids name: {key: _StorageRef}.
  """

  def __init__(self, data, pos: int, storages: dict, budget: _Budget, where: str):
    self.data, self.pos, self.storages, self.budget = data, pos, storages, budget
    self.where = where
    self.stack, self.marks, self.memo = [], [], {}

  # -- reading ---------------------------------------------------------------

  def read(self, n: int) -> bytes:
    end = self.pos + n
    if n < 0 or end > len(self.data):
      raise TorchFileError(f"{self.where} ends inside its pickle (byte {self.pos} asks for "
                           f"{n} more bytes).")
    chunk = self.data[self.pos:end]
    self.pos = end
    return chunk

  def read_int(self, fmt: str) -> int:
    return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

  def read_line(self) -> str:
    end = self.data.find(b"\n", self.pos, self.pos + 256)
    if end < 0:
      raise TorchFileError(f"{self.where} has a class name at byte {self.pos} that does not end.")
    line = self.data[self.pos:end]
    self.pos = end + 1
    return line.decode("utf-8", "replace")

  # -- the stack -------------------------------------------------------------

  def push(self, obj):
    self.budget.count()
    self.stack.append(obj)

  def pop(self):
    if not self.stack or (self.marks and len(self.stack) <= self.marks[-1]):
      raise TorchFileError(f"{self.where}'s pickle pops an empty stack at byte {self.pos}.")
    return self.stack.pop()

  def top(self):
    if not self.stack or (self.marks and len(self.stack) <= self.marks[-1]):
      raise TorchFileError(f"{self.where}'s pickle reads an empty stack at byte {self.pos}.")
    return self.stack[-1]

  def pop_mark(self) -> list:
    if not self.marks:
      raise TorchFileError(f"{self.where}'s pickle has no mark to return to at byte {self.pos}.")
    start = self.marks.pop()
    items = self.stack[start:]
    del self.stack[start:]
    return items

  def put(self, index: int):
    self.budget.count()
    self.memo[index] = self.top()

  def get(self, index: int):
    if index not in self.memo:
      raise TorchFileError(f"{self.where}'s pickle refers to memo entry {index}, which it never "
                           "stored.")
    self.push(self.memo[index])

  # -- building --------------------------------------------------------------

  def check_key(self, key):
    if type(key) is str or (type(key) is int and -_MAX_INT <= key < _MAX_INT):
      return key
    raise TorchFileError(f"{self.where}'s pickle uses a {type(key).__name__} as a dict key; a "
                         "state dict's keys are strings.")

  def set_items(self, target, items: list):
    if type(target) not in (dict, collections.OrderedDict) or len(items) % 2:
      raise TorchFileError(f"{self.where}'s pickle sets items on a {type(target).__name__}.")
    for i in range(0, len(items), 2):
      target[self.check_key(items[i])] = items[i + 1]

  def append(self, target, items: list):
    if type(target) is not list:
      raise TorchFileError(f"{self.where}'s pickle appends to a {type(target).__name__}.")
    target.extend(items)

  def reduce(self, func, args):
    if not any(func is f for f in _CALLABLE) or type(args) is not tuple:
      raise TorchFileError(f"{self.where}'s pickle calls a {type(func).__name__}, which is not one "
                           "of torch's tensor-rebuild functions.")
    if func is _ORDERED_DICT:
      if args:
        raise TorchFileError(f"{self.where}'s pickle builds an OrderedDict from arguments; torch "
                             "writes OrderedDict() and then its items.")
      return collections.OrderedDict()
    return func(*args)

  def persistent_load(self, pid):
    # zip: ('storage', type, key, location, numel)
    # legacy: ('storage', type, key, location, numel, view_metadata)
    if type(pid) is not tuple or len(pid) not in (5, 6) or type(pid[0]) is not str \
        or pid[0] != "storage":
      raise TorchFileError(f"{self.where}'s pickle has a persistent record that is not a "
                           "('storage', type, key, location, size) tuple.")
    storage_type, key = pid[1], pid[2]
    if type(key) is int and -_MAX_INT <= key < _MAX_INT:
      key = str(key)
    if type(key) is not str:
      raise TorchFileError(f"{self.where}'s pickle names a storage by a {type(key).__name__}, "
                           "not a string.")
    if len(pid) > 5 and pid[5] is not None:
      raise TorchFileError(f"storage {_short(key)} is a storage view (saved by torch < 0.4); "
                           "not supported.")
    if not isinstance(storage_type, _StorageType):
      raise TorchFileError(f"storage {_short(key)} has type {_short(storage_type)}, not a torch "
                           "storage type.")
    if storage_type.name not in _STORAGE_DTYPES:
      raise TorchFileError(f"storage {_short(key)} has type torch.{storage_type.name[:100]}, which "
                           f"this reader does not know (it reads {', '.join(_STORAGE_DTYPES)}).")
    dtype = np.dtype(_STORAGE_DTYPES[storage_type.name])
    known = self.storages.setdefault(key, _StorageRef(key, dtype))
    if known.dtype != dtype:
      raise TorchFileError(f"storage {_short(key)} is read as both {known.dtype} and {dtype}; "
                           "a storage has one dtype.")
    return known

  # -- the loop --------------------------------------------------------------

  def load(self):
    """The pickle's object; `self.pos` is left just after its STOP."""
    while True:
      at = self.pos
      self.budget.count()
      op = self.read(1)
      handler = _OPCODES.get(op)
      if handler is None:
        raise TorchFileError(f"{self.where}'s pickle has opcode {op!r} at byte {at}, which "
                             "torch.save does not write.")
      if handler(self) is _STOP:
        if len(self.stack) != 1 or self.marks:
          raise TorchFileError(f"{self.where}'s pickle stops with {len(self.stack)} objects on "
                               "its stack, not one.")
        return self.stack.pop()


_STOP = object()


def _op_proto(p):
  if p.read(1)[0] > 5:
    raise TorchFileError(f"{p.where}'s pickle has a protocol newer than 5.")


def _op_build(p):
  state = p.pop()
  if type(p.top()) is not collections.OrderedDict or type(state) not in (dict, tuple):
    raise TorchFileError(f"{p.where}'s pickle sets the state of a {type(p.top()).__name__}.")
  # An OrderedDict's state is the attributes of a module's state dict
  # (_metadata: version numbers), which a reader of the tensors does not need.


def _op_tuple(n):
  return lambda p: p.push(tuple(reversed([p.pop() for _ in range(n)])))


def _op_tuple_mark(p):
  items = p.pop_mark()
  p.budget.count(len(items))
  p.push(tuple(items))


def _op_list_mark(p):
  items = p.pop_mark()
  p.budget.count(len(items))
  p.push(items)


def _op_dict_mark(p):
  items = p.pop_mark()
  d = {}
  p.set_items(d, items)
  p.push(d)


def _op_setitem(p):
  value = p.pop()
  key = p.pop()
  p.set_items(p.top(), [key, value])


def _op_setitems(p):
  items = p.pop_mark()
  p.set_items(p.top(), items)


def _op_append(p):
  value = p.pop()
  p.append(p.top(), [value])


def _op_appends(p):
  items = p.pop_mark()
  p.append(p.top(), items)


def _op_pop(p):
  if p.marks and p.marks[-1] == len(p.stack):
    p.marks.pop()
  else:
    p.pop()


def _op_mark(p):
  p.budget.count()
  p.marks.append(len(p.stack))


def _op_long(p, n: int):
  if n < 0:
    raise TorchFileError(f"{p.where}'s pickle has an integer of negative length.")
  p.push(int.from_bytes(p.read(n), "little", signed=True))


def _op_global(p):
  module = p.read_line()
  p.push(_find_class(module, p.read_line()))


def _op_stack_global(p):
  name, module = p.pop(), p.pop()
  if type(name) is not str or type(module) is not str:
    raise TorchFileError(f"{p.where}'s pickle names a class with a non-string.")
  p.push(_find_class(module, name))


def _op_reduce(p):
  args = p.pop()
  func = p.pop()
  p.push(p.reduce(func, args))


def _text(p, n: int) -> str:
  at = p.pos
  try:
    return p.read(n).decode("utf-8", "surrogatepass")
  except UnicodeDecodeError:
    raise TorchFileError(f"{p.where}'s pickle has a string at byte {at} that is not "
                         "UTF-8.") from None


_OPCODES = {
    b"\x80": _op_proto,
    b"\x95": lambda p: p.read(8),  # FRAME: frames are contiguous; their length is a hint
    b".": lambda p: _STOP,
    b"(": _op_mark,
    b"0": _op_pop,
    b"1": lambda p: p.pop_mark(),
    b"2": lambda p: p.push(p.top()),
    b"N": lambda p: p.push(None),
    b"\x88": lambda p: p.push(True),
    b"\x89": lambda p: p.push(False),
    b"J": lambda p: p.push(p.read_int("<i")),
    b"K": lambda p: p.push(p.read(1)[0]),
    b"M": lambda p: p.push(p.read_int("<H")),
    b"\x8a": lambda p: _op_long(p, p.read(1)[0]),
    b"\x8b": lambda p: _op_long(p, p.read_int("<i")),
    b"G": lambda p: p.push(p.read_int(">d")),
    b"X": lambda p: p.push(_text(p, p.read_int("<I"))),
    b"\x8c": lambda p: p.push(_text(p, p.read(1)[0])),
    b"\x8d": lambda p: p.push(_text(p, p.read_int("<Q"))),
    b"U": lambda p: p.push(p.read(p.read(1)[0]).decode("latin-1")),  # Python 2 str
    b"T": lambda p: p.push(p.read(p.read_int("<i")).decode("latin-1")),
    b"C": lambda p: p.push(bytes(p.read(p.read(1)[0]))),
    b"B": lambda p: p.push(bytes(p.read(p.read_int("<I")))),
    b"\x8e": lambda p: p.push(bytes(p.read(p.read_int("<Q")))),
    b")": lambda p: p.push(()),
    b"\x85": _op_tuple(1),
    b"\x86": _op_tuple(2),
    b"\x87": _op_tuple(3),
    b"t": _op_tuple_mark,
    b"]": lambda p: p.push([]),
    b"l": _op_list_mark,
    b"a": _op_append,
    b"e": _op_appends,
    b"}": lambda p: p.push({}),
    b"d": _op_dict_mark,
    b"s": _op_setitem,
    b"u": _op_setitems,
    b"q": lambda p: p.put(p.read(1)[0]),
    b"r": lambda p: p.put(p.read_int("<I")),
    b"\x94": lambda p: p.put(len(p.memo)),
    b"h": lambda p: p.get(p.read(1)[0]),
    b"j": lambda p: p.get(p.read_int("<I")),
    b"c": _op_global,
    b"\x93": _op_stack_global,
    b"R": _op_reduce,
    b"b": _op_build,
    b"Q": lambda p: p.push(p.persistent_load(p.pop())),
}


# -- from records to arrays ---------------------------------------------------


def _name(path) -> str:
  """'a.b.0' for the linked path (((None, 'a'), 'b'), 0), cut short."""
  keys = []
  while path is not None:
    path, key = path
    keys.append(str(key)[:60])
  return _short(".".join(reversed(keys)) or "<the whole file>")


def _array(ref: _TensorRef, buffers: dict, path, budget: _Budget) -> np.ndarray:
  """A contiguous copy of the tensor `ref` describes, once the record is checked."""
  storage, size, stride, offset = ref.storage, ref.size, ref.stride, ref.offset

  def refuse(why: str):
    raise TorchFileError(f"tensor {_name(path)} (storage {_short(storage.key)}): {why}")

  flat = buffers.get(storage.key)
  if flat is None:
    refuse("the storage is not in the file.")
  if offset < 0:
    refuse(f"negative storage offset {offset}.")
  if any(s < 0 for s in stride):
    refuse(f"negative stride in {stride}; this reader takes only non-negative strides.")
  if any(n < 0 for n in size) or math.prod(max(n, 1) for n in size) > _MAX_ELEMENTS:
    refuse(f"size {size} has a negative dimension or, zeros aside, more than 2**48 elements.")
  numel = math.prod(size)
  nbytes = numel * storage.dtype.itemsize
  if budget.tensor_bytes + nbytes > budget.max_bytes:
    refuse(f"shape {size} of {storage.dtype} is {nbytes:,} bytes, which with the tensors before "
           f"it passes the limit of {budget.max_bytes:,} bytes (max_bytes).")
  if numel == 0:
    if offset > flat.size:
      refuse(f"storage offset {offset} is past the end of the storage ({flat.size} elements).")
    return np.zeros(size, storage.dtype)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= flat.size:
    refuse(f"shape {size}, stride {stride} and offset {offset} address element {last}, past "
           f"the end of the storage ({flat.size} elements).")
  budget.tensor_bytes += nbytes
  itemsize = storage.dtype.itemsize
  strides = [s * itemsize if n > 1 else 0 for n, s in zip(size, stride)]
  view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=strides,
                                         writeable=False)
  return np.array(view)  # a contiguous copy


def _materialise(root, buffers: dict, budget: _Budget):
  """`root` with every tensor record replaced by its array.

  Each object is converted once (`done`, by identity), so objects the pickle
  shares stay shared and the walk is linear in the objects built. A path is
  linked, (parent path, key), so that extending it costs the same at any depth.
  """
  done, busy = {}, set()

  def walk(obj, path, depth: int):
    if obj is None or type(obj) in (str, bytes, int, float, bool):
      return obj
    key = id(obj)
    if key in done:
      return done[key]
    if key in busy:
      raise TorchFileError(f"{_name(path)} contains itself; a state dict does not.")
    if depth > _MAX_DEPTH:
      raise TorchFileError(f"{_name(path)} nests deeper than {_MAX_DEPTH} containers; a state "
                           "dict does not.")
    busy.add(key)
    if isinstance(obj, _TensorRef):
      result = _array(obj, buffers, path, budget)
    elif isinstance(obj, _StorageRef):  # a bare storage: its elements
      flat = buffers.get(obj.key)
      size = (0 if flat is None else flat.size,)
      result = _array(_TensorRef(obj, 0, size, (1,)), buffers, path, budget)
    elif type(obj) in (dict, collections.OrderedDict):
      result = type(obj)((k, walk(v, (path, k), depth + 1)) for k, v in obj.items())
    elif type(obj) in (list, tuple):
      result = type(obj)(walk(v, (path, i), depth + 1) for i, v in enumerate(obj))
    else:
      raise TorchFileError(f"{_name(path)} is a {type(obj).__name__} object, which a state dict "
                           "of tensors does not hold.")
    busy.discard(key)
    done[key] = result
    return result

  result = walk(root, None, 0)
  done.clear()
  return result


def _buffer(raw: bytes, ref: _StorageRef) -> np.ndarray:
  if len(raw) % ref.dtype.itemsize:
    raise TorchFileError(f"storage {_short(ref.key)} holds {len(raw)} bytes, not a whole number "
                         f"of {ref.dtype} elements.")
  if ref.dtype == np.bool_:  # any non-zero byte is True, as in torch
    return np.frombuffer(raw, np.uint8) != 0
  return np.frombuffer(raw, ref.dtype)


def _charge_storage(budget: _Budget, ref: _StorageRef, nbytes: int):
  budget.storage_bytes += nbytes
  if budget.storage_bytes > budget.max_bytes:
    raise TorchFileError(f"storage {_short(ref.key)} ({nbytes:,} bytes) takes the storages read "
                         f"past the limit of {budget.max_bytes:,} bytes (max_bytes).")


def _load_zip(path: Path, budget: _Budget):
  with zipfile.ZipFile(path) as archive:
    names = set(archive.namelist())
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
      raise TorchFileError(f"{path} is a zip file without exactly one data.pkl; not a torch.save file.")
    prefix = pickles[0][:-len("data.pkl")]
    if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
      raise TorchFileError(f"{path} was written on a big-endian machine; not supported.")
    info = archive.getinfo(pickles[0])
    if info.file_size > _MAX_PICKLE_BYTES:
      raise TorchFileError(f"{path}'s data.pkl is {info.file_size:,} bytes, over the limit of "
                           f"{_MAX_PICKLE_BYTES:,}; a state dict's pickle is far smaller.")
    storages = {}
    obj = _Pickle(archive.read(info), 0, storages, budget, f"{path}").load()
    buffers = {}
    for key, ref in storages.items():
      name = f"{prefix}data/{key}"
      if name not in names:
        raise TorchFileError(f"{path} has no {name} for storage {_short(key)}.")
      info = archive.getinfo(name)
      _charge_storage(budget, ref, info.file_size)
      buffers[key] = _buffer(archive.read(info), ref)
  return _materialise(obj, buffers, budget)


def _load_legacy(path: Path, budget: _Budget):
  with open(path, "rb") as f:
    if path.stat().st_size == 0:
      raise TorchFileError(f"{path} is empty.")
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
      pos = 0

      def plain(storages=None, what="header"):
        nonlocal pos
        p = _Pickle(data, pos, {} if storages is None else storages, budget, f"{path}'s {what}")
        obj = p.load()
        pos = p.pos
        return obj

      try:
        magic = plain()
      except TorchFileError:
        magic = None
      if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise TorchFileError(f"{path} is neither a zip archive nor a legacy torch.save file.")
      plain()  # protocol version
      sys_info = plain()
      if type(sys_info) is dict and sys_info.get("little_endian") is False:
        raise TorchFileError(f"{path} was written on a big-endian machine; not supported.")
      storages = {}
      obj = plain(storages, "state dict")
      keys = plain(what="list of storages")
      if type(keys) is not list:
        raise TorchFileError(f"{path} lists its storages in a {type(keys).__name__}, not a list.")
      buffers = {}
      for key in keys:
        key = str(key) if type(key) is int else key
        if type(key) is not str or key not in storages:
          raise TorchFileError(f"{path} lists storage {_short(key)}, which no tensor uses.")
        ref = storages[key]
        if pos + 8 > len(data):
          raise TorchFileError(f"{path} ends before storage {_short(key)}; the file is truncated.")
        numel = int.from_bytes(data[pos:pos + 8], "little", signed=True)
        pos += 8
        nbytes = numel * ref.dtype.itemsize
        if numel < 0 or pos + nbytes > len(data):
          raise TorchFileError(f"storage {_short(key)} claims {numel} elements but {path} has "
                               f"{len(data) - pos} bytes left; the file is truncated or corrupt.")
        _charge_storage(budget, ref, nbytes)
        buffers[key] = _buffer(data[pos:pos + nbytes], ref)  # slicing an mmap copies
        pos += nbytes
  return _materialise(obj, buffers, budget)


def load_state_dict(path, max_bytes: int = MAX_BYTES) -> dict:
  """{name: numpy array} of a `torch.save`d state dict (either format).

  Raises TorchFileError (a ValueError) naming the record at fault when the
  file is not one this reader can load safely; `max_bytes` bounds the bytes of
  storages read and, separately, of arrays built.
  """
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"No file at {path}.")
  budget = _Budget(max_bytes)
  try:
    state = _load_zip(path, budget) if zipfile.is_zipfile(path) else _load_legacy(path, budget)
  except TorchFileError:
    raise
  except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError,
          ValueError) as e:  # what zipfile raises on a damaged archive
    raise TorchFileError(f"{path} is not a readable torch.save file ({type(e).__name__}: "
                         f"{e}).") from e
  if not isinstance(state, dict):
    raise TorchFileError(f"{path} holds a {type(state).__name__}, not a state dict.")
  return state
