"""Adaptive discriminator augmentation (genjax.augment.ada, Karras et al.
2020): the operations, their probabilities, the controller of p, and p in
the GAN step and its checkpoints."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import biggan_folder, gan_mnist
from genjax import augment, checkpoint, configs
from genjax.train import loop
from genjax.models.biggan import step as biggan
from genjax.models.gan import step as gan
from tests.conftest import module_compilation_cache, params_equal, with_local_data


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache(tmp_path_factory):
  """The runs of one config compile their step once."""
  yield from module_compilation_cache(tmp_path_factory, "ada")


def _images(b=8, size=16, channels=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (b, size, size, channels), minval=-1,
                            maxval=1)


@pytest.mark.parametrize("channels", [1, 3])
def test_p0_is_the_identity_and_p1_changes_every_image(channels):
  x = _images(channels=channels)
  assert np.array_equal(augment.ada(jax.random.key(0), x, 0.0), x)
  y = np.asarray(augment.ada(jax.random.key(0), x, 1.0))
  assert np.all(np.abs(y - np.asarray(x)).reshape(8, -1).max(axis=1) > 0.1)
  assert y.shape == x.shape and np.isfinite(y).all()


def test_ada_is_differentiable_in_the_images():
  """For one draw ADA is an affine map of the pixels: its gradient is finite,
  and a finite difference along any direction equals the JVP."""
  x, v = _images(seed=0), _images(seed=1)
  f = lambda x: augment.ada(jax.random.key(3), x, 0.8)
  grad = jax.grad(lambda x: jnp.sum(f(x) ** 2))(x)
  assert np.isfinite(grad).all() and np.abs(grad).max() > 0
  _, jvp = jax.jvp(f, (x,), (v,))
  difference = (f(x + 1e-2 * v) - f(x)) / 1e-2
  np.testing.assert_allclose(difference, jvp, atol=2e-3)


def _flipped(x, y):
  """[B] bool: y[i] is x[i] mirrored left-right (else it must be x[i])."""
  flipped = np.all(np.isclose(y, x[:, :, ::-1]), axis=(1, 2, 3))
  same = np.all(np.isclose(y, x), axis=(1, 2, 3))
  assert np.all(flipped | same)
  return flipped


def test_each_operation_happens_with_probability_p():
  x = np.asarray(_images(b=800, size=8, channels=1))
  for p, expected in ((1.0, 0.5), (0.5, 0.25)):  # the coin p, then a flip half the time
    y = np.asarray(augment.ada(jax.random.key(1), jnp.asarray(x), p, ops=("xflip",)))
    assert abs(_flipped(x, y).mean() - expected) < 0.06, (p, _flipped(x, y).mean())
  y = np.asarray(augment.ada(jax.random.key(2), jnp.asarray(x), 1.0, ops=("rotate90",)))
  turns = [np.all(np.isclose(y, np.rot90(x, k, axes=(1, 2))), axis=(1, 2, 3)) for k in range(4)]
  assert np.all(np.sum(turns, axis=0) == 1)  # each image exactly one of the four turns
  assert np.all(np.abs(np.mean(turns, axis=1) - 0.25) < 0.05), np.mean(turns, axis=1)
  # integer translation moves whole pixels: every output value is an input value
  y = np.asarray(augment.ada(jax.random.key(3), jnp.asarray(x[:50]), 1.0, ops=("xint",)))
  assert all(np.isin(y[i], x[i]).all() for i in range(50))
  # shifts of -1, 0 or 1 pixel at 8 px: both 0 a quarter of the time
  assert np.mean([not np.array_equal(y[i], x[i]) for i in range(50)]) > 0.6


def test_colour_operations_stay_in_a_sane_range_and_skip_hue_on_grey():
  x = _images(b=500, size=8, channels=3)
  y = np.asarray(augment.ada(jax.random.key(4), x, 1.0, ops=augment.ADA_COLOR))
  assert np.isfinite(y).all() and np.percentile(np.abs(y), 99) < 6.0
  assert 0.3 < np.std(y) / np.std(np.asarray(x)) < 4.0
  grey = _images(channels=1)
  same = augment.ada(jax.random.key(5), grey, 1.0, ops=("hue", "saturation"))
  assert np.array_equal(same, grey)  # hue and saturation are skipped for C = 1
  # on RGB, hue and saturation keep the luma (the mean of R, G, B) of every pixel
  rgb = np.asarray(augment.ada(jax.random.key(5), x, 1.0, ops=("hue", "saturation")))
  np.testing.assert_allclose(rgb.mean(-1), np.asarray(x).mean(-1), atol=1e-5)


def test_ada_adjust_follows_the_sign_of_r_t_minus_the_target():
  assert float(augment.ada_adjust(0.5, 0.9, 64, 6400)) == pytest.approx(0.51)
  assert float(augment.ada_adjust(0.5, 0.2, 64, 6400)) == pytest.approx(0.49)
  assert float(augment.ada_adjust(0.0, 0.2, 64, 6400)) == 0.0
  assert float(augment.ada_adjust(1.0, 0.9, 64, 6400)) == 1.0
  assert float(augment.ada_adjust(0.5, 0.7, 64, 6400, target=0.8)) == pytest.approx(0.49)
  with pytest.raises(ValueError, match="'cutout'"):
    augment.ada(jax.random.key(0), _images(), 0.5, ops=("xflip", "cutout"))


def _tiny(**overrides):
  config = gan_mnist.get_config()
  config.model.latent_dim, config.model.g_width, config.model.d_width = 8, 4, 4
  return configs.apply_overrides(config, overrides)


@pytest.mark.parametrize("penalty", ["", "r1_gamma"])
def test_every_image_d_sees_goes_through_ada_with_the_states_p(monkeypatch, penalty):
  seen = []

  def spy(key, x, p):
    seen.append((x.shape[0], float(p)))
    return x

  monkeypatch.setattr(augment, "ada", spy)
  config = _tiny(augment="ada", ada_p_init=0.25, **({penalty: 1.0} if penalty else {}))
  state = gan.create_state(config, jax.random.key(0), (28, 28, 1))
  batch = {"image": jax.random.uniform(jax.random.key(1), (1, 4, 28, 28, 1), minval=-1, maxval=1)}
  new, metrics = gan.make_train_step(config)(state, batch, jax.random.key(2))
  # D's 4 reals and 4 fakes, G's 4 fakes, and the penalty's 4 reals
  assert sorted(seen) == sorted([(8, 0.25), (4, 0.25)] + ([(4, 0.25)] if penalty else []))
  r_t = float(metrics["ada_rt"])
  step = 4 / (config.ada_kimg * 1000)
  assert float(new.ada_p) == pytest.approx(0.25 + np.sign(r_t - 0.6) * step)
  assert float(metrics["ada_p"]) == float(new.ada_p)
  plain, metrics = gan.make_train_step(_tiny())(state, batch, jax.random.key(2))
  assert "ada_p" not in metrics and float(plain.ada_p) == 0.25  # off: p stays as it is


def test_p_rises_as_d_overfits_few_real_images_and_resumes_bitwise(fashion_mnist_slice,
                                                                   tfds_dir, tmp_path):
  """300 Fashion-MNIST images and a G that barely learns: D soon tells them
  from the fakes (r_t > 0.6) and p rises; a run stopped half-way and resumed
  equals the uninterrupted one bitwise, p and LeCam's averages included."""
  config = with_local_data(gan_mnist.get_config("ada,tiny"), fashion_mnist_slice, tfds_dir)
  config.data.name = "fashion_mnist"
  config.data.limit = 300
  config.num_steps, config.steps_per_call = 40, 10
  config.eval_every, config.checkpoint_every = 40, 20
  config.ada_kimg = 0.4  # p moves 0.04 a step (batch 16), so that 40 steps show it
  config.opt.d_lr, config.opt.g_lr = 2e-3, 1e-6
  config.lecam_weight = 0.01
  full, metrics = loop.train_and_evaluate(config, tmp_path / "full")
  assert float(full.ada_p) > 0.5, (float(full.ada_p), metrics)  # r_t > 0.6 in most steps
  assert metrics["ada_rt"] > 0.6 and metrics["ada_p"] > 0.3  # means over the last call
  half = config.copy_and_resolve_references()
  half.num_steps = 20
  loop.train_and_evaluate(half, tmp_path / "resumed")
  resumed, metrics = loop.train_and_evaluate(config, tmp_path / "resumed")
  assert metrics["step"] == 40 and float(full.ada_p) == float(resumed.ada_p)
  assert np.array_equal(full.lecam_ema, resumed.lecam_ema) and np.all(full.lecam_ema != 0)
  assert params_equal(full.generator.params, resumed.generator.params)
  assert params_equal(full.discriminator.opt_state, resumed.discriminator.opt_state)


def test_a_checkpoint_from_before_ada_and_lecam_restores(tmp_path):
  """A state saved without the ada_p and lecam_ema fields restores; those
  fields take their initial values."""
  config = gan_mnist.get_config("tiny")
  state = gan.create_state(config, jax.random.key(0), (28, 28, 1))
  old = jax.tree.map(jnp.asarray, flax.serialization.to_state_dict(state))
  del old["ada_p"], old["lecam_ema"]
  ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
  ckpt.save(5, old)
  ckpt.wait()
  fresh = gan.create_state(config, jax.random.key(1), (28, 28, 1)).replace(
      ada_p=jnp.float32(0.5))
  assert ckpt.shape_changes(fresh) == []
  restored = ckpt.restore_latest(fresh)
  ckpt.close()
  assert params_equal(restored.generator.params, state.generator.params)
  assert float(restored.ada_p) == 0.5 and np.array_equal(restored.lecam_ema, [0.0, 0.0])


def test_bad_augment_values_are_named():
  for overrides, message in (
      ({"augment": "adaptive"}, "augment='adaptive'.*'none', 'diffaugment', 'ada'"),
      ({"augment": "ada", "diffaug": "color"}, "diffaug='color'"),
      ({"augment": "diffaugment"}, "needs a policy in config.diffaug"),
      ({"ada_target": 1.5}, "ada_target=1.5"),
      ({"ada_kimg": 0.0}, "ada_kimg=0.0"),
  ):
    with pytest.raises(ValueError, match=message):
      gan.validate_config(_tiny(**overrides))
  # the configs from before `augment`: a diffaug policy alone turns DiffAugment on
  assert augment.augment_name(_tiny(diffaug="color")) == "diffaugment"
  # and the BigGAN family reads the keys the same way
  config = biggan_folder.get_config("tiny")
  config.diffaug = "color"
  assert biggan.make_train_step(config).keywords["opts"].augment == "diffaugment"
