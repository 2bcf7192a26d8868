"""DiffAugment (genjax.augment), its place in the GAN step, and data.limit."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments import gan_mnist
from genjax import data
from genjax import augment as images
from genjax.models.gan import step as gan
from tests.conftest import params_equal


def _dots(b=64, size=28):
  """b images of -1 with one pixel of 1 at the centre."""
  x = -np.ones((b, size, size, 1), np.float32)
  x[:, size // 2, size // 2] = 1.0
  return jnp.asarray(x)


def test_translation_moves_each_image_by_up_to_an_eighth_and_fills_zeros():
  x = _dots()
  y = np.asarray(images.diff_augment(x, jax.random.key(0), ("translation",)))
  shifts = set()
  for im in y:
    (r,), (c,) = np.nonzero(im[..., 0] == 1.0)
    shifts.add((r - 14, c - 14))
    # the image moved whole: 1 pixel of 1, -1 where the image still is, 0 where it was shifted in
    assert sorted(np.unique(im).tolist()) in ([-1.0, 0.0, 1.0], [-1.0, 1.0])
    inside = np.sum(im == -1.0) + 1
    assert inside == (28 - abs(r - 14)) * (28 - abs(c - 14))
  assert max(max(abs(dy), abs(dx)) for dy, dx in shifts) == 28 // 8
  assert len(shifts) > 20  # each image its own shift, of 7 x 7 possible


def test_cutout_zeroes_a_square_of_half_the_size_cut_at_the_edges():
  x = _dots(b=256) * 0 + 0.5
  y = np.asarray(images.diff_augment(x, jax.random.key(1), ("cutout",)))
  sizes = set()
  for im in y:
    zero = im[..., 0] == 0.0
    rows, cols = np.nonzero(zero.any(1))[0], np.nonzero(zero.any(0))[0]
    assert zero.sum() == len(rows) * len(cols)  # one rectangle
    assert np.all(im[~zero] == 0.5)  # the rest untouched
    sizes.add((len(rows), len(cols)))
  assert (14, 14) in sizes and max(sizes) == (14, 14) and min(min(s) for s in sizes) >= 7
  # centres run from the first row to one past the last: squares cut to rows 0..6 and 21..27
  spans = {(int(np.nonzero(im[..., 0] == 0.0)[0].min()), int(np.nonzero(im[..., 0] == 0.0)[0].max()))
           for im in y}
  assert (0, 6) in spans and (21, 27) in spans


def test_color_is_an_affine_change_per_image_with_the_papers_ranges():
  x = jax.random.uniform(jax.random.key(2), (512, 8, 8, 3), minval=-1, maxval=1)
  y = images.diff_augment(x, jax.random.key(3), ("color",))
  # brightness moves each image's mean by U(-0.5, 0.5); saturation and contrast keep it
  shift = np.asarray(jnp.mean(y, axis=(1, 2, 3)) - jnp.mean(x, axis=(1, 2, 3)))
  assert -0.5 <= shift.min() < -0.4 and 0.4 < shift.max() <= 0.5
  # per image, y is an affine function of x within each pixel's channels: not the same for all
  slopes = np.asarray(jnp.std(y, axis=(1, 2, 3)) / jnp.std(x, axis=(1, 2, 3)))
  assert slopes.min() < 0.6 and slopes.max() > 1.5
  # grey images (equal channels): saturation does nothing, so the spread is contrast's alone,
  # U(0.5, 1.5) about the image's mean
  grey = jnp.repeat(x[..., :1], 3, axis=3)
  g = images.diff_augment(grey, jax.random.key(3), ("color",))
  np.testing.assert_allclose(np.asarray(g[..., 0]), np.asarray(g[..., 2]), atol=1e-6)
  slopes = np.asarray(jnp.std(g, axis=(1, 2, 3)) / jnp.std(grey, axis=(1, 2, 3)))
  assert 0.5 - 1e-4 <= slopes.min() < 0.55 and 1.45 < slopes.max() <= 1.5 + 1e-4


def test_augmentations_pass_gradients_to_the_images():
  x = jax.random.uniform(jax.random.key(4), (4, 16, 16, 1), minval=-1, maxval=1)
  policy = images.DIFF_AUGMENTS
  g = jax.grad(lambda x: jnp.sum(images.diff_augment(x, jax.random.key(5), policy) ** 2))(x)
  assert np.all(np.isfinite(g)) and np.mean(np.asarray(g) != 0) > 0.3
  # translation is linear in x: its gradient is the shift back, a 0/1 map
  t = jax.grad(lambda x: jnp.sum(images.diff_augment(x, jax.random.key(5), ("translation",))))(x)
  assert set(np.unique(np.asarray(t)).tolist()) <= {0.0, 1.0}


def test_bad_policies_are_refused_by_name():
  with pytest.raises(ValueError, match=r"config.diffaug='color,flip'.*'flip'.*color,translation,cutout"):
    images.parse_augment_policy("color,flip")
  with pytest.raises(ValueError, match="twice"):
    images.parse_augment_policy("cutout,cutout")
  assert images.parse_augment_policy(" color, cutout ") == ("color", "cutout")
  config = gan_mnist.get_config("diffaug")
  gan.validate_config(config)
  config.diffaug = "translate"
  with pytest.raises(ValueError, match="'translate' is not an augmentation"):
    gan.validate_config(config)
  with pytest.raises(ValueError, match=r"config.data.limit=-5 must be an integer >= 0"):
    data.check_limit(-5)


def _tiny(**overrides):
  config = gan_mnist.get_config()
  config.model.latent_dim, config.model.g_width, config.model.d_width = 8, 4, 4
  for key, value in overrides.items():
    setattr(config, key, value)
  return config


@pytest.mark.parametrize("penalty", ["", "r1_gamma", "gp_weight"])
def test_the_step_shows_d_only_augmented_images(monkeypatch, penalty):
  """Every image D sees goes through the augmentation: D's batch of reals and
  fakes, G's fakes and a penalty's images; with an augmentation that
  changes nothing, the step is the step without DiffAugment."""
  seen = []

  def spy(x, key, policy):
    seen.append((x.shape[0], policy))
    return x

  monkeypatch.setattr(images, "diff_augment", spy)
  penalties = {penalty: 1.0} if penalty else {}
  state = gan.create_state(_tiny(), jax.random.key(0), (28, 28, 1))
  batch = {"image": jax.random.uniform(jax.random.key(1), (1, 4, 28, 28, 1), minval=-1, maxval=1)}
  plain, _ = gan.make_train_step(_tiny(**penalties))(state, batch, jax.random.key(2))
  assert not seen
  augmented, _ = gan.make_train_step(_tiny(**penalties, diffaug="color,cutout"))(
      state, batch, jax.random.key(2))
  policy = ("color", "cutout")
  # D's batch of 4 reals and 4 fakes, G's 4 fakes, and the penalty's 4 reals or interpolates
  assert sorted(seen) == sorted([(8, policy), (4, policy)] + ([(4, policy)] if penalty else []))
  assert params_equal(plain.discriminator.params, augmented.discriminator.params)
  assert params_equal(plain.generator.params, augmented.generator.params)


def test_g_learns_only_through_the_augmentation(monkeypatch):
  """An augmentation that blanks every image leaves G nothing to learn from."""
  monkeypatch.setattr(images, "diff_augment", lambda x, key, policy: 0.0 * x)
  state = gan.create_state(_tiny(), jax.random.key(0), (28, 28, 1))
  batch = {"image": jax.random.uniform(jax.random.key(1), (1, 4, 28, 28, 1), minval=-1, maxval=1)}
  blank, _ = gan.make_train_step(_tiny(diffaug="cutout"))(state, batch, jax.random.key(2))
  plain, _ = gan.make_train_step(_tiny())(state, batch, jax.random.key(2))
  assert params_equal(blank.generator.params, state.generator.params)
  assert not params_equal(plain.generator.params, state.generator.params)


def test_the_augmentation_changes_what_d_learns():
  state = gan.create_state(_tiny(), jax.random.key(0), (28, 28, 1))
  batch = {"image": jax.random.uniform(jax.random.key(1), (1, 4, 28, 28, 1), minval=-1, maxval=1)}
  plain, m0 = gan.make_train_step(_tiny())(state, batch, jax.random.key(2))
  augmented, m1 = gan.make_train_step(_tiny(diffaug="translation"))(state, batch, jax.random.key(2))
  assert not params_equal(plain.discriminator.params, augmented.discriminator.params)
  assert float(m0["d_real"]) != float(m1["d_real"])


def test_data_limit_keeps_the_first_training_images(tiny_gan_config, tmp_path, capsys):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  config = tiny_gan_config
  full = data.load_from_config(config.data, "train")
  test = data.load_from_config(config.data, "test")
  config.data.limit = 300
  first = data.load_from_config(config.data, "train")
  assert len(first) == 300 and first.source.endswith("the first 300 (data.limit)")
  assert isinstance(first, data.ArrayDataset)
  assert "classes" not in capsys.readouterr().err  # the first 300 hold every digit
  np.testing.assert_array_equal(first.images, full.images[:300])
  np.testing.assert_array_equal(first.labels, full.labels[:300])
  np.testing.assert_array_equal(data.load_from_config(config.data, "test").images, test.images)
  # a folder streamed by the host: the first of its training images too
  for i in range(40):  # two classes as subfolders: the first 20 images are class "a"
    (tmp_path / "ab"[i // 20]).mkdir(exist_ok=True)
    Image.fromarray(np.asarray(full.images[i, ..., 0])).save(tmp_path / "ab"[i // 20] / f"{i:02d}.png")
  folder = ml_collections.ConfigDict({"path": str(tmp_path), "image_size": 28, "channels": 1,
                                      "labels": "folders", "pipeline": "stream",
                                      "test_percent": 0, "limit": 10})
  streamed = data.load_from_config(folder, "train")
  assert isinstance(streamed, data.StreamedDataset) and len(streamed) == 10
  assert "hold 1 of the split's 2 classes" in capsys.readouterr().err
  assert streamed.source.endswith("the first 10 (data.limit)")
  folder.pipeline = "device"  # read whole into memory: only the 10 are
  held = data.load_from_config(folder, "train")
  assert isinstance(held, data.ArrayDataset) and len(held) == 10
  np.testing.assert_array_equal(held.images[9], streamed[9][0])
  folder.pipeline = "stream"
  with pytest.raises(IndexError):
    streamed[10]  # pylint: disable=pointless-statement
  folder.limit = 0
  whole = data.load_from_config(folder, "train")
  assert len(whole) == 40
  np.testing.assert_array_equal(streamed[9][0], whole[9][0])
