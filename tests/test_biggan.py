"""The BigGAN family: network shapes, orthogonal regularisation, a tiny
conditional run on real RGB photos through the loop, its bitwise resume, the
hinge update of D on real images, sampling by class name and with the
truncation trick, and the errors that name a bad value."""

import importlib.util
from pathlib import Path

import flax.linen as flax_nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import biggan_folder
from genjax import configs, models
from genjax import sample as sample_lib
from genjax.models.biggan import networks as nets
from genjax.models.biggan import step as biggan
from genjax.train import loop
from genjax.train import workdir as rundir
from tests.conftest import RGB_PHOTO_CLASSES, module_compilation_cache, params_equal

CLASSES = RGB_PHOTO_CLASSES


@pytest.fixture(scope="module", autouse=True)
def compilation_cache_dir(tmp_path_factory):
  """The three runs of the resume test compile the same programs."""
  yield from module_compilation_cache(tmp_path_factory, "biggan")


@pytest.fixture(scope="module")
def photos(rgb_photos) -> Path:
  return rgb_photos


def test_attention_equals_softmax_then_product_and_stays_finite():
  """nets.attend against jax.nn.softmax then the product: values and the
  gradients of all three inputs, at ordinary logits and at logits near 1e3
  (exp of them unshifted overflows float32)."""
  keys = jax.random.split(jax.random.key(0), 4)
  theta, phi = (jax.random.normal(k, (2, 64, 3)) for k in keys[:2])
  g, r = jax.random.normal(keys[2], (2, 16, 5)), jax.random.normal(keys[3], (2, 64, 5))

  def reference(theta, phi, g):
    weights = jax.nn.softmax(jnp.einsum("bnk,bmk->bnm", theta, phi), axis=-1)
    return jnp.einsum("bnm,bmv->bnv", weights, g)

  for scale in (1.0, 20.0):
    args = (theta * scale, phi[:, :16] * scale, g)
    loss = lambda f: lambda *a: jnp.sum(f(*a) * r)
    got, grads = jax.value_and_grad(loss(nets.attend), argnums=(0, 1, 2))(*args)
    want, want_grads = jax.value_and_grad(loss(reference), argnums=(0, 1, 2))(*args)
    assert np.all(np.isfinite(got)) and np.allclose(got, want, rtol=1e-5, atol=1e-4), scale
    for a, b in zip(grads, want_grads):
      assert np.all(np.isfinite(a)) and np.allclose(a, b, rtol=1e-4, atol=1e-3 * scale), scale
  assert float(jnp.max(jnp.abs(jnp.einsum("bnk,bmk->bnm", theta * 20, phi[:, :16] * 20)))) > 500


def test_max_pool_is_flax_max_pool_with_the_gradient_at_the_maximum():
  """nets._maxpool (a max over reshaped windows) against nn.max_pool: values,
  and the gradient, which goes to each window's maximum alone."""
  x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))
  r = jax.random.normal(jax.random.key(1), (2, 4, 3, 3))
  flax_pool = lambda t: flax_nn.max_pool(t, (2, 2), (2, 2))
  np.testing.assert_array_equal(nets._maxpool(x), flax_pool(x))
  grads = [jax.grad(lambda t: jnp.sum(f(t) * r))(x) for f in (nets._maxpool, flax_pool)]
  np.testing.assert_array_equal(grads[0], grads[1])
  assert int(jnp.sum(grads[0] != 0)) == r.size  # one nonzero per window


def tiny_config(photos: Path, **overrides):
  config = biggan_folder.get_config("tiny")
  config.data.path, config.data.labels, config.conditional = str(photos), "folders", True
  config.data.pipeline = "device"
  return configs.apply_overrides(config, overrides)


@pytest.fixture(scope="module")
def runs(photos, tmp_path_factory, monkeypatch_module):
  """A 4-step conditional run with ADA (p from 0.1, moving 0.08 a step) and
  LeCam, and the same run stopped at step 2 and resumed."""
  monkeypatch_module.setenv("GENJAX_CACHE", str(tmp_path_factory.mktemp("cache")))
  root = tmp_path_factory.mktemp("runs")
  config = tiny_config(photos, augment="ada", ada_p_init=0.1, ada_kimg=0.1, lecam_weight=0.1)
  full, metrics = loop.train_and_evaluate(config, root / "full")
  half = config.copy_and_resolve_references()
  half.num_steps = 2
  loop.train_and_evaluate(half, root / "resumed")
  resumed, _ = loop.train_and_evaluate(config, root / "resumed")
  return root, full, metrics, resumed


@pytest.fixture(scope="module")
def monkeypatch_module():
  with pytest.MonkeyPatch.context() as m:
    yield m


# --- the networks, without compiling -----------------------------------------------------------


@pytest.mark.parametrize("size, conditional, precision", [(64, True, "float32"),
                                                          (128, False, "bfloat16")])
def test_shapes_of_the_networks_at_64_and_128_pixels(size, conditional, precision):
  config = biggan_folder.get_config()
  config.conditional, config.precision = conditional, precision
  config.data.image_size = size
  config.model.attention = size // 2
  state = jax.eval_shape(lambda k: biggan.create_state(config, k, (size, size, 3), 5),
                         jax.random.key(0))
  assert nets.num_label_classes(state.generator.params) == (5 if conditional else 0)
  assert "gamma" in state.generator.params["attention"]  # SAGAN block in G ...
  assert "gamma" in state.discriminator.params["attention"]  # ... and in D
  assert state.ada_p.shape == () and state.ada_p.dtype == jnp.float32
  ch = config.model.ch
  assert state.generator.params["linear"]["kernel"].shape[-1] == 4 * 4 * 16 * ch
  z = jax.ShapeDtypeStruct((2, config.model.latent_dim), jnp.float32)
  y = jax.ShapeDtypeStruct((2,), jnp.int32)
  g = state.generator
  images = jax.eval_shape(lambda p, b, z, y: g.apply_fn({"params": p, "batch_stats": b}, z, y,
                                                        train=False),
                          g.params, g.batch_stats, z, y)
  assert images.shape == (2, size, size, 3) and images.dtype == jnp.float32
  d = state.discriminator
  logits = jax.eval_shape(lambda p, b, x, y: d.apply_fn({"params": p, "batch_stats": b}, x, y),
                          d.params, d.batch_stats, images, y)
  assert logits.shape == (2,) and logits.dtype == jnp.float32  # losses in float32 at any precision
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(  # as are parameters and SN vectors
      (state.generator.params, state.generator.batch_stats, state.discriminator.batch_stats)))
  if conditional:  # hierarchical latents: one chunk per block, beside the first layer's
    chunks = nets.latent_chunks(config.model.latent_dim, size, True)
    assert len(chunks) == nets.num_blocks(size) + 1 and sum(chunks) == config.model.latent_dim
    gain = g.params["block_0"]["bn_0"]["gain"]["kernel"]
    assert gain.shape[0] == chunks[1] + config.model.shared_dim


def test_orthogonal_regularisation_is_zero_for_orthogonal_rows_and_has_biggans_gradient():
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 8)))
  kernel = jnp.asarray(q[:, :5], jnp.float32)  # [fan_in 8, F 5]: orthonormal columns
  assert float(biggan.ortho_penalty({"Dense_0": {"kernel": kernel}})) == pytest.approx(0, abs=1e-10)
  w = jax.random.normal(jax.random.key(0), (3, 3, 4, 6))
  params = {"conv": {"kernel": w, "bias": jnp.ones(6)},
            nets.SHARED_EMBEDDING: {"embedding": jnp.ones((3, 4))}}
  grads = jax.grad(biggan.ortho_penalty)(params)
  m = w.reshape(-1, 6).T  # [F, fan_in]
  gram = m @ m.T
  expected = 2 * (gram * (1 - jnp.eye(6))) @ m  # BigGAN-PyTorch's ortho() update
  np.testing.assert_allclose(grads["conv"]["kernel"].reshape(-1, 6).T, expected, rtol=1e-4,
                             atol=1e-4)
  assert not jnp.any(grads["conv"]["bias"]) and not jnp.any(
      grads[nets.SHARED_EMBEDDING]["embedding"])
  # More outputs than inputs (G's first linear layer): the small Gram's form, the same
  # value and gradient as the [F, F] Gram's.
  dense = jax.random.normal(jax.random.key(1), (24, 300)) * 0.1  # [fan_in, F]

  def direct(kernel):
    gram = kernel.T @ kernel
    return 0.5 * jnp.sum((gram * (1 - jnp.eye(300))) ** 2)

  value, grad = jax.value_and_grad(biggan.ortho_penalty)({"linear": {"kernel": dense}})
  np.testing.assert_allclose(value, direct(dense), rtol=1e-5)
  np.testing.assert_allclose(grad["linear"]["kernel"], jax.grad(direct)(dense), rtol=1e-4,
                             atol=1e-6)


# --- a run on real photos ----------------------------------------------------------------------


def test_a_resumed_run_is_bitwise_the_uninterrupted_one(runs):
  root, full, metrics, resumed = runs
  assert int(full.step) == int(resumed.step) == 4
  assert params_equal(full, resumed)  # networks, optimiser states, EMA, SN vectors: every leaf
  assert np.isfinite(list(metrics.values())).all() and metrics["ortho"] > 0
  # ADA's p moved from 0.1 by 0.08 a step and resumed with the run; LeCam's averages too
  assert float(full.ada_p) == float(resumed.ada_p) != pytest.approx(0.1)
  assert np.all(full.lecam_ema != 0) and metrics["lecam"] > 0
  info = (root / "full" / "run.json").read_text()
  assert all(name in info for name in CLASSES)  # the folder's class names are recorded
  grids = sorted(p.name for p in (root / "full" / "samples").glob("*.png"))
  assert "step_000004_samples.png" in grids and "step_000004_samples_truncated.png" in grids


def test_the_hinge_update_of_d_separates_real_photos_from_samples(runs):
  root, _, _, _ = runs
  config, _, state = rundir.restore(root / "full")
  from genjax import data  # pylint: disable=g-import-not-at-top
  train = data.load_from_config(config.data, "train")
  real = jnp.asarray(train.images[:8], jnp.float32) / 127.5 - 1.0
  real_labels = jnp.asarray(train.labels[:8], jnp.int32)
  fake_labels = jnp.arange(8, dtype=jnp.int32) % len(CLASSES)
  fake = biggan.generate(state, jax.random.normal(jax.random.key(1), (8, 16)), fake_labels)
  opts = biggan.make_train_step(config).keywords["opts"]._replace(augment="none",
                                                                   lecam_weight=0.0)
  update = jax.jit(lambda d: biggan._discriminator_update(  # pylint: disable=protected-access
      d, opts, biggan.augmenter(opts, state.ada_p), real, real_labels, fake, fake_labels,
      jax.random.key(2), state.lecam_ema))
  d = state.discriminator
  trace = []
  for _ in range(4):
    d, loss, real_logits, fake_logits, _, _ = update(d)
    trace.append((float(loss), float(real_logits.mean() - fake_logits.mean())))
  losses, margins = zip(*trace)  # each value is the one before that update
  assert losses[-1] < losses[0] and margins[-1] > margins[0]


def test_sampling_by_class_name_and_with_truncation(runs):
  root, _, _, _ = runs
  config, family, state = rundir.restore(root / "full")
  draw = jax.jit(lambda key, labels, t: biggan.sample(state, key, 16, config, labels, t),
                 static_argnums=2)
  key = jax.random.key(3)
  sea = jnp.full((16,), CLASSES.index("sea"), jnp.int32)
  city = jnp.full((16,), CLASSES.index("city"), jnp.int32)
  np.testing.assert_array_equal(draw(key, sea, None), draw(key, sea, None))  # same key: same
  assert not np.array_equal(draw(key, sea, None), draw(key, city, None))  # the class matters
  spread = lambda t: float(jnp.mean(jnp.var(draw(key, sea, t), axis=0)))
  assert spread(0.01) < 0.5 * spread(1.0)  # truncation: z near 0, samples near one image

  images, labels = sample_lib.generate(root / "full", 6, labels=["snow", "sea"], truncation=0.5)
  assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(labels, [2, 1, 2, 1, 2, 1])
  with pytest.raises(ValueError, match=r"'lake' is not a class of this run; its classes are "
                                       r"city, sea, snow"):
    sample_lib.generate(root / "full", 2, labels=["lake"])
  assert family.sample is biggan.sample


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, message", [
    ("data.image_size", 48, r"config\.data\.image_size=48: .* 32, 64, 128, 256 pixels"),
    ("data.image_size", 512, r"config\.data\.image_size=512"),
    ("augment", "adaptive", r"config\.augment='adaptive' is not an augmentation; choose one of "
                            r"\['none', 'diffaugment', 'ada'\]"),
    ("lecam_weight", -0.1, r"config\.lecam_weight=-0\.1 must be a number >= 0"),
    ("model.attention", 12, r"config\.model\.attention=12 must be 0 \(none\) or a resolution"),
    ("d_steps", 0, r"config\.d_steps=0 must be a positive integer"),
    ("ortho_weight", -1.0, r"config\.ortho_weight=-1\.0 must be a number >= 0"),
    ("ema_decay", 1.0, r"config\.ema_decay=1\.0 must be in \[0, 1\)"),
    ("model.latent_dim", 3, r"config\.model\.latent_dim=3 is too small"),
])
def test_bad_biggan_configs_are_named(key, value, message):
  config = configs.apply_overrides(biggan_folder.get_config(), {key: value})
  with pytest.raises(ValueError, match=message):
    models.get("biggan").validate_config(config)


def test_sample_command_errors_name_the_bad_value():
  for bad in (0.0, 2.5, -1.0):
    with pytest.raises(ValueError, match=rf"--truncation={bad:g} must be in \(0, 2\]"):
      sample_lib.check_truncation(bad)
  sample_lib.check_truncation(2.0)
  gan_config = configs.apply_overrides(biggan_folder.get_config(), {"family": "gan"})
  with pytest.raises(ValueError, match=r"the 'gan' family's sampler takes no truncation"):
    sample_lib.with_truncation(models.get("gan"), gan_config, 0.5)
  info = {"num_classes": 3, "class_names": list(CLASSES)}
  assert sample_lib.class_numbers(["snow", "0", 1], info) == [2, 0, 1]
  with pytest.raises(ValueError, match=r"'cty' is not a class of this run; its classes are "
                                       r"city, sea, snow"):
    sample_lib.class_numbers(["cty"], info)


def test_registered_family_and_presets_validate():
  family = models.get("biggan")
  for preset in (None, "paper", "tiny"):
    config = biggan_folder.get_config(preset)
    configs.check_common(config)
    family.validate_config(config)
  paper = biggan_folder.get_config("paper")
  assert (paper.data.image_size, paper.model.ch, paper.batch_size, paper.d_steps) == (
      128, 96, 256, 2)
  assert (paper.opt.g_lr, paper.opt.d_lr, paper.opt.b1, paper.opt.b2) == (1e-4, 4e-4, 0.0, 0.999)
  assert family.batches_per_step(paper) == 2


def test_d_overfitting_script_scores_both_splits_as_d_does(runs, monkeypatch):
  """scripts/d_overfitting.py: D's outputs on the training and test photos,
  with their labels, as the discriminator gives them."""
  spec = importlib.util.spec_from_file_location(
      "d_overfitting", Path(__file__).parents[1] / "scripts" / "d_overfitting.py")
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  root, _, _, _ = runs
  result = script.measure(root / "full", num=6)
  config, family, state = rundir.restore(root / "full")
  assert result["step"] == 4 and [m["member"] for m in result["members"]] == [None]
  entry = result["members"][0]
  d = state.discriminator
  for name in ("train", "test"):
    split = family.load_split(config, name)
    x = jnp.asarray(split.images[:6], jnp.float32) / 127.5 - 1.0
    direct = np.asarray(d.apply_fn(d.variables(), x, jnp.asarray(split.labels[:6])))
    assert entry[name]["images"] == min(6, len(split.images)) > 0
    np.testing.assert_allclose(entry[name]["mean"], direct.mean(), rtol=1e-5, atol=1e-6)
    assert entry[name]["sign_mean"] == pytest.approx(np.sign(direct).mean())
  assert entry["gap"] == pytest.approx(entry["train"]["mean"] - entry["test"]["mean"])
  monkeypatch.setattr(script, "FAMILIES", ("gan",))  # a family without D's outputs: refused
  with pytest.raises(ValueError, match="is a 'biggan' run; D's outputs are measured for the gan"):
    script.measure(root / "full")
