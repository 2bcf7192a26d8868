"""The command lines as a user runs them: config errors, preemption, sampling."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tiny_flags(idx_dir, tfds_dir):
  return [
      "--config.batch_size=16", "--config.model.latent_dim=16", "--config.model.g_width=8",
      "--config.model.d_width=8", "--config.num_eval_samples=16", "--config.steps_per_call=5",
      f"--config.data.idx_dir={idx_dir}", f"--config.data.data_dir={tfds_dir}",
      "--config.data.download=False",
  ]


def _run(args, timeout=300):
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                        timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("module,flag,closest", [
    ("gan_mnist", "--config.bogus=1", ""),
    ("gan_mnist", "--config.opt.g_lrr=1e-4", "; the closest are opt.g_lr"),
    ("vae_mnist", "--config.precison=bfloat16", ""),  # a key this family does not have
])
def test_a_mistyped_key_is_one_line_naming_the_closest_keys(module, flag, closest, tmp_path):
  proc = _run(["-m", f"experiments.{module}", f"--workdir={tmp_path / 'run'}", flag])
  key = flag[len("--config."):].partition("=")[0]
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith(
      f"error: --config.{key}: the config has no key {key!r}{closest}"), proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
  assert proc.stderr.strip().endswith(f"(the keys are in experiments/{module}.py).")
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag,message", [
    ("--config.lerning_rate=1", "lerning_rate"),
    ("--config.loss=wasserstien", r"config\.loss='wasserstien'"),
    ("--config.batch_size=0", r"config\.batch_size=0"),
    ("--config.model.upsample=bilinear", r"config\.model\.upsample='bilinear'"),
    ("--config.batch_size=big", "batch_size"),
])
def test_bad_config_fails_fast_naming_the_key(flag, message, tmp_path):
  start = time.perf_counter()
  proc = _run(["-m", "experiments.gan_mnist", f"--workdir={tmp_path}", flag])
  assert proc.returncode != 0
  assert re.search(message, proc.stderr), proc.stderr[-2000:]
  assert not (tmp_path / "checkpoints").exists()  # failed before any work
  assert time.perf_counter() - start < 60


def test_sigterm_saves_and_rerun_resumes(mnist_idx_dir, tfds_dir, tmp_path):
  args = [sys.executable, "-m", "experiments.gan_mnist", f"--workdir={tmp_path}",
          "--config.num_steps=100000", "--config.eval_every=10", "--config.checkpoint_every=100000",
          *_tiny_flags(mnist_idx_dir, tfds_dir)]
  log = open(tmp_path / "log.txt", "w")
  proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
  deadline = time.time() + 300
  while not (tmp_path / "samples" / "step_000010_samples.png").exists():
    assert proc.poll() is None and time.time() < deadline, (tmp_path / "log.txt").read_text()
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == 0
  out = (tmp_path / "log.txt").read_text()
  saved = int(re.search(r"SIGTERM received: saved a checkpoint at step (\d+)", out).group(1))
  assert saved >= 10 and (tmp_path / "checkpoints" / str(saved)).is_dir()

  proc = _run(args[1:4] + [f"--config.num_steps={saved + 5}"] + args[5:])
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f"Resuming from step {saved} of {saved + 5}" in proc.stderr
  assert re.search(rf"Done: {saved + 5} steps in [\d.]+ (s|min), from step {saved}\.",
                   proc.stderr), (
      proc.stderr[-2000:])

  out_file = tmp_path / "s.npz"
  proc = _run(["-m", "genjax.sample", f"--workdir={tmp_path}", "--num=37", f"--out={out_file}",
               "--batch=16"])
  assert proc.returncode == 0, proc.stderr[-2000:]
  images = np.load(out_file)["images"]
  assert images.shape == (37, 28, 28, 1) and images.dtype == np.uint8
  assert images.std() > 5  # not a constant image


def test_sample_without_run_names_missing_file(tmp_path):
  proc = _run(["-m", "genjax.sample", f"--workdir={tmp_path}", "--num=4",
               f"--out={tmp_path / 'x.npz'}"])
  assert proc.returncode == 1 and "config.json not found" in proc.stderr


def test_preset_runs_into_its_own_workdir(mnist_idx_dir, tfds_dir, tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.gan_mnist",
       f"--config={ROOT / 'experiments' / 'gan_mnist.py'}:wgan_gp", "--config.num_steps=5",
       "--config.metrics_num_samples=0", *_tiny_flags(mnist_idx_dir, tfds_dir)],
      capture_output=True, text=True, cwd=tmp_path, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-2000:]
  import json
  config = json.loads((tmp_path / "runs" / "gan_mnist_wgan_gp" / "config.json").read_text())
  assert (config["loss"], config["gp_weight"], config["n_critic"]) == ("wgan_gp", 10.0, 5)
  assert (config["opt"]["g_lr"], config["opt"]["b2"], config["batch_size"]) == (1e-4, 0.9, 16)


def test_unknown_preset_and_offline_cifar10_are_named(tmp_path):
  proc = _run(["-m", "experiments.gan_mnist", "--config=experiments/gan_mnist.py:wgangp",
               f"--workdir={tmp_path}"])
  assert proc.returncode != 0 and "Unknown preset 'wgangp'" in proc.stderr, proc.stderr[-2000:]
  proc = _run(["-m", "experiments.gan_cifar10", f"--workdir={tmp_path / 'c'}",
               f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.data.download=False"])
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "Dataset 'cifar10' is unavailable" in proc.stderr and "data_dir" in proc.stderr
  assert not (tmp_path / "c").exists()


def test_configs_command_lists_every_key_with_default_type_rule_and_comment():
  """`python -m genjax.configs FILE:PRESET`: the schema of an experiment in one place."""
  from experiments import gan_mnist
  from genjax import configs

  proc = _run(["-m", "genjax.configs", "experiments/gan_mnist.py:wgan_gp"])
  assert proc.returncode == 0, proc.stderr
  rows = {line.split()[0]: line for line in proc.stdout.splitlines()}
  assert sorted(rows) == sorted(k for k, _ in configs.leaves(gan_mnist.get_config("wgan_gp")))
  gp = rows["gp_weight"].split()
  assert gp[1:4] == ["10.0", "float", "--allow_changes=gp_weight"]  # the preset's value
  assert "WGAN-GP: lambda of the gradient penalty" in rows["gp_weight"]
  assert rows["num_steps"].split()[3:5] == ["may", "change"]
  assert "one member per value" in rows["population.sweep"]  # a comment above the line
  proc = _run(["-m", "genjax.configs", "experiments/gan_mnsit.py"])
  assert proc.returncode == 1 and "is not an experiment file" in proc.stderr
