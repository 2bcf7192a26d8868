"""The torch-free reader of torch.save files: both formats, the allow-list of
its unpickler, tensors kept inside their storages, and clear errors for files
that are not state dicts."""

import collections
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from genjax.metrics import torch_file

DATA = Path(__file__).parent / "data"


def write_zip(path: Path, pickle_bytes: bytes, storages=None) -> Path:
  """A zip archive laid out as torch.save (>= 1.6) writes one."""
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", pickle_bytes)
    for key, data in (storages or {}).items():
      archive.writestr(f"archive/data/{key}", data)
  return path


def write_legacy(path: Path, obj) -> Path:
  """The pre-1.6 layout: magic number, protocol, system info, the object and
  its storage keys (none here)."""
  with open(path, "wb") as f:
    for item in (torch_file._LEGACY_MAGIC, 1001, {"little_endian": True}, obj, []):
      pickle.dump(item, f, protocol=2)
  return path


def one_tensor_file(path: Path, offset: int, size: tuple, stride: tuple) -> Path:
  """A zip file of tensor 'w' on a storage of the floats 0..5, its record
  written opcode by opcode so that it can say what torch.save never would."""

  def text(s: str) -> bytes:
    return b"X" + struct.pack("<I", len(s)) + s.encode()  # BINUNICODE

  def ints(values) -> bytes:
    return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"  # a tuple

  storage = (b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text("0") + text("cpu")
             + b"K\x06tQ")  # BINPERSID ('storage', torch.FloatStorage, '0', 'cpu', 6)
  record = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"J" + struct.pack("<i", offset)
            + ints(size) + ints(stride) + b"\x89tR")  # ..., requires_grad=False)
  pickle_bytes = b"\x80\x02ccollections\nOrderedDict\n)R(" + text("w") + record + b"u."
  return write_zip(path, pickle_bytes, {"0": np.arange(6, dtype="<f4").tobytes()})


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_reads_both_torch_save_formats(fmt):
  """Files written by torch.save (tests/data/make_torch_fixtures.py), read without torch."""
  state = torch_file.load_state_dict(DATA / f"tiny_state_dict_{fmt}.pth")
  assert list(state) == ["a.weight", "b.strided", "b.shared", "c.num_batches_tracked",
                         "d.transposed", "e.half", "f.scalar"]
  np.testing.assert_array_equal(state["a.weight"], np.arange(24, dtype=np.float32).reshape(2, 3, 4))
  assert state["a.weight"].dtype == np.float32
  np.testing.assert_array_equal(state["b.strided"], [2.0, 4.0, 6.0])  # offset and stride
  np.testing.assert_array_equal(state["b.shared"], np.arange(10))
  assert state["c.num_batches_tracked"].dtype == np.int64 and state["c.num_batches_tracked"] == 7
  np.testing.assert_array_equal(state["d.transposed"], np.arange(6.0).reshape(2, 3).T)
  assert state["d.transposed"].dtype == np.float64
  np.testing.assert_array_equal(state["e.half"], np.array([0.5, -2.0], np.float16))
  assert state["f.scalar"].shape == () and state["f.scalar"] == 3.25


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_global_outside_the_allow_list_is_refused_not_run(tmp_path, layout):
  marker = tmp_path / "ran"

  class Exploit:
    def __reduce__(self):
      return (os.system, (f"touch {marker}",))

  state = collections.OrderedDict(w=Exploit())
  path = tmp_path / "evil.pth"
  if layout == "zip":
    write_zip(path, pickle.dumps(state, protocol=2))
  else:
    write_legacy(path, state)
  with pytest.raises(torch_file.TorchFileError, match=r"evil\.pth: .*asks for posix\.system"):
    torch_file.load_state_dict(path)
  assert not marker.exists()


@pytest.mark.parametrize("offset,size,stride,expected", [
    (1, (2, 2), (2, 1), [[1, 2], [3, 4]]),
    (0, (2, 3), (1, 2), [[0, 2, 4], [1, 3, 5]]),
    (5, (), (), 5),
    (6, (0, 3), (3, 1), np.zeros((0, 3))),
])
def test_strided_records_read_their_elements(tmp_path, offset, size, stride, expected):
  """The hand-written record is read as torch would, so the refusals below
  come from their one crafted field, not from a malformed layout."""
  state = torch_file.load_state_dict(one_tensor_file(tmp_path / "ok.pth", offset, size, stride))
  np.testing.assert_array_equal(state["w"], expected)
  assert state["w"].shape == size and state["w"].flags.c_contiguous


@pytest.mark.parametrize("offset,size,stride", [
    (0, (2,), (-1,)), (-1, (6,), (1,)), (3, (4,), (1,)), (6, (), ()), (2, (2, 2), (4, 1)),
])
def test_a_tensor_outside_its_storage_is_refused(tmp_path, offset, size, stride):
  """Strides are applied to the storage's memory directly, so a record that
  reaches before or past it must be refused, not read."""
  path = one_tensor_file(tmp_path / "bad.pth", offset, size, stride)
  with pytest.raises(torch_file.TorchFileError,
                     match=r"tensor 'w' .* does not lie inside its storage of 6 elements"):
    torch_file.load_state_dict(path)


def test_files_that_are_not_state_dicts_say_so(tmp_path):
  (tmp_path / "text.pth").write_text("not a torch file\n")
  with pytest.raises(torch_file.TorchFileError, match="neither a zip archive nor a pre-1.6"):
    torch_file.load_state_dict(tmp_path / "text.pth")
  with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
    archive.writestr("readme.txt", "hello")
  with pytest.raises(torch_file.TorchFileError, match="without exactly one data.pkl"):
    torch_file.load_state_dict(tmp_path / "empty.zip")
  path = write_legacy(tmp_path / "list.pth", [1, 2])
  with pytest.raises(torch_file.TorchFileError, match="holds a list, not a state dict"):
    torch_file.load_state_dict(path)
  path = write_zip(tmp_path / "int.pth", pickle.dumps(collections.OrderedDict(n=3), protocol=2))
  with pytest.raises(torch_file.TorchFileError, match="'n' is a int, not a tensor"):
    torch_file.load_state_dict(path)
  with pytest.raises(FileNotFoundError):
    torch_file.load_state_dict(tmp_path / "absent.pth")
