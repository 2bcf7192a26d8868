"""pix2pix: SSIM/PSNR, the networks, short runs on edges2fashion pairs, pair folders, translate."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from experiments import pix2pix_edges2fashion, pix2pix_folder
from genjax import configs, translate
from genjax import evaluate as evaluate_cli
from genjax.data import folder, paired, unpaired
from genjax.metrics import image_quality
from genjax.models.pix2pix import evaluate as pix2pix_eval
from genjax.models.pix2pix import networks as pix2pix_nn
from genjax.models.pix2pix import step as pix2pix
from genjax.train import loop
from tests.conftest import params_equal, with_local_data

ROOT = Path(__file__).resolve().parents[1]


def test_ssim_psnr_l1_identities_and_reference_values():
  x = jax.random.uniform(jax.random.key(0), (2, 24, 20, 3), minval=-1, maxval=1)
  np.testing.assert_allclose(image_quality.ssim(x, x), 1.0, rtol=1e-6)
  np.testing.assert_allclose(image_quality.l1(x, x), 0.0)
  np.testing.assert_allclose(image_quality.psnr(x, x), 100.0)
  # A constant error of 0.1 on [0, 1] pixels: MSE 0.01, 20 dB.
  np.testing.assert_allclose(image_quality.psnr(x * 0 - 1, x * 0 - 0.8), 20.0, rtol=1e-5)
  np.testing.assert_allclose(image_quality.l1(x * 0 - 1, x * 0 - 0.8), 0.1, rtol=1e-5)
  # References from scikit-image 0.26's structural_similarity(gaussian_weights=True,
  # sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1).
  ramp = np.linspace(0, 1, 24 * 20 * 3, dtype=np.float32).reshape(1, 24, 20, 3)
  np.testing.assert_allclose(image_quality.ssim(ramp**2 * 2 - 1, ramp * 2 - 1), 0.7334457,
                             rtol=1e-5)
  i, j = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
  a = (0.5 + 0.5 * np.sin(i / 3.0) * np.cos(j / 5.0)).astype(np.float32)[None, ..., None]
  b = (0.8 * a + 0.1 + 0.05 * np.cos(i + 2 * j)[None, ..., None]).astype(np.float32)
  np.testing.assert_allclose(image_quality.ssim(a * 2 - 1, b * 2 - 1), 0.91439474, rtol=1e-5)
  assert float(image_quality.ssim(-x, x)[0]) < 0.2  # unrelated images score far below 1


def test_unet_keeps_the_shape_and_its_dropout_is_noise_at_test_time():
  g = pix2pix_nn.UNetGenerator(out_channels=3, width=4, num_down=5)
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 1), minval=-1, maxval=1)
  params = g.init({"params": jax.random.key(1), "dropout": jax.random.key(2)}, x)
  y1 = g.apply(params, x, rngs={"dropout": jax.random.key(3)})
  y2 = g.apply(params, x, rngs={"dropout": jax.random.key(4)})
  assert y1.shape == (2, 32, 32, 3) and float(jnp.max(jnp.abs(y1))) <= 1.0
  assert not np.allclose(y1, y2)  # different noise, different outputs
  np.testing.assert_array_equal(y1, g.apply(params, x, rngs={"dropout": jax.random.key(3)}))
  quiet = pix2pix_nn.UNetGenerator(out_channels=3, width=4, num_down=5, dropout=0.0)
  np.testing.assert_array_equal(quiet.apply(params, x, rngs={"dropout": jax.random.key(3)}),
                                quiet.apply(params, x, rngs={"dropout": jax.random.key(4)}))
  d = pix2pix_nn.PairDiscriminator(width=2, num_layers=3)
  big = jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32)
  logits = jax.eval_shape(d.apply, jax.eval_shape(d.init, jax.random.key(0), big, big), big, big)
  assert logits.shape == (1, 30, 30)  # the paper's 70x70 PatchGAN at 256 px


def _tiny(idx_dir, tfds_dir, **overrides):
  """The tiny preset at 10x the paper's learning rate, so that 20 steps move it."""
  config = pix2pix_edges2fashion.get_config("tiny")
  config.opt.lr, config.eval_every = 2e-3, 20
  return configs.apply_overrides(with_local_data(config, idx_dir, tfds_dir), overrides)


@pytest.fixture(scope="module")
def tiny_run(fashion_mnist_slice, tfds_dir, tmp_path_factory):
  """A tiny run's (config, final state, workdir), trained for 20 steps."""
  workdir = tmp_path_factory.mktemp("pix2pix") / "full"
  config = _tiny(fashion_mnist_slice, tfds_dir)
  state, _ = loop.train_and_evaluate(config, workdir)
  return config, state, workdir


def test_edges2fashion_pairs_are_garments_and_their_own_edges(tiny_run):
  config, _, _ = tiny_run
  test = paired.load(config.data, "test")
  assert test.paired and len(test) == 500 and test.a.images.shape == (500, 32, 32, 1)
  garments = test.b.images[:, 2:-2, 2:-2]
  np.testing.assert_array_equal(test.a.images[:, 2:-2, 2:-2], unpaired.edge_map(garments))
  assert (test.a.images[:, :2] == 255).all() and (test.b.images[:, :2] == 0).all()


def test_tiny_run_lowers_the_l1_of_held_out_pairs(tiny_run):
  config, state, workdir = tiny_run
  test = paired.load(config.data, "test")
  init = pix2pix.create_state(config, jax.random.key(0), (32, 32, 1))
  before = pix2pix_eval.translation_metrics(init, config, test, jax.random.key(1))
  after = evaluate_cli.evaluate(workdir, num=0, use_inception=False)
  assert after["step"] == 20 and after["num_test_pairs"] == 500
  assert after["l1"] < 0.8 * before["l1"], (before["l1"], after["l1"])
  assert after["psnr_db"] > before["psnr_db"]
  for result in (after, after["identity"]):
    assert {"l1", "psnr_db", "ssim", "fid"} <= set(result), result
  assert after["feature_network"]["sha256"].startswith("70b2e74b")
  # The identity baseline (edges as garments) is the same for any run.
  for name in ("l1", "psnr_db", "ssim"):
    assert after["identity"][name] == pytest.approx(before["identity"][name], rel=1e-5)


def test_resumed_run_equals_uninterrupted_run(tiny_run, fashion_mnist_slice, tfds_dir, tmp_path):
  config, full, workdir = tiny_run
  half = _tiny(fashion_mnist_slice, tfds_dir, num_steps=10, decay_start=10, eval_every=10)
  loop.train_and_evaluate(half, tmp_path)
  resumed, _ = loop.train_and_evaluate(config, tmp_path)
  assert int(resumed.step) == 20
  assert params_equal(full.generator.params, resumed.generator.params)
  assert params_equal(full.discriminator.params, resumed.discriminator.params)
  assert params_equal(full.generator.opt_state, resumed.generator.opt_state)
  names = sorted(p.name for p in (workdir / "samples").glob("*.png"))
  assert names == ["step_000020_translation.png"]


def _edges(n: int) -> np.ndarray:
  rng = np.random.default_rng(0)
  garments = np.zeros((n, 28, 28, 1), np.uint8)
  for k in range(n):
    top, left = rng.integers(3, 10, 2)
    garments[k, top:top + 14, left:left + 12] = 200
  return unpaired.edge_map(garments)


def test_translate_writes_the_same_relative_names(tiny_run, tmp_path):
  _, _, workdir = tiny_run
  inputs = tmp_path / "in"
  (inputs / "sub" / "deeper").mkdir(parents=True)
  names = ["a.png", "sub/b.png", "sub/deeper/c.jpg"]
  for name, edges in zip(names, _edges(3)):
    image = Image.fromarray(edges[..., 0])
    (image.resize((56, 40)) if name.endswith("jpg") else image).save(inputs / name)
  messages = []
  outs = translate.translate_folder(workdir, inputs, tmp_path / "out", log=messages.append)
  written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")
                   if p.is_file())
  assert written == ["a.png", "sub/b.png", "sub/deeper/c.png"] == sorted(
      str(p.relative_to(tmp_path / "out")) for p in outs)
  for p in outs:
    assert np.asarray(Image.open(p)).shape == (32, 32)  # the run's size, greyscale
  assert "padded with white to 32x32" in messages[0]

  # An RGB image in a greyscale run: a one-line error naming it, nothing written.
  Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(inputs / "sub" / "colour.png")
  with pytest.raises(ValueError, match=r"not greyscale .*sub/colour\.png; pass --convert"):
    translate.translate_folder(workdir, inputs, tmp_path / "out2")
  assert not (tmp_path / "out2").exists()
  translate.translate_folder(workdir, inputs, tmp_path / "out2", convert=True,
                             log=messages.append)
  assert (tmp_path / "out2" / "sub" / "colour.png").is_file() and "Converted 1" in messages[-1]
  with pytest.raises(ValueError, match=r"would overwrite the input .*a\.png"):
    translate.translate_folder(workdir, inputs, inputs)
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=r"--input=.*empty holds no"):
    translate.translate_folder(workdir, tmp_path / "empty", tmp_path / "out3")
  with pytest.raises(ValueError, match=r"--direction=ba: this pix2pix run translates ab"):
    translate.translate_folder(workdir, inputs, tmp_path / "out3", direction="ba")
  assert not (tmp_path / "out3").exists()
  assert not list((tmp_path / "out").rglob(".*.tmp"))


def _aligned(root: Path, n_train: int, n_test: int, width: int = 40):
  rng = np.random.default_rng(1)
  for split, n in (("train", n_train), ("test", n_test)):
    (root / split).mkdir(parents=True)
    for i in range(n):
      a = rng.integers(0, 255, (24, width // 2, 3), np.uint8)
      b = 255 - np.pad(a, ((0, 0), (0, width - 2 * (width // 2)), (0, 0)))
      Image.fromarray(np.concatenate([a, b], axis=1)).save(root / split / f"{i}.png")


def _folder_config(path, layout="aligned", **overrides):
  config = pix2pix_folder.get_config("tiny")
  config.data.path, config.data.layout = str(path), layout
  return configs.apply_overrides(config, overrides)


def test_folder_layouts_load_aligned_pairs(tmp_path):
  _aligned(tmp_path / "al", 6, 2)
  config = _folder_config(tmp_path / "al")
  train, test = paired.load(config.data, "train"), paired.load(config.data, "test")
  assert train.a.images.shape == (6, 64, 64, 3) and len(test) == 2 and train.paired
  # B is the negative of A in every pair, up to resampling.
  diff = train.a.images.astype(int) + train.b.images.astype(int) - 255
  assert np.abs(diff).mean() < 3
  swapped = paired.load(_folder_config(tmp_path / "al", **{"data.direction": "BtoA"}).data,
                        "train")
  np.testing.assert_array_equal(swapped.a.images, train.b.images)

  for side in ("A", "B"):
    (tmp_path / "two" / side / "x").mkdir(parents=True)
  ramp = np.linspace(0, 200, 30 * 50 * 3).reshape(30, 50, 3)
  for k, name in enumerate(("p0", "p1", "p2", "x/p3")):
    a = (ramp + 10 * k).astype(np.uint8)  # smooth, so that JPEG keeps it close
    Image.fromarray(a).save(tmp_path / "two" / "A" / f"{name}.png")
    Image.fromarray(a).save(tmp_path / "two" / "B" / f"{name}.jpg", quality=95)
  config = _folder_config(tmp_path / "two", "folders", **{"data.test_percent": 50})
  train, test = paired.load(config.data, "train"), paired.load(config.data, "test")
  assert len(train) + len(test) == 4 and len(train) and len(test)
  assert np.abs(train.a.images.astype(int) - train.b.images.astype(int)).mean() < 8


def test_folder_errors_name_the_file(tmp_path):
  for side, names in (("A", ["p0", "p1", "only_a"]), ("B", ["p0", "p1", "only_b"])):
    (tmp_path / "two" / side).mkdir(parents=True)
    for name in names:
      Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "two" / side / f"{name}.png")
  with pytest.raises(folder.FolderError,
                     match=r"1 names only in A/ \(only_a\), 1 only in B/ \(only_b\)"):
    paired.load(_folder_config(tmp_path / "two", "folders").data, "train")
  _aligned(tmp_path / "odd", 2, 1, width=41)
  with pytest.raises(folder.FolderError, match=r"train/0\.png is 41 pixels wide, an odd width"):
    paired.load(_folder_config(tmp_path / "odd").data, "train")
  (tmp_path / "empty" / "train").mkdir(parents=True)
  with pytest.raises(folder.FolderError, match=r"empty/train holds no"):
    paired.load(_folder_config(tmp_path / "empty").data, "train")
  with pytest.raises(ValueError, match=r"config.data.layout='sideways'"):
    paired.load(_folder_config(tmp_path / "odd", "sideways").data, "train")


def test_folder_experiment_refuses_odd_widths_before_writing(tmp_path):
  _aligned(tmp_path / "odd", 2, 1, width=41)
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.pix2pix_folder", f"--workdir={tmp_path / 'run'}",
       "--config=experiments/pix2pix_folder.py:tiny", f"--config.data.path={tmp_path / 'odd'}"],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 1 and "41 pixels wide, an odd width" in proc.stderr, proc.stderr[-2000:]
  assert not (tmp_path / "run").exists()


def test_validate_config_names_the_bad_value():
  config = pix2pix_edges2fashion.get_config()
  config.model.g_down = 6
  with pytest.raises(ValueError, match=r"g_down=6: .* divisible by 64; use g_down <= 5"):
    pix2pix.validate_config(config)
  config = pix2pix_edges2fashion.get_config()
  config.task = "colourise"
  with pytest.raises(ValueError,
                     match=r"config.task='colourise': choose one of \['paired', 'superres', "):
    pix2pix.validate_config(config)
  config = pix2pix_edges2fashion.get_config()
  config.model.norm = "layer"
  with pytest.raises(ValueError, match=r"config.model.norm='layer'"):
    pix2pix.validate_config(config)
