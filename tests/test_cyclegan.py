"""CycleGAN: the image pool, the losses, the networks, and short runs on real images."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import cyclegan_edges2fashion, cyclegan_horse2zebra
from genjax import configs, losses
from genjax.train import loop
from genjax.data import unpaired
from genjax.models.cyclegan import evaluate as cyclegan_eval
from genjax.models.cyclegan import networks as cyclegan_nn
from genjax.models.cyclegan import step as cyclegan
from tests.conftest import params_equal, with_local_data

ROOT = Path(__file__).resolve().parents[1]


def test_pool_fills_then_swaps_half_the_time():
  size = 8
  pool, count = jnp.zeros((size, 1, 1, 1)), jnp.zeros((), jnp.int32)
  first = jnp.arange(1, size + 1, dtype=jnp.float32).reshape(size, 1, 1, 1)
  out, pool, count = cyclegan.query_pool(pool, count, first, jax.random.key(0))
  np.testing.assert_array_equal(out, first)  # while filling, every image is used as it is
  np.testing.assert_array_equal(pool, first) and int(count) == size
  seen = set(range(1, size + 1))
  swapped, total = 0, 0
  for i in range(50):
    new = jnp.arange(100 * (i + 1), 100 * (i + 1) + 20, dtype=jnp.float32).reshape(20, 1, 1, 1)
    out, pool, count = cyclegan.query_pool(pool, count, new, jax.random.key(i + 1))
    out, new_np = np.asarray(out).ravel(), np.asarray(new).ravel()
    replaced = out != new_np
    swapped += replaced.sum()
    total += len(out)
    # A swapped-out image is one stored earlier, never an invented one.
    assert set(out[replaced].astype(int)) <= seen | set(new_np.astype(int)), out[replaced]
    seen |= set(new_np.astype(int))
    assert set(np.asarray(pool).ravel().astype(int)) <= seen
  assert int(count) == size and abs(swapped / total - 0.5) < 0.05, swapped / total
  # pool_size 0: images pass through.
  out, _, _ = cyclegan.query_pool(jnp.zeros((0, 1, 1, 1)), count, first, jax.random.key(9))
  np.testing.assert_array_equal(out, first)


def test_cycle_identity_and_least_squares_losses_on_known_inputs():
  x = jnp.zeros((2, 4, 4, 1))
  y = x.at[0].set(1.0)  # half the pixels differ by 1
  np.testing.assert_allclose(losses.l1_loss(y, x), 0.5)
  np.testing.assert_allclose(losses.l1_loss(x - 0.25, x), 0.25)
  real, fake = jnp.full((2, 3, 3), 1.0), jnp.full((2, 3, 3), 0.5)
  np.testing.assert_allclose(losses.lsgan_patch_discriminator_loss(real, fake), 0.5 * 0.25)
  np.testing.assert_allclose(losses.lsgan_patch_generator_loss(fake), 0.25)
  np.testing.assert_allclose(losses.lsgan_patch_discriminator_loss(fake * 0 + 1, fake * 0), 0.0)


def test_patch_discriminator_sees_70x70_patches():
  assert cyclegan_nn.receptive_field(3) == 70
  d = cyclegan_nn.PatchDiscriminator(width=4, num_layers=3)
  x = jnp.zeros((1, 128, 128, 1))
  params = d.init(jax.random.key(0), x)
  logits = d.apply(params, x)
  assert logits.shape == (1, 14, 14)
  # 128 -> 64 -> 32 -> 16 by stride-2 convs, then two stride-1 4x4 convs: 15, 14.
  assert d.apply(params, jnp.zeros((1, 256, 256, 1))).shape == (1, 30, 30)  # the paper's 30x30


@pytest.mark.parametrize("size,blocks", [(28, 6), (64, 9)])
def test_resnet_generator_keeps_the_image_shape(size, blocks):
  g = cyclegan_nn.ResnetGenerator(out_channels=3, width=8, num_blocks=blocks)
  x = jax.random.uniform(jax.random.key(0), (2, size, size, 3), minval=-1, maxval=1)
  y = g.apply(g.init(jax.random.key(1), x), x)
  assert y.shape == x.shape and float(jnp.max(jnp.abs(y))) <= 1.0


def test_authors_crop_and_flip():
  x = jnp.arange(2 * 8 * 8 * 1, dtype=jnp.float32).reshape(2, 8, 8, 1)
  out = unpaired.augment(x, jax.random.key(0), load_size=10, crop_size=8)
  assert out.shape == (2, 8, 8, 1)
  flipped = unpaired.augment(x, jax.random.key(3), load_size=0, crop_size=0, flip=True)
  for a, b in zip(np.asarray(x), np.asarray(flipped)):
    assert np.array_equal(a, b) or np.array_equal(a[:, ::-1], b)


def test_edges2fashion_domains_are_disjoint_and_test_is_paired(fashion_mnist_slice, tfds_dir):
  config = _tiny(fashion_mnist_slice, tfds_dir)
  train = unpaired.load(config.data, "train")
  test = unpaired.load(config.data, "test")
  assert not train.paired and test.paired and len(train.a) + len(train.b) == 2000
  # No garment in A has its edge map in B.
  edges_of_a = {e.tobytes() for e in unpaired.edge_map(train.a.images)}
  assert not edges_of_a & {e.tobytes() for e in train.b.images}
  np.testing.assert_array_equal(test.b.images, unpaired.edge_map(test.a.images))
  assert set(np.unique(train.b.images)) == {0, 255}


def _tiny(idx_dir, tfds_dir, **overrides):
  config = cyclegan_edges2fashion.get_config("tiny")
  return configs.apply_overrides(with_local_data(config, idx_dir, tfds_dir), overrides)


def test_resumed_run_equals_uninterrupted_run_pools_included(fashion_mnist_slice, tfds_dir,
                                                            tmp_path):
  config = _tiny(fashion_mnist_slice, tfds_dir, pool_size=6)
  full, _ = loop.train_and_evaluate(config, tmp_path / "full")
  half = _tiny(fashion_mnist_slice, tfds_dir, pool_size=6, num_steps=10)
  half.decay_start = 10
  loop.train_and_evaluate(half, tmp_path / "resumed")
  resumed, _ = loop.train_and_evaluate(config, tmp_path / "resumed")
  assert int(resumed.step) == 20 and int(resumed.pool_count[0]) == 6
  assert params_equal(full.g_ab.params, resumed.g_ab.params)
  assert params_equal(full.d_b.params, resumed.d_b.params)
  np.testing.assert_array_equal(full.pool_a, resumed.pool_a)
  np.testing.assert_array_equal(full.pool_b, resumed.pool_b)
  names = sorted(p.name for p in (tmp_path / "full" / "samples").glob("*.png"))
  assert names == [f"step_0000{s}_translation_{d}.png" for s in (10, 20) for d in ("a2b", "b2a")]


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
  config = cyclegan_edges2fashion.get_config()
  multiplier = cyclegan.lr_multiplier(config)
  schedule = lambda count: config.opt.lr * float(multiplier(count))
  np.testing.assert_allclose([schedule(0), schedule(1000)], 2e-4, rtol=1e-6)
  np.testing.assert_allclose(schedule(1500), 1e-4, rtol=1e-6)
  assert schedule(2000) == 0.0


def test_short_run_lowers_cycle_and_translation_errors(fashion_mnist_slice, tfds_dir, tmp_path):
  config = _tiny(fashion_mnist_slice, tfds_dir, num_steps=200, decay_start=100)
  config.model.g_width = 16
  config.eval_every = config.checkpoint_every = 200
  test = unpaired.load(config.data, "test")
  init = cyclegan.create_state(config, jax.random.key(0), (28, 28, 1))
  before = cyclegan_eval.translation_metrics(init, test)
  loop.train_and_evaluate(config, tmp_path)
  proc = subprocess.run([sys.executable, "-m", "genjax.evaluate", f"--workdir={tmp_path}"],
                        capture_output=True, text=True, cwd=ROOT, timeout=300,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-2000:]
  after = json.loads(proc.stdout)
  assert after["num_test_pairs"] == 500 and after["step"] == 200
  for name in ("cycle_l1_a", "cycle_l1_b"):
    assert after[name] < 0.6 * before[name], (name, before[name], after[name])
  # 200 steps of a tiny model teach the round trip, not yet the true edges (see the
  # README for the default run's figures); the paired metrics are reported and sane.
  assert 0.0 < after["ab_l1"] < 1.0 and after["ab_psnr_db"] > 0
  assert 0.0 <= after["ba_class_recognised"] <= 1.0


def test_horse2zebra_config_and_offline_error(tmp_path):
  config = cyclegan_horse2zebra.get_config()
  assert (config.model.g_blocks, config.model.d_layers, config.batch_size) == (9, 3, 1)
  assert (config.data.load_size, config.data.crop_size) == (286, 256)
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.cyclegan_horse2zebra", f"--workdir={tmp_path / 'run'}",
       f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.data.download=False"],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 1 and "'cycle_gan/horse2zebra' is unavailable" in proc.stderr, (
      proc.stderr[-2000:])
  assert not (tmp_path / "run").exists()
