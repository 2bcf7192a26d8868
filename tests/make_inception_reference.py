"""Writes tests/data/inception_reference.npz: pytorch-fid's own Inception features
of a few images, with the synthetic weights of `tests.test_inception`.

  pip install torch torchvision pytorch-fid && python -m tests.make_inception_reference

The test checks genjax's Flax network and weight conversion against these
features, so that it needs neither PyTorch nor the real 95 MB weights file.
"""
from pathlib import Path

import numpy as np
import torch
from pytorch_fid import inception as pytorch_fid_inception

from genjax.metrics import inception
from tests.test_inception import reference_images, synthetic_state_dict

OUT = Path(__file__).parent / "data" / "inception_reference.npz"


def main():
  state = synthetic_state_dict(inception.torch_shapes())
  # Tensors pytorch-fid's model also has but the features do not use.
  state["fc.weight"] = np.zeros((1008, 2048), np.float32)
  state["fc.bias"] = np.zeros((1008,), np.float32)
  for name in [n for n in state if n.endswith(".bn.running_var")]:
    state[name.replace("running_var", "num_batches_tracked")] = np.array(0, np.int64)
  torch_state = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
  # pytorch-fid builds its network and loads the state dict with strict=True, so
  # genjax's tensor names and shapes must be exactly pytorch-fid's.
  pytorch_fid_inception.load_state_dict_from_url = lambda *args, **kwargs: torch_state
  model = pytorch_fid_inception.InceptionV3([3]).eval()
  arrays = {}
  for kind, images in reference_images().items():
    x = torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2)
    if x.shape[1] == 1:
      x = x.repeat(1, 3, 1, 1)
    with torch.no_grad():
      features = model(x)[0][:, :, 0, 0].numpy()
    arrays[f"{kind}_features"] = features
    print(kind, images.shape, "->", features.shape, "norms", np.linalg.norm(features, axis=1))
  np.savez_compressed(OUT, **arrays)
  print("wrote", OUT)


if __name__ == "__main__":
  main()
