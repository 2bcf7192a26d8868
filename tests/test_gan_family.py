"""The GAN variants: each loss learns on real digits; clipping, spectral norm,
EMA and conditioning do what they claim."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import gan_mnist
from genjax import configs, data
from genjax.train import loop
from genjax.train import workdir as rundir
from genjax.metrics import features, scores
from genjax.models.gan import step as gan
from tests.conftest import make_tiny_gan_config, params_equal, with_local_data

ROOT = Path(__file__).resolve().parents[1]


def _preset(name, mnist_idx_dir, tfds_dir):
  """A preset on the tiny networks of the loop tests."""
  return with_local_data(gan_mnist.get_config(f"{name},tiny"), mnist_idx_dir, tfds_dir)


def _batch(n_critic, b=8, seed=0):
  x = jax.random.uniform(jax.random.key(seed), (n_critic, b, 28, 28, 1), minval=-1, maxval=1)
  return {"image": x, "label": jnp.arange(n_critic * b).reshape(n_critic, b) % 10}


@pytest.fixture(scope="module")
def mnist_scorer(mnist_idx_dir, tfds_dir):
  test = data.load("mnist", "test", idx_dir=str(mnist_idx_dir), data_dir=str(tfds_dir),
                   download=False)
  return scores.Scorer("mnist", test.images, kid_subsets=5)


@pytest.mark.parametrize("preset", ["gan", "wgan", "wgan_gp", "hinge_sn", "lsgan"])
def test_each_loss_lowers_fid_on_real_digits(preset, mnist_idx_dir, tfds_dir, mnist_scorer,
                                             tmp_path):
  config = _preset(preset, mnist_idx_dir, tfds_dir)
  # A Lipschitz-constrained critic (clipped or spectrally normalised) learns slower.
  config.num_steps = 300 if preset in ("wgan", "hinge_sn") else 150
  config.batch_size = 32
  config.eval_every = config.checkpoint_every = config.num_steps
  # The papers' learning rates are for long runs; a tiny model in 150 steps needs more.
  config.opt.g_lr = config.opt.d_lr = 5e-4 if config.opt.name == "rmsprop" else 1e-3
  key = jax.random.key(7)
  init = gan.create_state(config, jax.random.key(0), (28, 28, 1), 10)
  before = np.asarray(gan.sample(init, key, 500, config))
  state, metrics = loop.train_and_evaluate(config, tmp_path)
  after = np.asarray(gan.sample(state, key, 500, config))
  fid_before = mnist_scorer(before, full=False)["fid"]
  fid_after = mnist_scorer(after, full=False)["fid"]
  assert fid_after < 0.6 * fid_before, (preset, fid_before, fid_after)
  if preset == "wgan_gp":
    assert "gp" in metrics and np.isfinite(metrics["gp"])


def test_weight_clipping_bounds_every_critic_weight(mnist_idx_dir, tfds_dir):
  config = _preset("wgan", mnist_idx_dir, tfds_dir)
  config.clip_value = 0.005
  state = gan.create_state(config, jax.random.key(0), (28, 28, 1), 10)
  assert max(float(jnp.max(jnp.abs(p))) for p in jax.tree.leaves(state.discriminator.params)) > 0.05
  new, _ = gan.make_train_step(config)(state, _batch(config.n_critic), jax.random.key(1))
  assert max(float(jnp.max(jnp.abs(p))) for p in jax.tree.leaves(new.discriminator.params)) <= 0.005


def test_spectral_norm_state_tracks_the_largest_singular_value(mnist_idx_dir, tfds_dir):
  config = _preset("hinge_sn", mnist_idx_dir, tfds_dir)
  state = gan.create_state(config, jax.random.key(0), (28, 28, 1), 10)
  step = jax.jit(gan.make_train_step(config))
  stats0 = state.discriminator.batch_stats
  assert stats0, "the power-iteration vectors live in the discriminator's TrainState"
  for i in range(30):
    state, _ = step(state, _batch(1, seed=i), jax.random.key(i))
  assert not params_equal(stats0, state.discriminator.batch_stats)
  # Each layer's stored sigma matches the true top singular value of its weight.
  d_params, d_stats = state.discriminator.params, state.discriminator.batch_stats
  for layer, stats in d_stats.items():
    (name,) = [k[:-len("/sigma")] for k in stats if k.endswith("/sigma")]
    module, leaf = name.split("/")
    kernel = np.asarray(d_params[module][leaf])
    true_sigma = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    np.testing.assert_allclose(float(stats[f"{name}/sigma"]), true_sigma, rtol=0.05,
                               err_msg=layer)


def test_ema_is_the_exponential_average_of_generator_weights(mnist_idx_dir, tfds_dir):
  config = make_tiny_gan_config(mnist_idx_dir, tfds_dir)
  config.ema_decay = 0.9
  state = gan.create_state(config, jax.random.key(0), (28, 28, 1), 10)
  step = gan.make_train_step(config)
  s1, _ = step(state, _batch(1), jax.random.key(1))
  s2, _ = step(s1, _batch(1, seed=1), jax.random.key(2))
  expected = jax.tree.map(lambda e0, p1, p2: 0.9 * (0.9 * e0 + 0.1 * p1) + 0.1 * p2,
                          state.ema_params, s1.generator.params, s2.generator.params)
  for a, b in zip(jax.tree.leaves(s2.ema_params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert not params_equal(s2.ema_params, s2.generator.params)
  # Sampling uses the average, not the raw weights.
  z = jax.random.normal(jax.random.key(3), (4, config.model.latent_dim))
  np.testing.assert_allclose(gan.sample(s2, jax.random.key(3), 4, config),
                             gan.generate(s2, z, ema=True), atol=1e-6)
  assert not np.allclose(gan.generate(s2, z, ema=True), gan.generate(s2, z, ema=False))


def test_conditional_gan_draws_the_requested_classes(mnist_idx_dir, tfds_dir, tmp_path):
  config = _preset("cgan", mnist_idx_dir, tfds_dir)
  config.num_steps, config.batch_size = 300, 32
  config.eval_every = config.checkpoint_every = 300
  config.model.g_width = config.model.d_width = 16
  config.opt.g_lr = config.opt.d_lr = 1e-3
  loop.train_and_evaluate(config, tmp_path)
  out = tmp_path / "threes.npz"
  proc = subprocess.run(
      [sys.executable, "-m", "genjax.sample", f"--workdir={tmp_path}", "--num=200",
       "--labels=3,7", f"--out={out}"],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-2000:]
  with np.load(out) as f:
    images, labels = f["images"], f["labels"]
  np.testing.assert_array_equal(labels, np.resize([3, 7], 200))
  logits, _ = features.load("mnist")(images)
  agreement = float(np.mean(logits.argmax(1) == labels))
  assert agreement > 0.5, agreement  # chance: 0.1
  # A class the data does not have is refused, naming the flag and the range.
  bad = subprocess.run(
      [sys.executable, "-m", "genjax.sample", f"--workdir={tmp_path}", "--labels=12"],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert bad.returncode == 1 and "--labels" in bad.stderr and "0..9" in bad.stderr, bad.stderr


def test_bad_gan_configs_are_named():
  for overrides, message in (
      ({"loss": "wasserstein"}, "clip_value > 0"),
      ({"loss": "wgan_gp"}, "gp_weight > 0"),
      ({"ema_decay": 1.0}, "ema_decay=1.0"),
      ({"opt.name": "sgd"}, "opt.name='sgd'"),
      ({"r1_gamma": -1.0}, "r1_gamma=-1.0"),
  ):
    config = configs.apply_overrides(gan_mnist.get_config(), overrides)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
      gan.validate_config(config)
  with pytest.raises(ValueError, match="Unknown preset 'wgangp'"):
    gan_mnist.get_config("wgangp")


@pytest.mark.parametrize("preset", [None, "hinge_sn"])
def test_cifar10_config_trains_on_32x32_rgb(preset):
  from experiments import gan_cifar10

  config = gan_cifar10.get_config(preset)
  config.model.g_width, config.model.d_width, config.batch_size = 8, 8, 4
  state = gan.create_state(config, jax.random.key(0), (32, 32, 3), 10)
  x = jax.random.uniform(jax.random.key(1), (1, 4, 32, 32, 3), minval=-1, maxval=1)
  new, metrics = gan.make_train_step(config)(state, {"image": x, "label": jnp.zeros((1, 4), int)},
                                             jax.random.key(2))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert gan.sample(new, jax.random.key(3), 5, config).shape == (5, 32, 32, 3)


def _tiny_model(**overrides):
  config = gan_mnist.get_config()
  config.model.latent_dim, config.model.g_width, config.model.d_width = 8, 4, 4
  return configs.apply_overrides(config, overrides)


def test_lecam_adds_to_d_loss_and_its_averages_follow_d():
  """LeCam (Tseng et al. 2021): the regulariser changes D's update, and its
  averages take 1 - 0.99 of D's mean outputs on real and fake images."""
  config = _tiny_model(loss="hinge", lecam_weight=0.5)  # hinge: d_real, d_fake are raw outputs
  state = gan.create_state(config, jax.random.key(0), (28, 28, 1))
  batch = _batch(1)
  new, metrics = gan.make_train_step(config)(state, batch, jax.random.key(2))
  plain, plain_metrics = gan.make_train_step(_tiny_model(loss="hinge"))(state, batch,
                                                                       jax.random.key(2))
  ema = 0.01 * np.array([metrics["d_real"], metrics["d_fake"]])
  np.testing.assert_allclose(new.lecam_ema, ema, rtol=1e-5)
  assert np.array_equal(plain.lecam_ema, [0.0, 0.0]) and "lecam" not in plain_metrics
  assert float(metrics["d_loss"]) == float(plain_metrics["d_loss"])  # the same D before the update
  assert metrics["lecam"] > 0 and not params_equal(new.discriminator.params,
                                                   plain.discriminator.params)
  again, _ = gan.make_train_step(config)(new, batch, jax.random.key(3))
  assert not np.array_equal(again.lecam_ema, new.lecam_ema)


@pytest.mark.parametrize("norm", ["virtual_batch", "batch"])
def test_virtual_batch_norm_makes_an_image_independent_of_its_batch(norm):
  """With virtual batch norm, G(z) of an image is the same whatever the rest
  of its batch, in training and inference; with batch norm in training it
  is not."""
  config = _tiny_model(**{"model.norm": norm})
  state = gan.create_state(config, jax.random.key(0), (28, 28, 1))
  g = state.generator
  z = jax.random.normal(jax.random.key(1), (8, 8))
  other = z.at[1:].set(3 * jax.random.normal(jax.random.key(2), (7, 8)))
  labels = jnp.zeros(8, jnp.int32)
  train = lambda z: gan._generate_train(g, g.params, g.batch_stats, z, labels[:len(z)])[0][0]
  same = [np.allclose(train(z), train(other), atol=1e-6), np.allclose(train(z), train(z[:1]))]
  assert same == ([True, True] if norm == "virtual_batch" else [False, False])
  if norm == "virtual_batch":
    np.testing.assert_allclose(gan.generate(state, z)[0], train(z), atol=1e-6)
    reference = g.batch_stats["vbn_reference_z"]
    assert reference.shape == (config.batch_size, 8)  # drawn once, with a fixed key
    again = gan.create_state(config, jax.random.key(5), (28, 28, 1)).generator.batch_stats
    assert np.array_equal(again["vbn_reference_z"], reference)
    new, _ = gan.make_train_step(config)(state, _batch(1), jax.random.key(3))
    assert np.array_equal(new.generator.batch_stats["vbn_reference_z"], reference)


def test_unknown_augment_and_norm_names_are_named():
  with pytest.raises(ValueError, match=r"config.augment='adda'.*\['none', 'diffaugment', 'ada'\]"):
    gan.validate_config(_tiny_model(augment="adda"))
  with pytest.raises(ValueError, match=r"config.model.norm='layer'.*\['batch', 'virtual_batch'\]"):
    gan.validate_config(_tiny_model(**{"model.norm": "layer"}))
  with pytest.raises(ValueError, match="lecam_weight=-1.0"):
    gan.validate_config(_tiny_model(lecam_weight=-1.0))
