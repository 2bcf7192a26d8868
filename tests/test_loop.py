"""The training loop end to end on real digits: resume, checkpoints, NaN, outputs."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import checkpoint, data, models
from genjax.train import calls, loop
from genjax.train import workdir as rundir
from genjax.metrics import scores
from genjax.models.gan import step as gan
from tests.conftest import params_equal


def test_resumed_run_equals_uninterrupted_run(tiny_gan_config, tmp_path):
  full_state, _ = loop.train_and_evaluate(tiny_gan_config, tmp_path / "full")
  half = tiny_gan_config.copy_and_resolve_references()
  half.num_steps = 10
  _, metrics = loop.train_and_evaluate(half, tmp_path / "resumed")
  assert metrics["step"] == 10
  resumed_state, metrics = loop.train_and_evaluate(tiny_gan_config, tmp_path / "resumed")
  assert metrics["step"] == 20 and int(resumed_state.step) == 20
  assert params_equal(full_state.generator.params, resumed_state.generator.params)
  assert params_equal(full_state.discriminator.opt_state, resumed_state.discriminator.opt_state)
  assert params_equal(full_state.generator.batch_stats, resumed_state.generator.batch_stats)


def test_run_writes_checkpoints_samples_and_tensorboard(tiny_gan_config, tmp_path):
  tiny_gan_config.keep_checkpoints = 2
  tiny_gan_config.num_steps = 30
  loop.train_and_evaluate(tiny_gan_config, tmp_path)
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [20, 30]
  pngs = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
  assert pngs == [f"step_{s:06d}_samples.png" for s in (10, 20, 30)]
  assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  config, info = rundir.read(tmp_path)
  assert config.num_steps == 30 and info["image_shape"] == [28, 28, 1]


def test_half_written_checkpoint_is_never_restored(tiny_gan_config, tmp_path):
  state, _ = loop.train_and_evaluate(tiny_gan_config, tmp_path)
  ckpt_dir = tmp_path / "checkpoints"
  # What a process killed while saving step 30 leaves behind: Orbax's temporary folder.
  shutil.copytree(ckpt_dir / "20", ckpt_dir / "30.orbax-checkpoint-tmp")
  ckpt = checkpoint.Checkpointer(ckpt_dir)
  assert ckpt.latest_step() == 20
  restored = ckpt.restore_latest(state)
  ckpt.close()
  assert int(restored.step) == 20


def test_corrupt_latest_checkpoint_falls_back_to_previous(tiny_gan_config, tmp_path, capsys):
  state, _ = loop.train_and_evaluate(tiny_gan_config, tmp_path)
  for f in (tmp_path / "checkpoints" / "20").rglob("*"):
    if f.is_file() and f.stat().st_size > 1000:
      f.write_bytes(b"\0" * 10)  # a latest checkpoint damaged on disk
  ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
  restored = ckpt.restore_latest(state)
  ckpt.close()
  assert int(restored.step) == 10
  assert "could not be restored" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_nan_stops_run_and_keeps_last_good_checkpoint(precision, tiny_gan_config, tmp_path,
                                                      monkeypatch):
  make_real_step = gan.make_train_step

  def poisoned_step(config):
    real_step = make_real_step(config)

    def train_step(state, batch, key):
      state, metrics = real_step(state, batch, key)
      metrics["d_loss"] = jnp.where(state.step > 13, jnp.nan, metrics["d_loss"])
      return state, metrics
    return train_step

  family = dataclasses.replace(models.get("gan"), make_train_step=poisoned_step)
  monkeypatch.setitem(models.FAMILIES, "gan", family)
  tiny_gan_config.precision = precision
  with pytest.raises(loop.TrainingDiverged, match=r"d_loss became NaN/Inf between steps 10 and 15.*step 10"):
    loop.train_and_evaluate(tiny_gan_config, tmp_path)
  ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
  assert ckpt.latest_step() == 10
  ckpt.close()


def test_changed_config_refuses_to_resume(tiny_gan_config, tmp_path):
  tiny_gan_config.num_steps = 5
  loop.train_and_evaluate(tiny_gan_config, tmp_path)
  tiny_gan_config.model.g_width = 16
  with pytest.raises(ValueError, match=r"model\.g_width: 8 -> 16"):
    loop.train_and_evaluate(tiny_gan_config, tmp_path)


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_gan_learns_real_data(dataset, tiny_gan_config, tmp_path, request):
  """After 150 steps the samples' mean image is at least 2.5 times closer to the data's."""
  from genjax.data import idx

  folder = request.getfixturevalue("mnist_idx_dir" if dataset == "mnist" else "fashion_mnist_slice")
  real = idx.load_idx_split(folder, "train")[0].astype(np.float32) / 127.5 - 1
  config = tiny_gan_config
  config.data.name, config.data.idx_dir = dataset, str(folder)
  config.num_steps, config.batch_size, config.steps_per_call = 150, 32, 10
  config.eval_every = config.checkpoint_every = 150
  config.opt.g_lr = config.opt.d_lr = 1e-3  # a tiny model learns fast enough at this rate
  key = jax.random.key(7)
  init = gan.create_state(config, jax.random.key(0), (28, 28, 1))
  before = np.asarray(gan.sample(init, key, 256, config))
  state, _ = loop.train_and_evaluate(config, tmp_path)
  after = np.asarray(gan.sample(state, key, 256, config))
  def mean_image_error(x):
    return float(np.mean(np.abs(x.mean(0) - real.mean(0))))
  # 0.35 on fashion_mnist with jax 0.10.2, optax 0.2.8, flax 0.12.8: at least 2.5x closer.
  assert mean_image_error(after) < 0.4 * mean_image_error(before), (
      mean_image_error(before), mean_image_error(after))
  # And in the feature space of the dataset's classifier, FID falls.
  test = data.load(dataset, "test", idx_dir=str(folder), data_dir=config.data.data_dir,
                   download=False)
  scorer = scores.Scorer(dataset, test.images, kid_subsets=5)
  fid_before, fid_after = scorer(before, full=False)["fid"], scorer(after, full=False)["fid"]
  assert fid_after < 0.7 * fid_before, (fid_before, fid_after)
  assert f"local_idx/{dataset}" in rundir.read(tmp_path)[1]["data_source"]


def test_many_unrolled_steps_per_call_on_cpu_get_a_note():
  """cyclegan_horse2zebra's 100 steps per call would be unrolled into one CPU
  program; the run says so and names the flag. gan_mnist's 10 pass quietly."""
  from experiments import cyclegan_horse2zebra, gan_mnist
  from genjax import parallel

  mesh = parallel.make_mesh()
  note = calls.unroll_note(cyclegan_horse2zebra.get_config(), mesh)
  if jax.devices()[0].platform == "cpu":
    assert "config.steps_per_call=100" in note and "--config.steps_per_call=1" in note
  else:  # a rolled scan compiles one step however many it runs
    assert note is None
  assert calls.unroll_note(gan_mnist.get_config(), mesh) is None


def test_dense_steps_run_rolled_on_cpu_and_train_as_single_steps():
  """The MLP VAE's steps run in a rolled scan on every platform (only steps
  with convolutions are unrolled on CPU), so the Burda presets' 50 steps per
  call get no note; the loop's 4-step call scans them rolled for the MLP
  and, on CPU, unrolled for the conv VAE; and one call of k rolled steps
  trains as k calls of one step do."""
  from experiments import vae_mnist
  from genjax import parallel

  mesh = parallel.make_mesh()
  cpu = jax.devices()[0].platform == "cpu"
  vae = models.get("vae")
  burda = vae_mnist.get_config("burda_vae")
  assert burda.steps_per_call == 50 and calls.unroll_note(burda, mesh) is None
  assert not parallel.unroll_steps(mesh, vae.convolutional(burda))
  conv = vae_mnist.get_config()
  conv.model.arch = "conv"
  assert parallel.unroll_steps(mesh, vae.convolutional(conv)) == cpu
  conv.steps_per_call = 20
  assert (calls.unroll_note(conv, mesh) is not None) == cpu

  config = vae_mnist.get_config("tiny")
  rng = np.random.default_rng(0)
  split = data.ArrayDataset(rng.integers(0, 256, (512, 28, 28, 1), np.uint8),
                            rng.integers(0, 10, (512,)), 10, "random pixels")
  dataset = vae.to_device(split, mesh)
  init_key, train_key, data_key = jax.random.split(jax.random.key(0), 3)
  start = vae.create_state(config, init_key, (28, 28, 1), 10)

  def scan_unroll(cfg, state):  # the `unroll` of the 4-step call's scan of steps
    jaxpr = jax.make_jaxpr(calls.make_train_call(vae, cfg, mesh, 4))(
        state, dataset, train_key, data_key)
    scans = [e.params["unroll"] for e in _equations(jaxpr.jaxpr) if e.primitive.name == "scan"
             and e.params["length"] == 4]
    assert len(scans) == 1, scans
    return scans[0]

  assert scan_unroll(config, start) == 1  # rolled
  conv = vae_mnist.get_config("tiny")
  conv.model.arch = "conv"
  conv_start = jax.eval_shape(lambda k: vae.create_state(conv, k, (28, 28, 1), 10), init_key)
  assert scan_unroll(conv, conv_start) == (4 if cpu else 1)  # unrolled on CPU only
  copy = lambda s: jax.tree.map(jnp.copy, s)  # the calls donate their state
  rolled, metrics = calls.make_train_call(vae, config, mesh, 4)(copy(start), dataset, train_key,
                                                               data_key)
  single = copy(start)
  one = calls.make_train_call(vae, config, mesh, 1)
  losses = []
  for _ in range(4):
    single, m = one(single, dataset, train_key, data_key)
    losses.append(float(m["loss"][0]))
  assert int(rolled.step) == int(single.step) == 4
  np.testing.assert_allclose(np.asarray(metrics["loss"]), losses, rtol=1e-5)
  for a, b in zip(jax.tree.leaves((rolled.encoder.params, rolled.decoder.params)),
                  jax.tree.leaves((single.encoder.params, single.decoder.params))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
  moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(start.decoder.params),
                                                    jax.tree.leaves(single.decoder.params))]
  assert all(moved)


def _equations(jaxpr):
  """Every equation of `jaxpr` and of the jaxprs inside it."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for inner in param if isinstance(param, (list, tuple)) else [param]:
        inner = getattr(inner, "jaxpr", inner)
        if hasattr(inner, "eqns"):
          yield from _equations(inner)


def test_an_older_config_json_is_upgraded_once_and_resumes(tiny_gan_config, tmp_path):
  """A config.json written before keys were added (configs.ADDED_KEYS) resumes
  under today's config, and readers see those keys at the values that
  reproduce the old run."""
  from genjax import configs

  tiny_gan_config.num_steps = 5
  loop.train_and_evaluate(tiny_gan_config, tmp_path)
  old = json.loads((tmp_path / "config.json").read_text())
  for key in ("diffaug", "r1_gamma", "grid_scale", "population"):
    del old[key]
  del old["data"]["limit"], old["model"]["icnr"]
  (tmp_path / "config.json").write_text(json.dumps(old))
  config, _ = rundir.read(tmp_path)
  assert (config.diffaug, config.data.limit, config.population.seeds) == ("", 0, 0)
  assert config.model.icnr is False  # what runs before the key did, not today's default
  # Today's default for model.icnr is True: the upgraded old run differs there.
  with pytest.raises(ValueError, match=r"model\.icnr: False -> True"):
    loop.train_and_evaluate(tiny_gan_config, tmp_path)
  tiny_gan_config.num_steps = 10
  _, metrics = loop.train_and_evaluate(tiny_gan_config, tmp_path,
                                       allow_changes=("model.icnr",))
  assert metrics["step"] == 10
  assert set(configs.ADDED_KEYS["gan"]) <= {k for k, _ in configs.leaves(tiny_gan_config)}
