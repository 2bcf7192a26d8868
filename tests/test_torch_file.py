"""The torch.save reader on crafted files: tensor records that would crash the
interpreter, read outside a storage or run away with time or memory are
refused with a TorchFileError that names the record.

The files are written here opcode by opcode (pickle protocol 2, as torch.save
writes it), so that they can say what torch.save never would. A case that
could crash the interpreter or balloon memory is loaded in a child process
with a time limit and an address-space limit, so the suite outlives a reader
that fails it.
"""

import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from genjax.metrics import torch_file

REPO = Path(__file__).resolve().parent.parent


# --- writing torch.save files by hand ----------------------------------------


def _int(v: int) -> bytes:
  if -2**31 <= v < 2**31:
    return b"J" + struct.pack("<i", v)  # BININT
  data = v.to_bytes(v.bit_length() // 8 + 1, "little", signed=True)
  return b"\x8a" + bytes([len(data)]) + data  # LONG1


def _str(s: str) -> bytes:
  data = s.encode()
  return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _global(module: str, name: str) -> bytes:
  return b"c" + f"{module}\n{name}\n".encode()


def _tuple(items) -> bytes:
  return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def tensor(key: str, offset: int, size: tuple, stride: tuple, storage_type="FloatStorage",
           numel: int = 6) -> bytes:
  """The opcodes torch.save writes for one tensor: _rebuild_tensor_v2(storage,
  offset, size, stride, requires_grad, backward_hooks), the storage a
  persistent id ('storage', type, key, location, numel)."""
  storage = _tuple([_str("storage"), _global("torch", storage_type), _str(key), _str("cpu"),
                    _int(numel)]) + b"Q"  # BINPERSID
  hooks = _global("collections", "OrderedDict") + b")R"  # OrderedDict()
  args = _tuple([storage, _int(offset), _tuple(map(_int, size)), _tuple(map(_int, stride)),
                 b"\x89", hooks])  # NEWFALSE: requires_grad
  return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def state_dict(entries: dict) -> bytes:
  """A pickled OrderedDict {name: opcodes of the value}."""
  items = b"".join(_str(name) + value for name, value in entries.items())
  return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + items + b"u."


def write_pth(path: Path, pickle_bytes: bytes, storages: dict) -> Path:
  """A zip archive laid out as torch.save (>= 1.6) writes one."""
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
    archive.writestr("archive/data.pkl", pickle_bytes)
    archive.writestr("archive/byteorder", "little")
    for key, data in storages.items():
      archive.writestr(f"archive/data/{key}", data)
    archive.writestr("archive/version", "3\n")
  return path


SIX_FLOATS = {"0": np.arange(6, dtype=np.float32).tobytes()}


# --- loading where a crash cannot take the suite down ------------------------


CHILD = """
import resource, sys
from genjax.metrics import torch_file

def shared_depth(t):
  depth = 0
  while type(t) is tuple:
    assert t[0] is t[1], "a shared memo entry was copied"
    t, depth = t[0], depth + 1
  return depth

with open("/proc/self/statm") as f:  # what the interpreter holds, plus 1 GiB
  limit = int(f.read().split()[0]) * resource.getpagesize() + (1 << 30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
  state = torch_file.load_state_dict(sys.argv[1])
except torch_file.TorchFileError as e:
  print("TorchFileError:", e)
  sys.exit(3)
print("loaded:", eval(sys.argv[2]))
"""


def load_in_child(path: Path, show: str = "sorted(state)", timeout: float = 20) -> tuple:
  """(exit code, output) of loading `path` in a child limited to `timeout`
  seconds and 1 GiB more address space than it starts with; a segfault is
  exit code -11."""
  try:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), show], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    pytest.fail(f"loading {path.name} took more than {timeout} s")
  return proc.returncode, (proc.stdout + proc.stderr).strip()


def assert_refused(path: Path, pattern: str):
  """The child exits with a TorchFileError whose message matches `pattern`."""
  code, out = load_in_child(path)
  assert code == 3 and re.search(pattern, out), f"exit code {code}: {out[-2000:]}"


# --- the cases -----------------------------------------------------------------


def test_hand_written_files_load_like_torch_files(tmp_path):
  """The writer above makes files the reader takes, so each case below is
  refused for its one crafted field, not for a malformed layout."""
  path = write_pth(tmp_path / "ok.pth", state_dict({
      "w": tensor("0", 1, (2, 2), (2, 1)),
      "t": tensor("0", 0, (2, 3), (1, 2)),
      "s": tensor("0", 5, (), ()),
      "e": tensor("0", 6, (0, 3), (3, 1)),
  }), SIX_FLOATS)
  state = torch_file.load_state_dict(path)
  np.testing.assert_array_equal(state["w"], [[1, 2], [3, 4]])
  np.testing.assert_array_equal(state["t"], np.arange(6.0).reshape(3, 2).T)
  assert state["s"].shape == () and state["s"] == 5
  assert state["e"].shape == (0, 3)


def test_negative_stride_is_refused(tmp_path):
  """A stride of -2**40 once passed the end-of-storage check and read 4 TB
  before the buffer: a segfault."""
  path = write_pth(tmp_path / "stride.pth",
                   state_dict({"w": tensor("0", 0, (2,), (-2**40,))}), SIX_FLOATS)
  assert_refused(path, r"tensor 'w' \(storage '0'\): negative stride")


def test_negative_storage_offset_is_refused(tmp_path):
  """Offset -1 once started the tensor at the storage's last element and read
  three elements past its end into the weights."""
  path = write_pth(tmp_path / "offset.pth",
                   state_dict({"w": tensor("0", -1, (6,), (1,))}), SIX_FLOATS)
  assert_refused(path, r"tensor 'w' \(storage '0'\): negative storage offset -1")


@pytest.mark.parametrize("size,stride,offset", [((), (), 6), ((4,), (1,), 3), ((2, 2), (4, 1), 2)])
def test_offset_and_extent_beyond_the_storage_are_refused(tmp_path, size, stride, offset):
  """The highest element a record addresses must lie in its storage; a 0-d
  tensor's offset was once not checked at all (it read past the end)."""
  path = write_pth(tmp_path / "extent.pth",
                   state_dict({"w": tensor("0", offset, size, stride)}), SIX_FLOATS)
  assert_refused(path, r"tensor 'w' \(storage '0'\): .*past the end of the storage \(6 elements\)")


def test_shared_memo_entries_are_not_expanded(tmp_path):
  """40 nested pairs that each refer twice to the memo entry below them: 2**40
  leaves to a reader that copies shared objects, in under 0.5 kB. Read once,
  they stay shared."""
  ops = b"K\x07q\x000"  # the leaf 7, memo 0
  for k in range(1, 41):  # memo k = (memo k-1, memo k-1)
    ops += b"h" + bytes([k - 1]) + b"h" + bytes([k - 1]) + b"\x86q" + bytes([k]) + b"0"
  pickle_bytes = state_dict({"x": ops + b"h" + bytes([40])})
  assert len(pickle_bytes) < 512
  code, out = load_in_child(write_pth(tmp_path / "bomb.pth", pickle_bytes, {}),
                            "shared_depth(state['x'])")
  assert code == 0 and out.endswith("loaded: 40"), f"exit code {code}: {out[-2000:]}"


def test_shared_memo_entry_as_a_dict_key_is_refused(tmp_path):
  """The same 40 nested pairs as a dict key: hashing it walks 2**40 leaves."""
  ops = b"K\x07q\x000"
  for k in range(1, 41):
    ops += b"h" + bytes([k - 1]) + b"h" + bytes([k - 1]) + b"\x86q" + bytes([k]) + b"0"
  pickle_bytes = (b"\x80\x02" + _global("collections", "OrderedDict") + b")R"
                  + ops + b"h" + bytes([40]) + b"K\x01s.")  # SETITEM {memo 40: 1}
  assert_refused(write_pth(tmp_path / "key.pth", pickle_bytes, {}), r"uses a tuple as a dict key")


def test_huge_size_on_a_zero_stride_is_refused(tmp_path):
  """Size 2**40 with stride 0 addresses one element, so it passes the storage
  check, but copying it would take 4 TiB: refused before allocating, with the
  record named (it once raised a bare MemoryError)."""
  path = write_pth(tmp_path / "zero.pth",
                   state_dict({"w": tensor("0", 0, (2**40,), (0,))}), SIX_FLOATS)
  assert_refused(path, r"tensor 'w' \(storage '0'\): shape \(1099511627776,\) of float32 is "
                       r"4,398,046,511,104 bytes.*limit")


def test_unknown_storage_type_is_named_with_its_storage(tmp_path):
  path = write_pth(tmp_path / "bf16.pth",
                   state_dict({"w": tensor("0", 0, (3,), (1,), "BFloat16Storage")}), SIX_FLOATS)
  with pytest.raises(torch_file.TorchFileError,
                     match=r"storage '0' has type torch\.BFloat16Storage, which this reader does "
                           r"not know"):
    torch_file.load_state_dict(path)


def test_one_storage_read_as_two_dtypes_is_refused(tmp_path):
  """torch.save refuses to write two dtypes over one storage; a file that does
  would have one of them read as the other's bytes."""
  path = write_pth(tmp_path / "two.pth", state_dict({
      "w": tensor("0", 0, (3,), (1,)),
      "v": tensor("0", 0, (3,), (1,), "LongStorage"),
  }), SIX_FLOATS)
  with pytest.raises(torch_file.TorchFileError,
                     match=r"storage '0' is read as both float32 and int64"):
    torch_file.load_state_dict(path)


def test_inception_weights_check_names_the_full_hash(tmp_path):
  """`check_weights_file` refuses any file but pytorch-fid's, by its full SHA-256."""
  from genjax.metrics import inception

  assert len(inception.SHA256) == 64 and inception.SHA256.startswith("6726825d")
  wrong = tmp_path / inception.FILE_NAME
  wrong.write_bytes(b"not the weights")
  with pytest.raises(inception.InceptionUnavailable, match=f"not {inception.SHA256}"):
    inception.check_weights_file(wrong)
