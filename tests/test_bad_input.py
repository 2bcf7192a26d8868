"""Bad input gives one clear error naming the value or file and the fix.

Malformed IDX files, out-of-range config values and bad command-line flags
must fail with a message a user can act on, before anything expensive (a
TFDS preparation, a training run, image generation) has started.
"""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import gan_mnist
from genjax import configs, data
from genjax.train import loop
from genjax.data import idx
from tests.conftest import with_local_data

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
  """`python -m ARGS...` from the repository root, as a user would run it."""
  return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)),
                        capture_output=True, text=True, timeout=300)


# IDX files ------------------------------------------------------------------


def _path(folder: Path, split: str, part: str) -> Path:
  return folder / (idx.IDX_FILES[(split, part)] + ".gz")


def _good_folder(folder: Path) -> Path:
  """A valid MNIST-format folder: 20 train and 10 test 28x28 images."""
  folder.mkdir()
  rng = np.random.default_rng(0)
  for split, n in (("train", 20), ("test", 10)):
    idx.write_idx(_path(folder, split, "image"), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    idx.write_idx(_path(folder, split, "label"), np.arange(n) % 10)
  return folder


def _write_raw(path: Path, dims, data: bytes = b"") -> None:
  """An IDX file whose header gives `dims` whatever the data holds."""
  header = bytes([0, 0, 0x08, len(dims)]) + np.asarray(dims, dtype=">i4").tobytes()
  with gzip.open(path, "wb") as f:
    f.write(header + data)


def _load_train(how: str, folder: Path, tmp_path: Path):
  """Loads the train split of `folder` directly or through `genjax.data.load`."""
  if how == "load_idx_split":
    return idx.load_idx_split(folder, "train")
  return data.load("mnist", "train", idx_dir=str(folder), data_dir=str(tmp_path / "tfds"),
                   download=False)


def _assert_idx_error(how: str, folder: Path, tmp_path: Path, expected: str) -> None:
  """The load fails with exactly `expected`, one short line, and (through
  `data.load`) no TFDS dataset was prepared first."""
  with pytest.raises(idx.IdxFormatError) as e:
    _load_train(how, folder, tmp_path)
  assert str(e.value) == expected
  assert "\n" not in str(e.value) and len(str(e.value)) < 400
  assert not list((tmp_path / "tfds").rglob("dataset_info.json"))


LOADERS = pytest.mark.parametrize("how", ["load_idx_split", "data.load"])


@LOADERS
def test_idx_negative_dimension_names_file(how, tmp_path):
  folder = _good_folder(tmp_path / "idx")
  path = _path(folder, "train", "image")
  _write_raw(path, (-5, 28, 28))
  _assert_idx_error(how, folder, tmp_path,
                    f"{path}: the IDX header gives negative dimensions (-5, 28, 28); sizes "
                    "cannot be negative, so the header is corrupt. Replace the file with an "
                    "intact copy.")


@LOADERS
def test_idx_dimensions_whose_product_overflows_int64_are_refused(how, tmp_path):
  # 2**22 * 2**21 * 2**21 = 2**64, which wraps to 0 in int64 arithmetic: an
  # empty file would have matched it.
  folder = _good_folder(tmp_path / "idx")
  path = _path(folder, "train", "image")
  dims = (2**22, 2**21, 2**21)
  _write_raw(path, dims)
  _assert_idx_error(how, folder, tmp_path,
                    f"{path}: header promises shape {dims} ({2**64} bytes) but the file holds "
                    "0 bytes of data; it is truncated or corrupt. Replace it with an intact "
                    "copy.")


@LOADERS
def test_idx_size_not_matching_file_length_names_file(how, tmp_path):
  folder = _good_folder(tmp_path / "idx")
  path = _path(folder, "train", "label")
  _write_raw(path, (20,), bytes(25))  # five bytes too many
  _assert_idx_error(how, folder, tmp_path,
                    f"{path}: header promises shape (20,) (20 bytes) but the file holds 25 "
                    "bytes of data; it is truncated or corrupt. Replace it with an intact "
                    "copy.")


@LOADERS
def test_idx_32x32_images_refused_with_shape_found_and_expected(how, tmp_path):
  folder = _good_folder(tmp_path / "idx")
  path = _path(folder, "train", "image")
  idx.write_idx(path, np.zeros((20, 32, 32), np.uint8))
  _assert_idx_error(how, folder, tmp_path,
                    f"{path}: images are 32x32, but MNIST-format datasets (mnist, "
                    "fashion_mnist) are 28x28. Use the dataset's own files, or resize the "
                    "images to 28x28 and write them with genjax.data.idx.write_idx.")


@LOADERS
def test_idx_label_out_of_range_names_file_value_and_index(how, tmp_path):
  # 819 labels, as in the report where the whole array was printed.
  folder = _good_folder(tmp_path / "idx")
  rng = np.random.default_rng(1)
  idx.write_idx(_path(folder, "train", "image"), rng.integers(0, 256, (819, 28, 28), np.uint8))
  labels = np.arange(819) % 10
  labels[[7, 500]] = 200
  path = _path(folder, "train", "label")
  idx.write_idx(path, labels)
  _assert_idx_error(how, folder, tmp_path,
                    f"{path}: label 200 at index 7 is not a class (0..9); 2 of 819 labels are "
                    "out of range. Replace it with the dataset's own labels file.")


@LOADERS
def test_idx_image_and_label_counts_mismatch_names_both_files(how, tmp_path):
  folder = _good_folder(tmp_path / "idx")
  idx.write_idx(_path(folder, "train", "label"), np.arange(17) % 10)
  _assert_idx_error(how, folder, tmp_path,
                    f"{_path(folder, 'train', 'image')} holds 20 images but "
                    f"{_path(folder, 'train', 'label')} holds 17 labels; the train split needs "
                    "one label per image. Use an images file and a labels file of the same "
                    "dataset release.")


# Config values ----------------------------------------------------------------


ADAM = "(Adam's decay rates; 0.5/0.999 for DCGAN, 0.9/0.999 by default)."


@pytest.mark.parametrize("overrides, expected", [
    ({"gp_weight": float("nan")}, "config.gp_weight=nan must be a finite number."),
    ({"opt.b1": 5}, f"config.opt.b1=5.0 must be in [0, 1) {ADAM}"),
    ({"opt.b2": -3}, f"config.opt.b2=-3.0 must be in [0, 1) {ADAM}"),
    ({"seed": 2**70}, f"config.seed={2**70} must be an integer in [0, 2**63)."),
    ({"num_steps": 0}, "config.num_steps=0 must be a positive integer."),
], ids=["gp_weight_nan", "b1_5", "b2_minus_3", "seed_2_70", "num_steps_0"])
def test_check_common_names_the_key(overrides, expected):
  config = configs.apply_overrides(gan_mnist.get_config(), overrides)
  with pytest.raises(ValueError) as e:
    configs.check_common(config)
  assert str(e.value) == expected


def test_experiment_cli_refuses_nan_before_creating_the_workdir(tmp_path):
  workdir = tmp_path / "run"
  start = time.perf_counter()
  proc = _run("experiments.gan_mnist", "--config.gp_weight=nan", "--workdir", workdir)
  # About 2 s here: start-up and imports only, no data loaded or step compiled.
  assert time.perf_counter() - start < 60
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "error: config.gp_weight=nan must be a finite number." in proc.stderr.splitlines()
  assert "Traceback" not in proc.stderr
  assert not workdir.exists() and not (workdir / "checkpoints").exists()


# genjax.sample and genjax.evaluate ------------------------------------------


@pytest.fixture(scope="module")
def trained_workdir(mnist_idx_dir, tfds_dir, tmp_path_factory) -> Path:
  """A tiny gan_mnist run (20 steps), trained once for this module."""
  workdir = tmp_path_factory.mktemp("tiny_gan_run")
  config = with_local_data(gan_mnist.get_config("tiny"), mnist_idx_dir, tfds_dir)
  loop.train_and_evaluate(config, workdir)
  assert (workdir / "checkpoints").is_dir()
  return workdir


def _sample(workdir: Path, *flags):
  return _run("genjax.sample", "--workdir", workdir, "--num", 4, *flags)


def _assert_refused(proc, message: str) -> None:
  """Exit status 1 with `message` on stderr, and no image written."""
  assert proc.returncode == 1, (proc.stdout[-2000:], proc.stderr[-2000:])
  assert message in proc.stderr, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr and "Wrote" not in proc.stdout


def test_sample_out_in_missing_folder(trained_workdir, tmp_path):
  out = tmp_path / "missing" / "s.npz"
  _assert_refused(_sample(trained_workdir, "--out", out),
                  f"error: --out={out}: the folder {out.parent} does not exist; create it first.")
  assert not out.parent.exists()


def test_sample_out_naming_a_folder(trained_workdir, tmp_path):
  out = tmp_path / "folder.npz"
  out.mkdir()
  _assert_refused(_sample(trained_workdir, "--out", out),
                  f"error: --out={out} is a folder; name a .npz file in it.")
  assert not any(out.iterdir())


def test_sample_out_without_npz_suffix(trained_workdir, tmp_path):
  out = tmp_path / "samples.png"
  _assert_refused(_sample(trained_workdir, "--out", out),
                  f"error: --out={out}: name a .npz file (e.g. samples.npz).")
  assert not out.exists() and not out.with_suffix(".npz").exists()


def test_sample_out_in_read_only_folder(tmp_path, monkeypatch):
  """A folder this user cannot write to is refused before any image is drawn.

  Checked in-process with os.access answering as it does for a user without
  write permission: root, which runs CI, may write anywhere.
  """
  from genjax import sample

  folder = tmp_path / "read_only"
  folder.mkdir()
  out = folder / "s.npz"
  monkeypatch.setattr(os, "access", lambda path, mode: not (mode & os.W_OK))
  with pytest.raises(ValueError, match=re.escape(f"--out={out}: {folder} is not writable.")):
    sample.check_output_path(str(out))


@pytest.mark.parametrize("flag, value, expected", [
    ("--batch", 0, "--batch=0 must be at least 1."),
    ("--batch", -2, "--batch=-2 must be at least 1."),
    ("--seed", 2**70, f"--seed={2**70} must be in [0, 2**63)."),
], ids=["batch_0", "batch_minus_2", "seed_2_70"])
def test_sample_flags_out_of_range(trained_workdir, tmp_path, flag, value, expected):
  out = tmp_path / "s.npz"
  _assert_refused(_sample(trained_workdir, "--out", out, flag, value), expected)
  assert not out.exists()


@pytest.mark.parametrize("num", [1, 3, -5])
def test_evaluate_num_too_small(trained_workdir, num):
  proc = _run("genjax.evaluate", "--workdir", trained_workdir, "--num", num)
  _assert_refused(proc, f"--num={num} must be 0 (no samples scored) or >= 4: precision and "
                        "recall need each sample's 3rd nearest neighbour among the samples "
                        "(10,000 is the usual number).")
  assert proc.stdout == ""


def test_evaluate_api_num_too_small(trained_workdir):
  from genjax import evaluate  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match=r"--num=2 must be 0 \(no samples scored\) or >= 4"):
    evaluate.evaluate(trained_workdir, num=2, use_inception=False)


def _corrupt_copy(trained_workdir: Path, tmp_path: Path, name: str, text: str) -> Path:
  """A copy of the trained run with `name` replaced by `text`."""
  workdir = tmp_path / "run"
  shutil.copytree(trained_workdir, workdir)
  (workdir / name).write_text(text)
  return workdir


@pytest.mark.parametrize("tool", ["genjax.evaluate", "genjax.sample"])
def test_config_json_not_valid_json(trained_workdir, tmp_path, tool):
  workdir = _corrupt_copy(trained_workdir, tmp_path, "config.json", '{"family": "gan",')
  out = tmp_path / "s.npz"
  flags = ["--out", out] if tool == "genjax.sample" else ["--num", 10]
  proc = _run(tool, "--workdir", workdir, *flags)
  _assert_refused(proc, f"error: {workdir / 'config.json'} is not valid JSON (")
  assert ("restore it, or rerun the experiment in this --workdir to write it again."
          in proc.stderr)
  assert not out.exists()


@pytest.mark.parametrize("tool", ["genjax.evaluate", "genjax.sample"])
def test_run_json_without_image_shape(trained_workdir, tmp_path, tool):
  info = json.loads((trained_workdir / "run.json").read_text())
  del info["image_shape"]
  workdir = _corrupt_copy(trained_workdir, tmp_path, "run.json", json.dumps(info))
  out = tmp_path / "s.npz"
  flags = ["--out", out] if tool == "genjax.sample" else ["--num", 10]
  _assert_refused(_run(tool, "--workdir", workdir, *flags),
                  f"error: {workdir / 'run.json'} has no 'image_shape'; rerun the experiment "
                  "in this --workdir to write it again.")
  assert not out.exists()
