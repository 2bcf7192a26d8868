"""VAE family on real images: the ELBO improves, IWAE tightens, beta collapses units."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import vae_fashion_mnist, vae_mnist
from genjax import configs, data, loop
from genjax.evaluators import vae as vae_eval
from genjax.steps import vae
from tests.conftest import with_local_data

ROOT = Path(__file__).resolve().parents[1]


def _tiny(idx_dir, tfds_dir, dataset="mnist", **overrides):
  config = (vae_mnist if dataset == "mnist" else vae_fashion_mnist).get_config("tiny")
  return configs.apply_overrides(with_local_data(config, idx_dir, tfds_dir), overrides)


@pytest.fixture(scope="module")
def trained(fashion_mnist_slice, tfds_dir, tmp_path_factory):
  """A small VAE trained for 300 steps on the Fashion-MNIST slice."""
  workdir = tmp_path_factory.mktemp("vae")
  config = _tiny(fashion_mnist_slice, tfds_dir, "fashion_mnist")
  state, _ = loop.train_and_evaluate(config, workdir)
  test = data.load("fashion_mnist", "test", data_dir=str(tfds_dir),
                   idx_dir=str(fashion_mnist_slice), download=False)
  return config, state, test, workdir


def test_elbo_improves_on_real_data(trained, fashion_mnist_slice, tfds_dir):
  config, state, test, _ = trained
  init = vae.create_state(config, jax.random.key(config.seed), (28, 28, 1))
  x = vae_eval.test_targets(test, "bernoulli", jax.random.key(0))
  before = float(jnp.mean(vae.elbo(init, x, jax.random.key(1))))
  after = float(jnp.mean(vae.elbo(state, x, jax.random.key(1))))
  # 784 binary pixels: a useless model is near -543 nats; 300 steps reach well below 300.
  assert after > before + 200 and after > -300, (before, after)


def test_iwae_is_elbo_at_k1_and_never_lower_with_k(trained):
  config, state, test, _ = trained
  x = vae_eval.test_targets(test, "bernoulli", jax.random.key(0))[:200]
  key = jax.random.key(2)
  elbo = float(np.mean([np.mean(vae.elbo(state, x, jax.random.fold_in(key, i))) for i in range(20)]))
  iwae1 = float(np.mean([np.mean(vae_eval.iwae_log_likelihood(state, x, jax.random.fold_in(key, 100 + i), 1))
                         for i in range(20)]))
  assert abs(iwae1 - elbo) < 0.5, (iwae1, elbo)  # equal in expectation
  bounds = [float(np.mean(vae_eval.iwae_log_likelihood(state, x, key, k, chunk=16))) for k in (1, 10, 100)]
  assert bounds[0] < bounds[1] < bounds[2], bounds
  # Chunking changes memory, not the estimate's distribution: same k, other chunk.
  other = float(np.mean(vae_eval.iwae_log_likelihood(state, x, jax.random.key(3), 100, chunk=7)))
  assert abs(other - bounds[2]) < 1.0, (other, bounds[2])


def test_evaluate_cli_prints_json(trained):
  _, _, _, workdir = trained
  proc = subprocess.run(
      [sys.executable, "-m", "genjax.evaluate", f"--workdir={workdir}", "--iwae_k=50", "--num_test=200",
       "--num=300"],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout)
  assert result["num_test_images"] == 200 and result["iwae_k"] == 50
  assert result["dataset"] == "fashion_mnist" and result["step"] == 300
  # NLL >= -ELBO on average: IWAE-50 is the tighter bound.
  assert 0 < result["iwae_50_nll_nats"] < -result["test_elbo_nats"]
  # Samples are scored too, and a 300-step VAE is still far from the data.
  assert result["samples"]["num_samples"] == 300
  assert result["floor_train_vs_test"]["fid"] < result["samples"]["fid"]


def test_run_writes_vae_grids(trained):
  _, _, _, workdir = trained
  names = sorted(p.name for p in (workdir / "samples").glob("*.png"))
  assert names == [f"step_000300_{n}.png" for n in ("interpolations", "reconstructions", "samples")]


def test_large_beta_collapses_posterior(mnist_idx_dir, tfds_dir, tmp_path):
  x = None
  units = {}
  for beta in (1.0, 20.0):
    config = _tiny(mnist_idx_dir, tfds_dir, beta=beta)
    state, _ = loop.train_and_evaluate(config, tmp_path / f"beta{beta}")
    if x is None:
      test = data.load("mnist", "test", data_dir=str(tfds_dir), idx_dir=str(mnist_idx_dir),
                       download=False)
      x = vae_eval.test_targets(test, "bernoulli", jax.random.key(0))
    units[beta] = vae_eval.active_units(state, x)
  assert units[20.0] <= units[1.0] // 2, units  # measured: 8 of 8 active at beta=1, 3 at 20


def test_two_dimensional_latent_writes_scatter_and_manifold(mnist_idx_dir, tfds_dir, tmp_path):
  config = _tiny(mnist_idx_dir, tfds_dir, **{"model.latent_dim": 2, "num_steps": 20,
                                             "eval_every": 20, "checkpoint_every": 20})
  loop.train_and_evaluate(config, tmp_path)
  from PIL import Image
  scatter = np.asarray(Image.open(tmp_path / "samples" / "step_000020_latent_scatter.png"))
  manifold = np.asarray(Image.open(tmp_path / "samples" / "step_000020_manifold.png"))
  assert scatter.shape[-1] == 3 and len(np.unique(scatter.reshape(-1, 3), axis=0)) > 10  # coloured points
  # 15 x 15 decoded digits, no padding, written grid_scale times larger.
  assert config.grid_scale == 2 and manifold.shape[:2] == (2 * 15 * 28, 2 * 15 * 28)


def test_gaussian_decoder_trains(fashion_mnist_slice, tfds_dir, tmp_path):
  config = _tiny(fashion_mnist_slice, tfds_dir, "fashion_mnist",
                 **{"model.likelihood": "gaussian", "model.arch": "conv", "model.width": 8,
                    "num_steps": 100, "eval_every": 100, "checkpoint_every": 100})
  state, metrics = loop.train_and_evaluate(config, tmp_path)
  init = vae.create_state(config, jax.random.key(0), (28, 28, 1))
  test = data.load("fashion_mnist", "test", data_dir=str(tfds_dir), idx_dir=str(fashion_mnist_slice),
                   download=False)
  x = vae_eval.test_targets(test, "gaussian", jax.random.key(0))
  assert float(jnp.mean(vae.elbo(state, x, jax.random.key(1)))) > float(
      jnp.mean(vae.elbo(init, x, jax.random.key(1)))) + 100


def test_kl_warmup_weights_kl_and_eval_step_reports_beta_one():
  config = vae_mnist.get_config()
  config.model.hidden, config.model.latent_dim = (16,), 4
  config.kl_warmup_steps, config.beta = 10, 2.0
  state = vae.create_state(config, jax.random.key(0), (28, 28, 1))
  batch = {"image": jax.random.uniform(jax.random.key(1), (1, 8, 28, 28, 1), minval=-1, maxval=1)}
  step = jax.jit(vae.make_train_step(config))
  for i, expected_beta in ((0, 0.2), (1, 0.4)):  # beta * (step + 1) / 10
    state_before = state
    state, m = step(state, batch, jax.random.key(2))
    np.testing.assert_allclose(m["loss"], -(m["log_px_z"] - expected_beta * m["kl"]), rtol=1e-5)
    np.testing.assert_allclose(m["elbo"], m["log_px_z"] - m["kl"], rtol=1e-5)
  ev = vae.eval_step(state_before, {"image": batch["image"][0]}, jax.random.key(2),
                     likelihood="bernoulli")
  np.testing.assert_allclose(ev["elbo"], m["elbo"], rtol=1e-5)  # same key, same state, same terms
