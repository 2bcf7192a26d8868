"""The progressive GAN: each part of the method, the phase schedule, phase
changes inside one compiled call, and an exact resume in the middle of a
fade-in through the training loop."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments import progan_fashion_mnist
from genjax import configs, models, parallel
from genjax.train import calls, loop
from genjax.train import workdir as rundir
from genjax import images as images_lib
from genjax import sample as sample_lib
from genjax.models.progan import networks as nets
from genjax.models.progan import step as progan
from tests.conftest import module_compilation_cache, params_equal, with_local_data


@pytest.fixture(scope="module", autouse=True)
def compilation_cache_dir(tmp_path_factory):
  """The loop compiles a new call for each run, and the three runs of the
  resume test compile the same program (about 30 s each on 2 cores; the
  cache makes it one)."""
  yield from module_compilation_cache(tmp_path_factory, "progan")


def _tiny_config(**overrides) -> ml_collections.ConfigDict:
  return configs.apply_overrides(progan_fashion_mnist.get_config("tiny"), overrides)


_STATES = {}


def _state(config, size=32, seed=0):
  """create_state, compiled once per config and size (states are immutable)."""
  key = (config.to_json(), size, seed)
  if key not in _STATES:
    _STATES[key] = jax.jit(lambda k: progan.create_state(config, k, (size, size, 1)),
                           out_shardings=parallel.replicated(parallel.make_mesh()))(
                               jax.random.key(seed))
  return _STATES[key]


# --- the parts of the method -------------------------------------------------------------------


def test_pixel_norm_gives_each_pixel_unit_mean_square():
  x = jax.random.normal(jax.random.key(0), (2, 3, 3, 8)) * jnp.arange(1.0, 9.0).reshape(1, 1, 1, 8)
  y = nets.pixel_norm(x)
  np.testing.assert_allclose(jnp.mean(y**2, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(nets.pixel_norm(5.0 * x), y, rtol=1e-5)  # scale-free
  np.testing.assert_allclose(y / x, jnp.broadcast_to((y / x)[..., :1], x.shape), rtol=1e-5)


def test_minibatch_stddev_appends_each_groups_mean_deviation():
  x = np.asarray(jax.random.normal(jax.random.key(0), (8, 4, 4, 3)))
  y = np.asarray(nets.minibatch_stddev(jnp.asarray(x), group_size=4))
  chex.assert_shape(y, (8, 4, 4, 4))
  np.testing.assert_array_equal(y[..., :3], x)
  for g in range(2):  # consecutive groups of 4
    group = x[4 * g:4 * g + 4]
    expected = np.mean(np.sqrt(np.var(group, axis=0) + 1e-8))
    np.testing.assert_allclose(y[4 * g:4 * g + 4, :, :, 3], expected, rtol=1e-5)
  # A group of identical examples has (almost) no deviation; groups never mix.
  same = np.concatenate([np.repeat(x[:1], 4, 0), x[4:]])
  y = np.asarray(nets.minibatch_stddev(jnp.asarray(same), group_size=4))
  np.testing.assert_allclose(y[:4, ..., 3], 1e-4, rtol=1e-3)
  assert np.all(y[4:, ..., 3] > 0.5)


def test_equalised_learning_rate_scales_unit_normal_weights_by_he_constant():
  conv = nets.EqualConv(16, kernel_size=3)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 32))
  params = conv.init(jax.random.key(0), x)["params"]
  kernel = params["kernel"]
  assert abs(float(jnp.std(kernel)) - 1.0) < 0.05  # drawn from N(0, 1), not He's init
  scale = np.sqrt(2.0) / np.sqrt(3 * 3 * 32)
  assert nets.he_scale(3 * 3 * 32) == pytest.approx(scale)
  expected = jax.lax.conv_general_dilated(x, kernel * scale, (1, 1), "SAME",
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(conv.apply({"params": params}, x), expected, atol=1e-5)
  # The gradient of a stored weight is the He constant times that of the used one,
  # so Adam's normalised steps move every layer's used weights by lr * its constant.
  loss = lambda w: jnp.sum(jnp.sin(conv.apply({"params": {**params, "kernel": w}}, x)))
  used_loss = lambda w: jnp.sum(jnp.sin(jax.lax.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))))
  np.testing.assert_allclose(jax.grad(loss)(kernel), scale * jax.grad(used_loss)(kernel * scale),
                             rtol=1e-4, atol=1e-5)
  dense = nets.EqualDense(4, gain=1.0)
  h = jax.random.normal(jax.random.key(2), (3, 50))
  p = dense.init(jax.random.key(0), h)["params"]
  np.testing.assert_allclose(dense.apply({"params": p}, h), h @ p["kernel"] / np.sqrt(50), atol=1e-5)


def test_conv2d_and_its_first_and_second_derivatives_equal_lax():
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
  w = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))

  def outputs(conv):
    f = lambda x, w: jnp.sum(jnp.sin(conv(x, w)))
    penalty = lambda w, x: jnp.sum(jax.grad(f)(x, w) ** 2)  # as in the gradient penalty
    return (conv(x, w), *jax.grad(f, (0, 1))(x, w), *jax.grad(penalty, (0, 1))(w, x))

  ours = outputs(lambda x, w: nets.conv2d(x, w, (1, 1)))
  lax = outputs(lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
  for a, b in zip(ours, lax):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_fade_in_blends_old_and_new_paths_of_both_networks():
  config = _tiny_config()
  state = _state(config)
  g, d = state.generator, state.discriminator
  z = jax.random.normal(jax.random.key(3), (4, config.model.latent_dim))
  x = jax.random.uniform(jax.random.key(4), (4, 16, 16, 1), minval=-1, maxval=1)
  G = jax.jit(lambda level, alpha: g.apply_fn({"params": g.params}, z, level, alpha),
              static_argnums=0)
  D = jax.jit(lambda x, level, alpha: d.apply_fn({"params": d.params}, x, level, alpha),
              static_argnums=1)
  old, new = nets.upsample(G(1, 1.0)), G(2, 1.0)
  chex.assert_shape(new, (4, 16, 16, 1))
  np.testing.assert_array_equal(G(2, 0.0), old)  # alpha = 0: the old path exactly
  np.testing.assert_allclose(G(2, 0.3), 0.7 * old + 0.3 * new, atol=1e-5)
  np.testing.assert_array_equal(D(x, 2, 0.0), D(nets.downsample(x), 1, 1.0))
  # D's blend is of features, so check its end points and that it moves in between.
  assert not np.allclose(D(x, 2, 0.5), D(x, 2, 1.0))
  # The real images follow the same arithmetic.
  real = jax.random.uniform(jax.random.key(5), (4, 32, 32, 1), minval=-1, maxval=1)
  at_16, at_8 = nets.downsample(real, 2), nets.downsample(real, 4)
  np.testing.assert_allclose(progan.real_at_level(real, 2, 0.25),
                             0.75 * nets.upsample(at_8) + 0.25 * at_16, atol=1e-6)
  np.testing.assert_array_equal(progan.real_at_level(real, 2, 1.0), at_16)
  chex.assert_shape(progan.real_at_level(real, 0, 1.0), (4, 4, 4, 1))


def test_padding_to_a_power_of_two_and_cropping_back():
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1), minval=-1, maxval=1)
  padded = progan.pad_to(x, 32)
  chex.assert_shape(padded, (2, 32, 32, 1))
  np.testing.assert_array_equal(padded[:, 2:30, 2:30], x)
  assert float(padded[:, :2].max()) == -1.0 and float(padded[:, :, 30:].max()) == -1.0
  np.testing.assert_array_equal(progan.crop_to(padded, 28), x)
  assert [progan.final_resolution(s) for s in (28, 32, 33, 64, 100)] == [32, 32, 64, 64, 128]


# --- the schedule ------------------------------------------------------------------------------


def test_phase_lengths_in_images_become_generator_steps():
  config = _tiny_config(**{"batch_size": 16, "phase.fade_images": 50, "phase.stable_images": 64})
  sched = progan.schedule(config, 28)
  # 50 images at 16 a step: 4 steps (64 images shown); 64 images: 4 steps.
  assert sched == progan.Schedule(levels=4, fade_steps=4, stable_steps=4)
  assert sched.fade_starts == (0, 4, 12, 20) and sched.last_start == 24
  level = lambda s: int(progan.level_at(jnp.int32(s), sched))
  assert [level(s) for s in (0, 3, 4, 11, 12, 19, 20, 1000)] == [0, 0, 1, 1, 2, 2, 3, 3]
  alphas = [float(progan.progress(jnp.int32(s), sched)[1]) for s in range(12, 18)]
  np.testing.assert_allclose(alphas, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
  assert float(progan.progress(jnp.int32(2), sched)[1]) == 1.0  # level 0 has no fade
  # Samples use what the last completed step trained at.
  assert [int(progan.trained_progress(jnp.int32(s), sched)[0]) for s in (0, 4, 5)] == [0, 0, 1]
  assert progan.phase_table(config, 28)[-1] == {"resolution": 32, "fade_start": 20,
                                                "stable_start": 24, "end": None}
  no_fade = progan.schedule(_tiny_config(**{"phase.fade_images": 0}), 28)
  assert float(progan.alpha_at(jnp.int32(no_fade.fade_starts[2]), 2, no_fade)) == 1.0


# --- the compiled step and the loop, on real images at 16x16 ----------------------------------
#
# Fashion-MNIST padded to 32x32 and pooled to 16x16: real garments, three
# levels (4, 8, 16), and a third of the compile time of 28x28's four.


def _pooled_family():
  """The progan family on its usual data pooled to 16x16 (a data hook, as a
  family with its own data would give)."""
  base = models.get("progan")

  def load_split(config, split):
    full = base.load_split(config, split)
    x = nets.downsample(progan.pad_to(images_lib.to_float(full.images), 32), 2)
    return dataclasses.replace(full, images=images_lib.to_uint8(x),
                               source=f"{full.source}, pooled to 16x16")

  return dataclasses.replace(base, load_split=load_split)


def _pooled_config(idx_dir, tfds_dir):
  """The tiny preset: at 16 images a step, 4x4 for steps 0-4, the 8x8 fade-in
  5-9, 8x8 alone 10-14, the 16x16 fade-in 15-19, then 16x16 alone."""
  config = with_local_data(progan_fashion_mnist.get_config("tiny"), idx_dir, tfds_dir)
  config.eval_every = config.checkpoint_every = 100  # only at the end
  return config


@pytest.fixture(scope="module")
def steps_16(fashion_mnist_slice, tfds_dir):
  """Eleven single-step calls of the loop's own compiled call from one state
  (each state kept), then one rolled call of eight steps from step 3
  (crossing into the 8x8 fade-in and out of it); the levels traced."""
  family, config = _pooled_family(), _pooled_config(fashion_mnist_slice, tfds_dir)
  mesh = parallel.make_mesh()
  dataset = family.to_device(family.load_split(config, "train"), mesh)
  keys = jax.random.key(1), jax.random.key(2)
  traces = []
  real_level_step = progan.level_step

  def counting_level_step(*args, level, **kwargs):
    traces.append(level)  # runs when JAX traces the branch, not when it runs
    return real_level_step(*args, level=level, **kwargs)

  copy = lambda state: jax.tree.map(jnp.copy, state)  # the loop's call donates its input
  with pytest.MonkeyPatch.context() as m:
    m.setattr(progan, "level_step", counting_level_step)
    one = calls.make_train_call(family, config, mesh, 1)
    states = [jax.jit(lambda k: family.create_state(config, k, (16, 16, 1), 10),
                      out_shardings=parallel.replicated(mesh))(jax.random.key(0))]
    for _ in range(11):
      states.append(one(copy(states[-1]), dataset, *keys)[0])
    traces_one = list(traces)
    replicated = parallel.replicated(mesh)
    eight = jax.jit(functools.partial(
        calls.multi_step, train_step=family.make_train_step(config),
        draw_batch=family.make_draw_batch(config), num_steps=8, batch_size=config.batch_size,
        num_batches=1, sharding=parallel.batch_sharding(mesh, batch_axis=1), unroll=False),
        out_shardings=(replicated, replicated))
    state, metrics = eight(states[3], dataset, *keys)
    traces_eight = traces[len(traces_one):]
    eight(state, dataset, *keys)  # steps 11-18: into the 16x16 fade-in
  return {"states": states, "eight": (state, metrics), "traces": (traces_one, traces_eight),
          "retraced": traces[len(traces_one) + len(traces_eight):]}


def test_a_phase_change_inside_one_call_equals_one_step_calls(steps_16):
  traces_one, traces_eight = steps_16["traces"]
  assert sorted(traces_one) == sorted(traces_eight) == [0, 1, 2]  # each level once a compile
  assert steps_16["retraced"] == []  # the compiled call is reused across phases
  state, metrics = steps_16["eight"]
  np.testing.assert_array_equal(metrics["resolution"], [4, 4, 8, 8, 8, 8, 8, 8])
  np.testing.assert_allclose(metrics["alpha"], [1, 1, 0.2, 0.4, 0.6, 0.8, 1, 1], rtol=1e-6)
  assert int(state.step) == 11
  assert params_equal(state, steps_16["states"][11])  # every leaf, bitwise


def test_unused_blocks_stay_put_and_adam_restarts_with_each_fade_in(steps_16):
  start, at_4x4, fading = (steps_16["states"][i] for i in (0, 5, 6))
  for name in ("blocks_0", "blocks_1", "to_rgb_1", "to_rgb_2"):  # 8x8 and 16x16 only
    assert params_equal(start.generator.params[name], at_4x4.generator.params[name]), name
  assert not params_equal(start.generator.params["head_conv"], at_4x4.generator.params["head_conv"])
  for name in ("blocks_0", "blocks_1", "from_rgb_1", "from_rgb_2"):
    assert params_equal(start.discriminator.params[name], at_4x4.discriminator.params[name]), name
  count = lambda s: int(s.generator.opt_state.inner_state[0].count)
  assert count(at_4x4) == 5
  assert count(fading) == 1  # reset when the 8x8 fade-in began, then one update
  assert not params_equal(start.generator.params["blocks_0"], fading.generator.params["blocks_0"])
  assert float(fading.generator.opt_state.hyperparams["learning_rate"]) == pytest.approx(1e-3)


def test_resume_in_the_middle_of_a_fade_in_is_bitwise_exact(fashion_mnist_slice, tfds_dir,
                                                           tmp_path, monkeypatch):
  monkeypatch.setitem(models.FAMILIES, "progan", _pooled_family())
  config = _pooled_config(fashion_mnist_slice, tfds_dir)
  config.num_steps = 18  # inside the 16x16 fade-in
  full, metrics = loop.train_and_evaluate(config, tmp_path / "full")
  assert metrics["resolution"] == 16 and metrics["alpha"] == pytest.approx(0.6)
  half = config.copy_and_resolve_references()
  half.num_steps = 7  # inside the 8x8 fade-in
  _, metrics = loop.train_and_evaluate(half, tmp_path / "resumed")
  assert metrics["resolution"] == 8 and metrics["alpha"] == pytest.approx(0.4)
  resumed, _ = loop.train_and_evaluate(config, tmp_path / "resumed")
  assert int(resumed.step) == 18
  assert params_equal(full, resumed)  # both networks, optimiser states, EMA: every leaf

  # genjax.sample and the evaluator work at this phase, and say which.
  images, labels = sample_lib.generate(tmp_path / "resumed", 6)
  assert images.shape == (6, 16, 16, 1) and images.dtype == np.uint8 and labels is None
  config, family, state = rundir.restore(tmp_path / "resumed")
  grids, scalars = family.make_evaluator(config, jax.random.key(0), None)(state)
  assert scalars == {"resolution": 16.0, "alpha": pytest.approx(0.6)}
  assert grids["samples"].shape == (4 * 18 + 2, 4 * 18 + 2, 1)


def test_samples_are_the_current_resolution_upsampled_to_the_data_size():
  config = _tiny_config()
  state = _state(config, 28)
  sched = progan.schedule(config, 28)
  for level in range(4):
    step = sched.fade_starts[level] + sched.fade_steps + 1  # stable: alpha = 1
    at = state.replace(step=jnp.asarray(step if level else 1, jnp.int32))
    x = progan.sample(at, jax.random.key(0), 3, config)
    chex.assert_shape(x, (3, 28, 28, 1))
    assert float(jnp.max(jnp.abs(x))) <= 1.0
    z = jax.random.normal(jax.random.key(0), (3, config.model.latent_dim))
    own = at.generator.apply_fn({"params": at.ema_params}, z, level, 1.0)
    up = nets.upsample(own, 32 // nets.resolution_of(level))
    np.testing.assert_allclose(x, jnp.clip(progan.crop_to(up, 28), -1, 1), atol=1e-5)


@pytest.mark.parametrize("key, value, message", [
    ("model.mbstd_group", 3, r"batch_size=16 must be a multiple of config\.model\.mbstd_group=3"),
    ("model.g_width", 0, r"config\.model\.g_width=0 must be a positive integer"),
    ("phase.fade_images", -1, r"config\.phase\.fade_images=-1 must be an integer >= 0"),
    ("phase.stable_images", 8, r"config\.phase\.stable_images=8 must be at least"),
    ("gp_weight", -1.0, r"config\.gp_weight=-1\.0 must be a number >= 0"),
    ("ema_decay", 1.0, r"config\.ema_decay=1\.0 must be in \[0, 1\)"),
])
def test_bad_progan_configs_are_named(key, value, message):
  config = _tiny_config(**{key: value})
  with pytest.raises(ValueError, match=message):
    models.get("progan").validate_config(config)


def test_registered_family_and_default_config_validate():
  family = models.get("progan")
  assert family.sample is progan.sample and family.batches_per_step(None) == 1
  config = progan_fashion_mnist.get_config()
  configs.check_common(config)
  family.validate_config(config)
  assert progan.schedule(config, 28).levels == 4
