"""Your own images: a folder read once per image, streamed or on the devices,
with the same batches either way, resumable and with bad files reported."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments import gan_folder
from genjax import configs, data
from genjax.train import loop
from genjax.train import workdir as rundir
from genjax.data import folder as folder_lib
from tests.conftest import FASHION_MNIST_DIR, params_equal, with_local_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
  """600 Fashion-MNIST images as files in two class folders: greyscale PNGs at
  28x28, RGB JPEGs at 40x36, RGBA WebPs at 56x56, and one truncated PNG."""
  if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"needs Fashion-MNIST in {FASHION_MNIST_DIR} (.ci/run installs it)")
  from genjax.data import idx

  images, labels = idx.load_idx_split(FASHION_MNIST_DIR, "test")
  root = tmp_path_factory.mktemp("photos")
  for i in range(600):
    image = Image.fromarray(images[i, ..., 0])
    sub = root / ("shirts" if labels[i] < 5 else "shoes") / f"part{i % 3}"
    if i == 0:
      first = sub / "0000.png"
    sub.mkdir(parents=True, exist_ok=True)
    if i % 3 == 0:
      image.save(sub / f"{i:04d}.png")
    elif i % 3 == 1:
      image.convert("RGB").resize((40, 36)).save(sub / f"{i:04d}.jpg", quality=95)
    else:
      image.convert("RGBA").resize((56, 56)).save(sub / f"{i:04d}.webp")
  whole = first.read_bytes()
  (root / "shirts" / "broken.png").write_bytes(whole[:len(whole) // 2])
  (root / "notes.txt").write_text("not an image")
  return root


def test_folder_holds_each_readable_image_once_and_names_the_broken_one(photo_folder,
                                                                        monkeypatch, tmp_path,
                                                                        capsys):
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path))
  folder = folder_lib.open_folder(str(photo_folder), 32, 3, "folders")
  assert len(folder) == 600 and len(set(folder.files)) == 600
  assert folder.unreadable == (os.path.join("shirts", "broken.png"),)
  assert "1 of 601 files" in capsys.readouterr().err
  assert folder.class_names == ("shirts", "shoes") and set(folder.labels) == {0, 1}
  for i in (0, 1, 2):  # a PNG, a JPEG and a WebP, all to the configured shape
    image, label = folder[i]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
  grey = folder_lib.open_folder(str(photo_folder), 28, 1)
  first = next(f for f in grey.files if f.endswith("0000.png"))
  original = np.asarray(Image.open(photo_folder / first))
  index = grey.files.index(first)
  np.testing.assert_array_equal(grey[index][0][..., 0], original)  # 28 -> 28: unchanged
  assert "checking" not in capsys.readouterr().err  # the scan is cached


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "absent", "does not exist"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "holds no .jpg/.jpeg/.png/.webp files"),
    (lambda p: (p / "f.png").write_bytes(b"\x89PNG junk") and p, "None of the 1 image files"),
])
def test_unusable_folders_are_named(make, message, tmp_path, monkeypatch):
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path / "cache"))
  path = make(tmp_path)
  with pytest.raises(folder_lib.FolderError, match=message):
    folder_lib.open_folder(str(path), 32, 3)


def _tiny_folder_config(photo_folder, pipeline, **overrides):
  config = gan_folder.get_config("tiny")
  config.data.path, config.data.image_size, config.data.channels = str(photo_folder), 28, 1
  config.data.pipeline = pipeline
  return configs.apply_overrides(config, overrides)


def test_streamed_run_equals_device_run_and_resumes_exactly(photo_folder, tmp_path,
                                                            monkeypatch):
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path / "cache"))
  on_device, _ = loop.train_and_evaluate(_tiny_folder_config(photo_folder, "device"),
                                         tmp_path / "device")
  streamed, _ = loop.train_and_evaluate(_tiny_folder_config(photo_folder, "stream"),
                                        tmp_path / "stream")
  assert params_equal(on_device.generator.params, streamed.generator.params)
  assert params_equal(on_device.discriminator.params, streamed.discriminator.params)
  # Stopped at step 10 and resumed: the same 20 steps of batches.
  loop.train_and_evaluate(_tiny_folder_config(photo_folder, "stream", num_steps=10),
                          tmp_path / "resumed")
  resumed, metrics = loop.train_and_evaluate(_tiny_folder_config(photo_folder, "stream"),
                                             tmp_path / "resumed")
  assert metrics["step"] == 20
  assert params_equal(streamed.generator.params, resumed.generator.params)
  _, info = rundir.read(tmp_path / "stream")
  assert info["image_shape"] == [28, 28, 1] and "image folder" in info["data_source"]


def test_mnist_streamed_from_memory_equals_the_device_path(mnist_idx_dir, tfds_dir, tmp_path):
  from experiments import gan_mnist

  config = with_local_data(gan_mnist.get_config("wgan_gp,tiny"), mnist_idx_dir, tfds_dir)
  on_device, _ = loop.train_and_evaluate(config, tmp_path / "device")
  config.data.pipeline = "stream"
  streamed, _ = loop.train_and_evaluate(config, tmp_path / "stream")
  assert params_equal(on_device.generator.params, streamed.generator.params)


def test_gan_folder_command_trains_and_samples(photo_folder, tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), GENJAX_CACHE=str(tmp_path / "cache"))
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.gan_folder", "--config=experiments/gan_folder.py:tiny",
       f"--config.data.path={photo_folder}", "--config.data.image_size=32",
       f"--workdir={tmp_path / 'run'}"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "data.pipeline=auto: device" in proc.stderr and "broken.png" in proc.stderr
  assert (tmp_path / "run" / "samples" / "step_000020_samples.png").exists()
  proc = subprocess.run(
      [sys.executable, "-m", "genjax.sample", f"--workdir={tmp_path / 'run'}", "--num=5",
       f"--out={tmp_path / 's.npz'}"], capture_output=True, text=True, cwd=ROOT, env=env,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert np.load(tmp_path / "s.npz")["images"].shape == (5, 32, 32, 3)


def test_prepared_dataset_holds_the_folders_images(photo_folder, tmp_path, monkeypatch):
  from genjax.data import prepare

  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path / "cache"))
  written = prepare.prepare(str(photo_folder), 32, "my_photos", channels=3, labels="folders",
                            data_dir=str(tmp_path / "tfds"))
  assert written == tmp_path / "tfds" / "my_photos" / "1.0.0"
  config = gan_folder.get_config()
  config.data.path, config.data.image_size, config.data.labels = str(photo_folder), 32, "folders"
  prepared = gan_folder.get_config()
  prepared.data.path, prepared.data.name = "", "my_photos"
  prepared.data.data_dir = str(tmp_path / "tfds")
  loaded = {}
  for split in ("train", "test"):
    config.data.pipeline = prepared.data.pipeline = "device"
    a = data.load_from_config(config.data, split)
    b = data.load_from_config(prepared.data, split)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert b.num_classes == 2
    loaded[split] = a
  prepared.data.pipeline = "stream"
  streamed = data.load_from_config(prepared.data, "train")
  assert isinstance(streamed, data.StreamedDataset) and len(streamed) == len(loaded["train"])
  np.testing.assert_array_equal(streamed[3][0], loaded["train"].images[3])
  with pytest.raises(ValueError, match="already prepared"):
    prepare.prepare(str(photo_folder), 32, "my_photos", data_dir=str(tmp_path / "tfds"))


def test_vae_trains_on_the_folder_streamed(photo_folder, tmp_path, monkeypatch):
  from experiments import vae_folder

  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path / "cache"))
  config = vae_folder.get_config("tiny")
  config.data.path, config.data.image_size, config.data.pipeline = str(photo_folder), 28, "stream"
  config.num_steps = config.eval_every = config.checkpoint_every = 100
  _, first = loop.train_and_evaluate(configs.apply_overrides(
      config.copy_and_resolve_references(), {"num_steps": 10, "eval_every": 10,
                                             "checkpoint_every": 10}), tmp_path / "vae")
  _, last = loop.train_and_evaluate(config, tmp_path / "vae")
  assert last["step"] == 100 and last["elbo"] > first["elbo"] + 100  # nats per image
  assert (tmp_path / "vae" / "samples" / "step_000100_reconstructions.png").exists()


def test_cyclegan_trains_between_two_folders_and_reads_the_authors_layout(photo_folder,
                                                                          tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), GENJAX_CACHE=str(tmp_path / "cache"))
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.cyclegan_folder",
       "--config=experiments/cyclegan_folder.py:tiny",
       f"--config.data.path_a={photo_folder / 'shirts'}",
       f"--config.data.path_b={photo_folder / 'shoes'}", "--config.data.image_size=32",
       "--config.data.load_size=36", "--config.data.crop_size=32",
       f"--workdir={tmp_path / 'run'}"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (tmp_path / "run" / "samples" / "step_000020_translation_a2b.png").exists()
  proc = subprocess.run(
      [sys.executable, "-m", "genjax.evaluate", f"--workdir={tmp_path / 'run'}"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 0 < json.loads(proc.stdout)["cycle_l1_a"] < 2

  from experiments import cyclegan_folder
  from genjax.data import unpaired

  # The authors' layout: trainA, trainB and a testA/testB used whole.
  root = tmp_path / "horse2zebra"
  root.mkdir()
  (root / "trainA").symlink_to(photo_folder / "shirts")
  (root / "trainB").symlink_to(photo_folder / "shoes")
  for d, source in (("testA", "shirts"), ("testB", "shoes")):
    (root / d).mkdir()
    readable = [f for f in sorted((photo_folder / source).rglob("*.png")) if "broken" not in f.name]
    for f in readable[:7]:
      (root / d / f.name).write_bytes(f.read_bytes())
  config = cyclegan_folder.get_config()
  config.data.path, config.data.image_size = str(root), 32
  shirts = folder_lib.open_folder(str(photo_folder / "shirts"), 32, 3)
  train, test = unpaired.load(config.data, "train"), unpaired.load(config.data, "test")
  assert len(train.a) == len(shirts) and train.a.image_shape == (32, 32, 3)  # nothing held out
  assert len(test.a) == len(test.b) == 7 and not test.paired

  config.data.path = str(photo_folder)  # no trainA/trainB
  with pytest.raises(ValueError, match=r"trainA, trainB not found"):
    unpaired.load(config.data, "train")
  config.data.path = ""
  with pytest.raises(ValueError, match=r"config.data.path is empty"):
    unpaired.load(config.data, "train")


def test_progan_grows_to_the_folders_image_size(photo_folder, tmp_path):
  """The progressive GAN on a folder at 64x64: five levels, 4x4 to 64x64,
  the last one reached within the run; samples at the folder's size."""
  env = dict(os.environ, PYTHONPATH=str(ROOT), GENJAX_CACHE=str(tmp_path / "cache"))
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.progan_fashion_mnist",
       "--config=experiments/progan_fashion_mnist.py:folder,tiny",
       f"--config.data.path={photo_folder}", "--config.data.image_size=64",
       "--config.num_steps=50", "--config.eval_every=50", f"--workdir={tmp_path / 'run'}"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # tiny: 5 steps at 4x4, then a 5-step fade-in and 5 stable steps per level:
  # 64x64 fades in over steps 35-39 and trains alone from step 40.
  assert "resolution=64" in proc.stderr, proc.stderr[-2000:]
  assert (tmp_path / "run" / "samples" / "step_000050_samples.png").exists()
  proc = subprocess.run(
      [sys.executable, "-m", "genjax.sample", f"--workdir={tmp_path / 'run'}", "--num=5",
       f"--out={tmp_path / 's.npz'}"], capture_output=True, text=True, cwd=ROOT, env=env,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert np.load(tmp_path / "s.npz")["images"].shape == (5, 64, 64, 3)
