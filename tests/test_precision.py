"""config.precision=bfloat16 on each family's tiny preset: it trains with
float32 parameters, resumes bitwise, stays near the float32 run's losses on
real data, and a NaN stops it as it stops a float32 run.

Each family trains three runs on real images, shared by the tests: float32
and bfloat16 for `steps` steps, and bfloat16 for half of them, then resumed
to `steps`; every step's metrics are recorded as the loop reads them.
The file takes about 8 minutes on 2 busy CPU cores, mostly compilation.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import (biggan_folder, cyclegan_edges2fashion, pix2pix_edges2fashion,
                         progan_fashion_mnist, vae_mnist)
from genjax import configs, models
from genjax.train import loop
from tests.conftest import (make_tiny_gan_config, module_compilation_cache, params_equal,
                            with_local_data)


@pytest.fixture(scope="module", autouse=True)
def compilation_cache_dir(tmp_path_factory):
  """The half run and its resumption compile the full run's program again."""
  yield from module_compilation_cache(tmp_path_factory, "precision")


# family: (steps, the loss compared, its largest difference between the
# float32 and bfloat16 runs' means over the last quarter of the steps: a
# fraction of the float32 mean, or for ProGAN's Wasserstein loss, whose mean
# is near 0, a multiple of the float32 run's standard deviation over those
# steps). Measured on this stack (2 CPU cores, JAX 0.10), deterministic from
# run to run; the bounds leave room for another CPU's or XLA's rounding.
FAMILIES = {
    "gan": (100, "d_loss", 0.10),  # measured: 1.2506 vs 1.2494 (0.1%)
    "vae": (100, "loss", 0.02),  # measured: 229.553 vs 229.547 nats (0.003%)
    "cyclegan": (60, "cycle_a", 0.10),  # measured: 0.4318 vs 0.4375 (1.3%)
    "progan": (40, "g_loss", 2.0),  # measured: 0.335 vs 0.366, 1.07 std (std 0.029)
    "biggan": (40, "d_loss", 0.10),  # measured: 1.2069 vs 1.2520 (3.7%)
    "pix2pix": (60, "l1", 0.10),  # measured: 0.7841 vs 0.7833 (0.1%)
}
def _config(family, precision, steps, request):
  tfds_dir = request.getfixturevalue("tfds_dir")
  if family == "gan":
    config = make_tiny_gan_config(request.getfixturevalue("mnist_idx_dir"), tfds_dir)
  elif family == "vae":
    config = with_local_data(vae_mnist.get_config("tiny"),
                             request.getfixturevalue("mnist_idx_dir"), tfds_dir)
  elif family == "biggan":  # real RGB photos, 32x32, three classes
    config = biggan_folder.get_config("tiny")
    config.data.path = str(request.getfixturevalue("rgb_photos"))
    config.data.labels, config.conditional, config.data.pipeline = "folders", True, "device"
  else:
    experiment = {"cyclegan": cyclegan_edges2fashion, "pix2pix": pix2pix_edges2fashion,
                  "progan": progan_fashion_mnist}[family]
    config = with_local_data(experiment.get_config("tiny"),
                             request.getfixturevalue("fashion_mnist_slice"), tfds_dir)
  if family in ("cyclegan", "pix2pix"):
    config.decay_start = steps // 2  # the half run's learning rates are the full run's
  config.precision = precision
  config.num_steps = steps
  config.eval_every = steps
  config.checkpoint_every = steps // 2
  return config


def _recording(family: str, record: list) -> models.Family:
  """`family`, whose metric reader also appends each call's metrics {name: [k]} to `record`."""
  real = models.get(family)

  def make_metric_reader(config, state):
    read = real.make_metric_reader(config, state)

    def reader(stacked, *args):
      record.append(jax.tree.map(np.asarray, stacked))
      return read(stacked, *args)
    return reader

  return dataclasses.replace(real, make_metric_reader=make_metric_reader)


def _params(state):
  """Every parameter pytree of a family's state."""
  return {name: ts.params for name, ts in vars(state).items() if hasattr(ts, "params")}


@pytest.fixture(scope="module", params=list(FAMILIES))
def runs(request, tmp_path_factory):
  """{'float32', 'bfloat16'}: (state, {name: every step's values}); {'half',
  'resumed'}: (state, last metrics)."""
  family = request.param
  steps = FAMILIES[family][0]
  root = tmp_path_factory.mktemp(f"precision_{family}")
  out = {"family": family}
  with pytest.MonkeyPatch.context() as m:
    for precision in ("float32", "bfloat16"):
      record = []
      m.setitem(models.FAMILIES, family, _recording(family, record))
      state, _ = loop.train_and_evaluate(_config(family, precision, steps, request),
                                         root / precision)
      out[precision] = state, {k: np.concatenate([r[k] for r in record]) for k in record[0]}
  half = _config(family, "bfloat16", steps, request)
  half.num_steps = steps // 2
  out["half"] = loop.train_and_evaluate(half, root / "resumed")
  out["resumed"] = loop.train_and_evaluate(_config(family, "bfloat16", steps, request),
                                           root / "resumed")
  return out


def test_bfloat16_trains_with_float32_parameters(runs):
  state, metrics = runs["bfloat16"]
  assert all(np.isfinite(v).all() for v in metrics.values()), metrics
  params = _params(state)
  leaves = jax.tree.leaves(params)
  assert leaves and all(x.dtype == jnp.float32 for x in leaves)
  opt_leaves = [x for ts in vars(state).values() if hasattr(ts, "opt_state")
                for x in jax.tree.leaves(ts.opt_state)
                if jnp.issubdtype(x.dtype, jnp.floating)]
  assert opt_leaves and all(x.dtype == jnp.float32 for x in opt_leaves)
  # every network's parameters moved over the second half of the steps
  for name, p in _params(runs["half"][0]).items():
    assert not params_equal(p, params[name]), name


def test_bfloat16_resumes_bitwise(runs):
  full, _ = runs["bfloat16"]
  resumed, _ = runs["resumed"]
  assert int(resumed.step) == int(full.step)
  for name, p in _params(full).items():
    assert params_equal(p, _params(resumed)[name]), name


def test_bfloat16_losses_stay_near_float32(runs):
  steps, loss, tolerance = FAMILIES[runs["family"]]
  window = {p: runs[p][1][loss][-steps // 4:] for p in ("float32", "bfloat16")}
  f32, bf16 = float(np.mean(window["float32"])), float(np.mean(window["bfloat16"]))
  scale = float(np.std(window["float32"])) if runs["family"] == "progan" else abs(f32)
  print(f"{runs['family']} {loss}: float32 {f32:.4f}, bfloat16 {bf16:.4f}, "
        f"difference {abs(bf16 - f32) / scale:.3f} of {scale:.4f}")
  assert abs(bf16 - f32) <= tolerance * scale, (f32, bf16, scale)


def test_unknown_precision_is_named():
  config = vae_mnist.get_config("tiny")
  assert config.precision == "float32"
  config.precision = "float16"
  with pytest.raises(ValueError, match=r"config\.precision='float16'.*'float32', 'bfloat16'"):
    configs.check_common(config)


def test_older_config_is_upgraded_to_float32():
  config = vae_mnist.get_config("tiny")
  with config.unlocked():
    del config["precision"]
  assert configs.upgrade(config).precision == "float32"
