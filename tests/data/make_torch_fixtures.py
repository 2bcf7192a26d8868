"""Writes tests/data/tiny_state_dict_{zip,legacy}.pth with PyTorch (not needed by the tests).

  pip install torch && python tests/data/make_torch_fixtures.py
"""
import collections
from pathlib import Path

import torch

HERE = Path(__file__).parent


def tiny_state_dict():
  base = torch.arange(10, dtype=torch.float32)
  return collections.OrderedDict([
      ("a.weight", torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)),
      ("b.strided", base[2:8:2]),  # offset 2, stride 2 into a shared storage
      ("b.shared", base),
      ("c.num_batches_tracked", torch.tensor(7)),
      ("d.transposed", torch.arange(6, dtype=torch.float64).reshape(2, 3).t()),
      ("e.half", torch.tensor([0.5, -2.0], dtype=torch.float16)),
      ("f.scalar", torch.tensor(3.25)),
  ])


if __name__ == "__main__":
  torch.save(tiny_state_dict(), HERE / "tiny_state_dict_zip.pth")
  torch.save(tiny_state_dict(), HERE / "tiny_state_dict_legacy.pth",
             _use_new_zipfile_serialization=False)
  print("wrote", sorted(p.name for p in HERE.glob("tiny_state_dict_*.pth")))
