"""VAE family on real images: the ELBO improves, IWAE tightens, beta collapses units."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import vae_fashion_mnist, vae_mnist
from genjax import configs, data, losses, optim
from genjax.train import loop
from genjax.models.vae import evaluate as vae_eval
from genjax.models.vae import step as vae
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
  # --num 0: the family's measures alone, the same NLL (same keys), no samples
  alone = subprocess.run(
      [sys.executable, "-m", "genjax.evaluate", f"--workdir={workdir}", "--iwae_k=50",
       "--num_test=200", "--num=0"],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert alone.returncode == 0, alone.stderr[-2000:]
  alone = json.loads(alone.stdout)
  assert "samples" not in alone and "floor_train_vs_test" not in alone
  assert alone["sample_metrics"] == "skipped (--num 0)"
  assert alone["iwae_50_nll_nats"] == result["iwae_50_nll_nats"]


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


# ----------------------------------------------------------------------------
# Burda et al. (2016): the IWAE objective, its gradient, the schedule, the presets.


def _tiny_state(config, image_shape=(2, 2, 1), dtype=None):
  state = vae.create_state(config, jax.random.key(0), image_shape)
  if dtype is None:
    return state
  cast = lambda tree: jax.tree.map(lambda p: p.astype(dtype), tree)
  return state.replace(encoder=state.encoder.replace(params=cast(state.encoder.params)),
                       decoder=state.decoder.replace(params=cast(state.decoder.params)))


def _tiny_config(**overrides):
  config = vae_mnist.get_config()
  config.model.hidden, config.model.latent_dim = (3,), 2
  return configs.apply_overrides(config, overrides)


def test_iwae_bound_at_k1_is_the_elbo():
  config = _tiny_config(**{"model.hidden": (16,), "model.latent_dim": 4})
  state = _tiny_state(config, (28, 28, 1))
  x = (jax.random.uniform(jax.random.key(1), (8, 28, 28, 1)) < 0.3).astype(jnp.float32)
  params = (state.encoder.params, state.decoder.params)
  keys = jax.random.split(jax.random.key(2), 4000)

  def both(key):
    bound, log_px_z, log_pz_qz = vae.iwae_bound(*params, state, x, key, 1)
    elbo_log_px_z, kl = vae._elbo_terms(*params, state, x, key)
    return bound, log_px_z[0], log_pz_qz[0], elbo_log_px_z, kl

  bound, log_px_z, log_pz_qz, elbo_log_px_z, kl = jax.jit(jax.vmap(both))(keys)  # [4000, 8]
  # The same z: the same reconstruction term; log w = log p(x|z) - (log q - log p).
  np.testing.assert_allclose(log_px_z, elbo_log_px_z, rtol=1e-6)
  np.testing.assert_allclose(bound, log_px_z + log_pz_qz, rtol=1e-6)
  # The sampled KL, log q(z|x) - log p(z), averages to the analytic KL: over
  # 4,000 draws its standard error is about 0.05 nats here.
  np.testing.assert_allclose(np.mean(-log_pz_qz, axis=0), np.mean(kl, axis=0), atol=0.25)
  # And the train step at iwae_k_train=1 reports its loss as -ELBO.
  config.iwae_k_train = 1
  batch = {"image": x[None] * 2 - 1}
  _, m = jax.jit(vae.make_train_step(config))(state, batch, jax.random.key(3))
  np.testing.assert_allclose(m["loss"], -m["elbo"], rtol=1e-6)
  np.testing.assert_allclose(m["elbo"], m["log_px_z"] - m["kl"], rtol=1e-5)


def test_iwae_gradient_matches_finite_differences_and_the_weighted_form():
  """d/dθ log (1/k) Σ w_i = Σ w~_i d/dθ log w_i (Burda et al. 2016, eq. 13),
  and both agree with central differences, in float64 on a tiny model."""
  with jax.enable_x64(True):
    config = _tiny_config()
    state = _tiny_state(config, dtype=jnp.float64)
    x = jnp.asarray([[[[1.0], [0.0]], [[1.0], [1.0]]], [[[0.0], [0.0]], [[1.0], [0.0]]]])  # [2, 2, 2, 1]
    params = (state.encoder.params, state.decoder.params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    assert flat.dtype == jnp.float64 and flat.size > 30
    key, k = jax.random.key(4), 5

    def bound(theta):  # fixed eps: a deterministic function of the parameters
      return jnp.sum(vae.iwae_bound(*unravel(theta), state, x, key, k)[0])

    grad = jax.grad(bound)(flat)
    directions = jax.random.normal(jax.random.key(5), (6, flat.size), jnp.float64)
    h = 1e-6
    for v in directions:
      numeric = (bound(flat + h * v) - bound(flat - h * v)) / (2 * h)
      np.testing.assert_allclose(float(grad @ v), float(numeric), rtol=1e-6, atol=1e-8)

    def log_w(theta):  # [k, B]
      a, b = vae._log_weight_terms(*unravel(theta), state, x, key, k)
      return a + b

    w = jax.nn.softmax(log_w(flat), axis=0)  # normalised weights [k, B]
    jac = jax.jacobian(log_w)(flat)  # [k, B, P]
    np.testing.assert_allclose(grad, np.einsum("kb,kbp->p", w, jac), rtol=1e-9, atol=1e-12)


def test_burda_schedule_multiplies_the_learning_rate():
  config = _tiny_config(**{"opt.schedule": "burda", "opt.examples_per_pass": 10,
                           "batch_size": 5})  # 2 steps per pass
  multiplier = vae.lr_multiplier(config)
  # Stage i = 0..7 runs 3^i passes at 10^(-i/7): it ends after (3^(i+1) - 1) / 2 passes.
  ends = [1, 4, 13, 40, 121, 364, 1093]
  for i, end in enumerate(ends):
    np.testing.assert_allclose(multiplier(2 * end - 1), 10 ** (-i / 7), rtol=1e-6)
    np.testing.assert_allclose(multiplier(2 * end), 10 ** (-(i + 1) / 7), rtol=1e-6)
  np.testing.assert_allclose(multiplier(0), 1.0)
  np.testing.assert_allclose(multiplier(2 * 3280 + 5), 0.1, rtol=1e-6)  # after the schedule
  assert vae.burda_passes() == 3280 and vae.steps_per_pass(config) == 2

  # In the state: opt.lr stays in the optimiser's numbers, and the update
  # at count c is the constant-rate update times multiplier(c).
  constant = vae.create_state(_tiny_config(), jax.random.key(0), (2, 2, 1))
  scheduled = vae.create_state(config, jax.random.key(0), (2, 2, 1))
  assert float(scheduled.encoder.opt_state.hyperparams["learning_rate"]) == pytest.approx(1e-3)
  grads = jax.tree.map(jnp.ones_like, constant.encoder.params)
  for count in (0, 2 * 13, 2 * 1093):
    at = lambda s: s.encoder.replace(step=count, opt_state=jax.tree.map(
        lambda a: jnp.full_like(a, count) if a.dtype == jnp.int32 else a, s.encoder.opt_state))
    updates = [jax.flatten_util.ravel_pytree(at(s).tx.update(grads, at(s).opt_state,
                                                             s.encoder.params)[0])[0]
               for s in (constant, scheduled)]
    np.testing.assert_allclose(updates[1], updates[0] * float(multiplier(count)), rtol=1e-5)


def test_burda_presets_follow_the_batch_size():
  config = vae_mnist.get_config("burda_vae")
  assert (config.iwae_k_train, config.opt.schedule, config.final_iwae_k) == (1, "burda", 5000)
  assert (config.model.hidden, config.model.latent_dim, config.model.activation) == (
      (200, 200), 50, "tanh")
  assert (config.opt.lr, config.opt.b1, config.opt.b2, config.opt.eps) == (1e-3, 0.9, 0.999, 1e-4)
  assert config.num_steps == 3280 * 60000 // config.batch_size
  config.batch_size = 20  # as --config.batch_size=20 does: the schedule is in passes
  assert config.num_steps == 3280 * 3000 and config.eval_every == 100 * 3000
  assert vae_mnist.get_config("burda_iwae5").iwae_k_train == 5
  assert vae_mnist.get_config("burda_iwae50").iwae_k_train == 50
  assert vae_mnist.get_config("burda_iwae5,tiny").num_steps == 300  # tiny's own budget


def test_adam_burda_steps_as_the_authors_code():
  """opt.variant='burda' against a transcription of Burda et al.'s Theano
  Adam (second moments from 1, the step before's moments, the gradient of
  the batch's sum): the same parameters after 5 steps of a toy loss, and the
  first step moves nothing. burda_code sets it with b1 0.99 and Glorot."""
  config = vae_mnist.get_config("burda_vae,burda_code")
  assert (config.opt.variant, config.opt.b1, config.model.weight_init) == ("burda", 0.99,
                                                                          "glorot")
  config = _tiny_config(**{"opt.variant": "burda", "opt.b1": 0.99, "batch_size": 20})
  state = vae.create_state(config, jax.random.key(0), (2, 2, 1)).encoder
  assert float(state.opt_state.hyperparams["grad_scale"]) == 20
  rng = np.random.default_rng(0)
  target = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), state.params)
  mean_grad = lambda p: jax.grad(  # a batch's mean loss, as genjax's losses are
      lambda q: sum(jnp.sum((a - b)**2) for a, b in zip(jax.tree.leaves(q),
                                                        jax.tree.leaves(target))) / 20)(p)

  start = jax.tree.leaves(state.params)
  theirs = [np.asarray(p, np.float64) for p in start]
  m = [np.zeros_like(p) for p in theirs]
  v = [np.ones_like(p) for p in theirs]
  targets = jax.tree.leaves(target)
  for t in range(1, 6):  # optimizers.Adam.updatesIgrad_model, descending
    grads = [-2 * (p - y) for p, y in zip(theirs, targets)]  # the sum's ascent direction
    alpha = 1e-3 * np.sqrt(1 - 0.999**t) / (1 - 0.99**t)
    theirs = [p + alpha * mi / (np.sqrt(vi) + 1e-4) for p, mi, vi in zip(theirs, m, v)]
    m = [0.99 * mi + 0.01 * g for mi, g in zip(m, grads)]
    v = [0.999 * vi + 0.001 * g * g for vi, g in zip(v, grads)]
    state = state.apply_gradients(grads=mean_grad(state.params))
    if t == 1:
      assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params), start))
  ours = jax.tree.leaves(state.params)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-7)
  # eps outside the square root, where it matters: second moments near 0
  tx = optim.scale_by_burda_adam(0.99, 0.999, 1e-4, 20.0)
  mu, nu = jnp.asarray([0.5, -2e-4]), jnp.asarray([1e-10, 4e-8])
  out, _ = tx.update(jnp.zeros(2), optim.BurdaAdamState(jnp.asarray(9, jnp.int32), mu, nu))
  alpha = np.sqrt(1 - 0.999**10) / (1 - 0.99**10)
  np.testing.assert_allclose(out, alpha * np.asarray(mu) / (np.sqrt(np.asarray(nu)) + 1e-4),
                             rtol=1e-5)


@pytest.mark.parametrize("overrides, message", [
    ({"opt.variant": "adam"}, "config.opt.variant='adam'"),
    ({"iwae_k_train": -1}, "iwae_k_train"),
    ({"iwae_k_train": 5, "beta": 2.0}, "beta"),
    ({"opt.schedule": "cosine"}, "opt.schedule"),
    ({"opt.schedule": "burda"}, "examples_per_pass"),
    ({"model.weight_init": "xavier"}, "model.weight_init='xavier'"),
    ({"model.weight_init": "glorot", "model.arch": "conv"},
     "weight_init='glorot' sets the MLP's initialisation; config.model.arch='conv'"),
])
def test_validate_config_names_the_bad_key(overrides, message):
  with pytest.raises(ValueError, match=message):
    vae.validate_config(_tiny_config(**overrides))


def test_glorot_init_draws_the_authors_uniform_and_the_default_is_flax():
  """model.weight_init='glorot': every MLP kernel uniform on +-sqrt(6 / (fan_in +
  fan_out)) (its variance a^2 / 3); '' leaves Flax's LeCun normal."""
  key = jax.random.key(0)
  glorot = vae.create_state(
      _tiny_config(**{"model.weight_init": "glorot", "model.hidden": (200, 200)}), key, (28, 28, 1))
  default = vae.create_state(_tiny_config(**{"model.hidden": (200, 200)}), key, (28, 28, 1))
  kernels = [(p, v) for p, v in jax.tree_util.tree_leaves_with_path(
      (glorot.encoder.params, glorot.decoder.params)) if "kernel" in jax.tree_util.keystr(p)]
  assert len(kernels) == 7  # 784-200-200-(2, 2) and 2-200-200-784
  for path, w in kernels:
    a = np.sqrt(6.0 / sum(w.shape))
    assert float(jnp.max(jnp.abs(w))) <= a, path
    np.testing.assert_allclose(float(jnp.var(w)), a**2 / 3, rtol=0.1, err_msg=str(path))
  lecun = [v for p, v in jax.tree_util.tree_leaves_with_path(default.decoder.params)
           if "kernel" in jax.tree_util.keystr(p)]
  for w in lecun:  # LeCun normal: variance 1 / fan_in, not uniform
    np.testing.assert_allclose(float(jnp.var(w)), 1.0 / w.shape[0], rtol=0.15)
    assert float(jnp.max(jnp.abs(w))) > np.sqrt(3.0 / w.shape[0])


def test_binarize_draws_independent_bernoullis():
  p = jnp.full((1000, 1000), 0.3)
  a = vae.binarize(jax.random.key(0), p)
  b = vae.binarize(jax.random.key(1), p)
  assert abs(float(a.mean()) - 0.3) < 0.003  # 1e6 draws: standard error 0.00046
  assert abs(float(jnp.mean(a * b)) - 0.09) < 0.003  # another key: independent
  assert abs(float(jnp.mean(a[:, 1:] * a[:, :-1])) - 0.09) < 0.003  # neighbours too
  edges = vae.binarize(jax.random.key(2), jnp.asarray([0.0, 1.0] * 500))
  np.testing.assert_array_equal(edges, np.asarray([0.0, 1.0] * 500))


def test_normal_draws_standard_normals():
  z = np.asarray(vae.normal(jax.random.key(0), (1001, 999)), np.float64)  # odd: a half pair
  assert z.shape == (1001, 999) and abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
  assert abs(np.mean(z**4) - 3) < 0.05  # the kurtosis of a normal
  # Box-Muller pairs (first and second half) and neighbours are uncorrelated.
  flat = z.reshape(-1)
  half = (flat.size + 1) // 2
  assert abs(np.corrcoef(flat[:half - 1], flat[half:])[0, 1]) < 0.005
  assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.005
  other = np.asarray(vae.normal(jax.random.key(1), (1001, 999)))
  assert abs(np.corrcoef(flat, other.reshape(-1))[0, 1]) < 0.005
  # The same key and size give the same numbers whatever the shape.
  np.testing.assert_array_equal(vae.normal(jax.random.key(2), (3, 4)).reshape(-1),
                                vae.normal(jax.random.key(2), (12,)))


def test_bernoulli_likelihood_and_gradient_match_the_softplus_form():
  logits = jax.random.normal(jax.random.key(0), (3, 4, 784)) * 8
  logits = logits.at[0, 0, :3].set(jnp.asarray([0.0, 40.0, -40.0]))
  x = (jax.random.uniform(jax.random.key(1), (1, 4, 784)) < 0.5).astype(jnp.float32)
  ours = lambda l: vae.bernoulli_log_likelihood(l, x)
  reference = lambda l: losses.bernoulli_log_likelihood(l, x, event_ndim=1)
  np.testing.assert_allclose(ours(logits), reference(logits), rtol=1e-6)
  grad = lambda f: jax.grad(lambda l: jnp.sum(f(l)))(logits)
  np.testing.assert_allclose(grad(ours), grad(reference), atol=1e-6)  # x - sigmoid(l)


def test_iwae_preset_trains_and_reports_the_final_nll(mnist_idx_dir, tfds_dir, tmp_path):
  config = _tiny(mnist_idx_dir, tfds_dir)
  configs.apply_overrides(config, {**vae_mnist._BURDA, "iwae_k_train": 5, "final_iwae_k": 20,
                                   "opt.examples_per_pass": 1000, "num_steps": 20,
                                   "eval_every": 20, "checkpoint_every": 20})
  state, _ = loop.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 20
  from tensorboard.backend.event_processing import event_accumulator
  events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  events.Reload()
  nll = [e.value for e in events.Scalars("eval/iwae_20_nll_nats")]
  assert len(nll) == 1 and 80 < nll[0] < 550, nll
