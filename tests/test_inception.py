"""The Flax Inception-v3 of the standard FID, and the hash check on its weights file."""

import zlib
from pathlib import Path

import numpy as np
import pytest

from genjax.metrics import inception, torch_file

DATA = Path(__file__).parent / "data"


def synthetic_state_dict(shapes: dict) -> dict:
  """Weights with pytorch-fid's names and shapes, a fixed rule per name, scaled
  so that activations stay near unit size through all 94 layers."""
  state = {}
  for name, shape in shapes.items():
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if name.endswith("conv.weight"):
      value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
    elif name.endswith("bn.weight"):
      value = 1.0 + 0.1 * rng.standard_normal(shape)
    elif name.endswith("running_var"):
      value = rng.uniform(0.5, 1.5, shape)
    else:  # bn.bias, running_mean
      value = 0.1 * rng.standard_normal(shape)
    state[name] = value.astype(np.float32)
  return state


def reference_images() -> dict:
  rng = np.random.default_rng(0)
  grey = np.zeros((2, 28, 28, 1), np.uint8)
  grey[0, 6:22, 12:16] = 255  # a bar
  grey[1] = rng.integers(0, 256, (28, 28, 1))
  rgb = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
  rgb[0] = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3)  # a smooth ramp
  return {"grey": grey, "rgb": rgb}


@pytest.fixture(scope="module")
def synthetic_network():
  variables = inception.from_torch(synthetic_state_dict(inception.torch_shapes()))
  return inception.InceptionFeatures(variables=variables, batch_size=2)


@pytest.mark.parametrize("kind", ["grey", "rgb"])
def test_features_match_pytorch_fid(synthetic_network, kind):
  """The same weights give pytorch-fid's features (its own code computed them,
  resize and scaling included: tests/make_inception_reference.py)."""
  expected = np.load(DATA / "inception_reference.npz")[f"{kind}_features"]
  got = synthetic_network(reference_images()[kind])
  assert got.shape == expected.shape == (2, inception.FEATURE_DIM)
  rel = np.linalg.norm(got - expected, axis=1) / np.linalg.norm(expected, axis=1)
  assert rel.max() < 1e-4, rel
  # The two images' features differ by far more than that tolerance, so the
  # agreement is not that of a network whose output ignores its input.
  assert np.linalg.norm(expected[0] - expected[1]) > 0.05 * np.linalg.norm(expected[0])


def test_conversion_names_the_missing_or_misshapen_tensor():
  state = synthetic_state_dict(inception.torch_shapes())
  del state["Mixed_6c.branch7x7dbl_3.bn.running_var"]
  with pytest.raises(ValueError, match=r"Mixed_6c\.branch7x7dbl_3\.bn\.running_var"):
    inception.from_torch(state)
  state = synthetic_state_dict(inception.torch_shapes())
  state["Conv2d_1a_3x3.conv.weight"] = state["Conv2d_1a_3x3.conv.weight"][:16]
  with pytest.raises(ValueError, match=r"Conv2d_1a_3x3\.conv\.weight.*\(16, 3, 3, 3\)"):
    inception.from_torch(state)


def test_missing_weights_are_reported_not_faked(tmp_path, monkeypatch):
  monkeypatch.setenv(inception.ENV_VAR, str(tmp_path / "absent.pth"))
  monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
  with pytest.raises(inception.InceptionUnavailable, match=r"absent\.pth.*torch/hub/checkpoints/pt_inception"):
    inception.find_weights()


def test_weights_with_another_hash_are_refused_before_parsing(tmp_path, monkeypatch):
  """A file the reader could parse (a torch.save'd state dict) under the
  weights' name is refused by its full SHA-256, and never reaches the reader."""
  assert len(inception.SHA256) == 64 and inception.SHA256.startswith("6726825d")
  wrong = tmp_path / inception.FILE_NAME
  wrong.write_bytes((DATA / "tiny_state_dict_zip.pth").read_bytes())
  assert torch_file.load_state_dict(wrong)  # parseable
  monkeypatch.setattr(torch_file, "load_state_dict", lambda path: pytest.fail(f"parsed {path}"))
  with pytest.raises(inception.InceptionUnavailable, match=f"has sha256 [0-9a-f]{{64}}, not {inception.SHA256}"):
    inception.check_weights_file(wrong)
  with pytest.raises(inception.InceptionUnavailable, match=f"not {inception.SHA256}"):
    inception.InceptionFeatures(wrong)
  # Without the hash check the same file does reach the reader (the stand-in above).
  with pytest.raises(pytest.fail.Exception, match=r"parsed .*pt_inception"):
    inception.InceptionFeatures(wrong, check_hash=False)
