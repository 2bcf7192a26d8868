"""Populations (genjax.train.population): members equal single runs, resume, a
member's NaN, sharding over a `member` axis, and the CLIs' --member."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import models
from genjax.train import loop
from genjax.train import population
from genjax.train import members as members_lib
from genjax.train import workdir as rundir
from tests.conftest import params_equal
from tests.test_parallel import assert_equal_up_to_reduction_order

ROOT = Path(__file__).resolve().parents[1]


def _short(config, num_steps=10):
  config = config.copy_and_resolve_references()
  config.num_steps = num_steps
  config.steps_per_call = 2  # short compiles: the loop layout unrolls steps x members
  config.eval_every = config.checkpoint_every = 10
  return config


def _params(state):
  return (state.generator.params, state.discriminator.params, state.ema_params)


def _assert_close(a, b):
  """Equal up to the order of float reductions: XLA fuses the population's
  bigger program differently, and vmap batches the convolutions."""
  diffs = np.concatenate([np.abs(np.asarray(x) - np.asarray(y)).ravel()
                          for x, y in zip(jax.tree.leaves(_params(a)), jax.tree.leaves(_params(b)))])
  assert_equal_up_to_reduction_order(diffs)


def test_members_cross_sweep_values_with_seeds_and_describe_themselves(tiny_gan_config):
  config = tiny_gan_config
  config.seed = 5
  config.population.seeds = 2
  config.population.sweep = "opt.g_lr=1e-4,2e-4 ema_decay=0.0,0.9"
  members = members_lib.members_of(config)
  assert len(members) == 8
  assert members.seeds == [5, 6] * 4
  assert members.swept == {"opt.g_lr": [1e-4] * 4 + [2e-4] * 4,
                           "ema_decay": [0.0, 0.0, 0.9, 0.9] * 2}
  last = members.configs[7]
  assert (last.seed, last.opt.g_lr, last.ema_decay) == (6, 2e-4, 0.9)
  assert not members_lib.active(last)  # each member is a single run's config
  assert members.describe(7) == "member 7 (seed 6, opt.g_lr=0.0002, ema_decay=0.9)"


@pytest.mark.parametrize("sweep, message", [
    ("model.g_width=8,16", r"model.g_width=8 is not a float"),
    ("opt.g_lr", r"'opt.g_lr' must read KEY=V1,V2"),
    ("opt.nope=1.0", r"'opt.nope' is not a config key"),
    ("opt.g_lr=1e-4,x", r"not a number"),
    ("seed=1.0,2.0", r"'seed' cannot be swept"),
    ("opt.g_lr=1e-4,2e-4 opt.g_lr=3e-4", r"'opt.g_lr' is given twice"),  # no value dropped
    ("opt.g_lr=1e-4,0.0001", r"repeats a value"),
])
def test_bad_sweeps_are_refused_naming_the_key(tiny_gan_config, tmp_path, sweep, message):
  tiny_gan_config.population.sweep = sweep
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(tiny_gan_config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_a_key_the_step_needs_in_python_is_refused(tiny_gan_config, tmp_path, monkeypatch):
  gan = models.get("gan")

  def concrete(config):
    float(config.opt.d_lr)  # a step that needs the value in Python
    return gan.make_train_step(config)

  monkeypatch.setitem(models.FAMILIES, "gan", dataclasses.replace(gan, make_train_step=concrete))
  config = _short(tiny_gan_config)
  config.population.sweep = "opt.d_lr=1e-4,2e-4"
  with pytest.raises(ValueError, match=r"opt.d_lr cannot differ between members"):
    loop.train_and_evaluate(config, tmp_path)


@pytest.mark.parametrize("layout", ["loop", "vmap"])
def test_each_member_equals_the_single_run_with_its_seed_and_values(tiny_gan_config, tmp_path,
                                                                    layout):
  config = _short(tiny_gan_config)
  config.population.seeds = 2
  config.population.sweep = "opt.g_lr=2e-4,4e-4"
  config.population.layout = layout
  state, metrics = loop.train_and_evaluate(config, tmp_path / "population")
  assert int(state.step) == 10 and metrics["step"] == 10
  assert np.asarray(state.healthy).all()
  grid = tmp_path / "population" / "samples" / "step_000010_members.png"
  assert grid.exists()  # one row per member

  for m in (0, 3):  # (seed 0, 2e-4) and (seed 1, 4e-4)
    single = _short(tiny_gan_config)
    single.seed = (0, 1)[m % 2]
    single.opt.g_lr = (2e-4, 4e-4)[m // 2]
    alone, _ = loop.train_and_evaluate(single, tmp_path / f"single{m}")
    member = population.member_state(state, m)
    assert int(member.step) == 10
    _assert_close(member, alone)
    lr = member.generator.opt_state.hyperparams["learning_rate"]
    np.testing.assert_allclose(float(lr), single.opt.g_lr, rtol=1e-6)


def test_resumed_population_equals_uninterrupted_and_clis_take_a_member(tiny_gan_config,
                                                                        tmp_path):
  config = _short(tiny_gan_config, num_steps=20)
  config.population.seeds = 3
  full, _ = loop.train_and_evaluate(config, tmp_path / "full")
  half = config.copy_and_resolve_references()
  half.num_steps = 10
  loop.train_and_evaluate(half, tmp_path / "resumed")
  resumed, _ = loop.train_and_evaluate(config, tmp_path / "resumed")
  assert int(resumed.step) == 20
  assert params_equal(full.members, resumed.members)

  _, _, restored = rundir.restore(tmp_path / "full", member=2)
  assert params_equal(_params(restored), _params(population.member_state(full, 2)))
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  out = tmp_path / "s.npz"
  for member, expect in (("--member=2", 0), ("--member=3", 1), (None, 1)):
    proc = subprocess.run(
        [sys.executable, "-m", "genjax.sample", f"--workdir={tmp_path / 'full'}", "--num=12",
         f"--out={out}", *([member] if member else [])],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == expect, proc.stderr[-2000:]
    if expect:
      assert "members 0..2" in proc.stderr or "pick one with --member" in proc.stderr
  assert np.load(out)["images"].shape == (12, 28, 28, 1)

  proc = subprocess.run(
      [sys.executable, "-m", "genjax.evaluate", f"--workdir={tmp_path / 'full'}", "--num=64",
       "--nofloor", "--noinception"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout)
  fids = [m["samples"]["fid"] for m in result["members"]]
  assert [m["seed"] for m in result["members"]] == [0, 1, 2] and len(set(fids)) == 3
  summary = result["summary"]["samples.fid"]
  np.testing.assert_allclose(summary["mean"], np.mean(fids))
  np.testing.assert_allclose(summary["std"], np.std(fids, ddof=1))
  assert summary["min"] == min(fids) and summary["max"] == max(fids)


def _poisoned(monkeypatch):
  """The GAN family, with d_loss NaN after step 13 for members whose d_lr
  is above 3e-4."""
  gan = models.get("gan")

  def poisoned(config):
    real_step = gan.make_train_step(config)

    def train_step(state, batch, key):
      state, metrics = real_step(state, batch, key)
      bad = (config.opt.d_lr > 3e-4) & (state.step > 13)
      metrics["d_loss"] = jnp.where(bad, jnp.nan, metrics["d_loss"])
      return state, metrics
    return train_step

  monkeypatch.setitem(models.FAMILIES, "gan", dataclasses.replace(gan, make_train_step=poisoned))


def test_a_diverging_member_is_frozen_and_the_others_go_on(tiny_gan_config, tmp_path,
                                                          monkeypatch, capsys):
  config = _short(tiny_gan_config, num_steps=20)
  config.population.sweep = "opt.d_lr=2e-4,4e-4"
  healthy_alone, _ = loop.train_and_evaluate(_short(tiny_gan_config, 20), tmp_path / "alone")
  _poisoned(monkeypatch)
  state, metrics = loop.train_and_evaluate(config, tmp_path / "population")
  logged = capsys.readouterr()
  assert "member 1 (seed 0, opt.d_lr=0.0004) became NaN/Inf at step 14" in logged.out + logged.err
  assert np.asarray(state.healthy).tolist() == [True, False]
  assert int(state.step) == 20 and np.isfinite(metrics["d_loss"])
  _assert_close(population.member_state(state, 0), healthy_alone)
  frozen = population.member_state(state, 1)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(_params(frozen)))
  assert int(frozen.generator.opt_state.count) == 13  # its last finite step

  config.population.stop_on_nan = True
  with pytest.raises(loop.TrainingDiverged, match=r"member 1 \(seed 0.*stop_on_nan"):
    loop.train_and_evaluate(config, tmp_path / "stop")
  assert sorted(p.name for p in (tmp_path / "stop" / "checkpoints").iterdir()) == ["10"]


SHARDED = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from genjax.train import loop
    from genjax.train import population
    from tests.conftest import make_tiny_gan_config
    idx_dir, tfds_dir, out = sys.argv[1:]
    runs = {}
    for name, devices in (("eight", jax.devices()), ("one", jax.devices()[:1])):
      config = make_tiny_gan_config(idx_dir, tfds_dir)
      config.num_steps = config.steps_per_call = config.eval_every = 4
      config.checkpoint_every = 4
      config.population.seeds = 4
      config.population.layout = "vmap"
      runs[name], _ = loop.train_and_evaluate(config, f"{out}/{name}", devices=devices)
    leaves = lambda s: [np.asarray(x).ravel() for x in jax.tree.leaves(
        (s.members.generator.params, s.members.discriminator.params))]
    diffs = np.concatenate([np.abs(a - b) for a, b in zip(leaves(runs["eight"]),
                                                          leaves(runs["one"]))])
    sharding = jax.tree.leaves(runs["eight"].members.generator.params)[0].sharding
    print("RESULT", json.dumps({"diffs": diffs.tolist(), "spec": list(sharding.spec),
                                "mesh": dict(sharding.mesh.shape)}))
""")


def test_members_are_sharded_over_eight_devices_and_train_as_on_one(mnist_idx_dir, tfds_dir,
                                                                     tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(ROOT))
  proc = subprocess.run([sys.executable, "-c", SHARDED, str(mnist_idx_dir), str(tfds_dir),
                         str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT,
                        timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.split("RESULT", 1)[1])
  assert result["mesh"] == {"member": 4, "data": 2}
  assert result["spec"][0] == "member", result["spec"]
  assert_equal_up_to_reduction_order(result["diffs"])
