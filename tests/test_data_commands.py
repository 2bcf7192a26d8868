"""The commands docs/data.md gives for a folder of your own images, run as a
user runs them (on the `tiny` networks and a few steps, to keep them short).

Tested elsewhere: `gan_folder --config.data.path=... --config.data.image_size=64`
and `cyclegan_folder --config.data.path_a=... --config.data.path_b=...`
(test_folder), `genjax.data.fetch mnist` (test_fetch), `benchmark --pipeline`
(test_benchmark). `cyclegan_folder --config.data.path=DIR` is the `:paper`
test's command without the preset.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments import gan_folder
from genjax import data

ROOT = Path(__file__).resolve().parents[1]
FEW_STEPS = ["--config.num_steps=4", "--config.steps_per_call=2", "--config.eval_every=4",
             "--config.checkpoint_every=4"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
  """20 small PNGs in two class folders, two shades of noise."""
  root = tmp_path_factory.mktemp("photos")
  rng = np.random.default_rng(0)
  for i in range(20):
    kind = ("dark", "light")[i % 2]
    (root / kind).mkdir(exist_ok=True)
    base = 60 if kind == "dark" else 180
    pixels = np.clip(base + rng.normal(0, 30, (36, 36, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(root / kind / f"{i:02d}.png")
  return root


def _run(args, tmp_path, timeout=600, **env):
  env = dict(os.environ, PYTHONPATH=str(ROOT), GENJAX_CACHE=str(tmp_path / "cache"), **env)
  proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                        cwd=ROOT, env=env, timeout=timeout)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def test_prepare_command_writes_a_dataset_that_runs_train_on(photos, tmp_path):
  """`python -m genjax.data.prepare --path DIR --image_size 32 --name X`, then
  a run with `--config.data.name=X --config.data.path=`, both with the TFDS
  data dir of $TFDS_DATA_DIR."""
  tfds_dir = tmp_path / "tfds"
  proc = _run(["genjax.data.prepare", "--path", str(photos), "--image_size", "32", "--name",
               "my_photos"], tmp_path, TFDS_DATA_DIR=str(tfds_dir))
  assert "--config.data.name=my_photos" in proc.stdout
  assert (tfds_dir / "my_photos" / "1.0.0" / "dataset_info.json").exists()
  config = gan_folder.get_config()
  config.data.path, config.data.name, config.data.data_dir = "", "my_photos", str(tfds_dir)
  config.data.pipeline = "device"
  prepared = data.load_from_config(config.data, "train")
  config.data.path, config.data.image_size = str(photos), 32
  from_folder = data.load_from_config(config.data, "train")
  assert len(prepared) == len(from_folder) > 0
  np.testing.assert_array_equal(prepared.images, from_folder.images)
  _run(["experiments.gan_folder", "--config=experiments/gan_folder.py:tiny",
        "--config.data.name=my_photos", "--config.data.path=", *FEW_STEPS,
        f"--workdir={tmp_path / 'run'}"], tmp_path, TFDS_DATA_DIR=str(tfds_dir))
  assert (tmp_path / "run" / "samples" / "step_000004_samples.png").exists()


def test_conditional_gan_on_class_folders_command(photos, tmp_path):
  proc = _run(["experiments.gan_folder", "--config=experiments/gan_folder.py:tiny",
               f"--config.data.path={photos}", "--config.data.labels=folders",
               "--config.conditional=True", "--config.data.image_size=32", *FEW_STEPS,
               f"--workdir={tmp_path / 'run'}"], tmp_path)
  assert "(32, 32, 3)" in proc.stderr
  assert (tmp_path / "run" / "samples" / "step_000004_samples.png").exists()


def test_vae_folder_command(photos, tmp_path):
  # The default 5% of these 20 images: a test split of one, too few for the
  # reconstruction and interpolation grids, which are then left out.
  _run(["experiments.vae_folder", "--config=experiments/vae_folder.py:tiny",
        f"--config.data.path={photos}", "--config.data.image_size=32", "--config.batch_size=8",
        *FEW_STEPS, f"--workdir={tmp_path / 'run'}"], tmp_path)
  assert (tmp_path / "run" / "samples" / "step_000004_samples.png").exists()
  _run(["experiments.vae_folder", "--config=experiments/vae_folder.py:tiny",
        f"--config.data.path={photos}", "--config.data.image_size=32", "--config.batch_size=8",
        "--config.data.test_percent=50", *FEW_STEPS, f"--workdir={tmp_path / 'run50'}"], tmp_path)
  assert (tmp_path / "run50" / "samples" / "step_000004_reconstructions.png").exists()


@pytest.fixture(scope="module")
def authors_layout(photos, tmp_path_factory) -> Path:
  """trainA, trainB, testA, testB, as the CycleGAN authors' datasets come."""
  root = tmp_path_factory.mktemp("horse2zebra")
  for domain, kind in (("A", "dark"), ("B", "light")):
    files = sorted((photos / kind).glob("*.png"))
    for split, chosen in (("train", files[:8]), ("test", files[8:])):
      (root / f"{split}{domain}").mkdir()
      for f in chosen:
        (root / f"{split}{domain}" / f.name).write_bytes(f.read_bytes())
  return root


def test_cyclegan_paper_preset_on_the_authors_layout_command(authors_layout, tmp_path):
  """`cyclegan_folder --config=...:paper --config.data.path=DIR`: the authors'
  layout at the paper's 256 px (`tiny` shrinks the networks, not the images)."""
  proc = _run(["experiments.cyclegan_folder", "--config=experiments/cyclegan_folder.py:paper,tiny",
               f"--config.data.path={authors_layout}", "--config.batch_size=2",
               "--config.decay_start=1", "--config.num_steps=2", "--config.steps_per_call=2",
               "--config.eval_every=2", "--config.checkpoint_every=2",
               f"--workdir={tmp_path / 'run'}"], tmp_path)
  assert "(256, 256, 3)" in proc.stderr, proc.stderr[-2000:]
  assert (tmp_path / "run" / "samples" / "step_000002_translation_a2b.png").exists()
