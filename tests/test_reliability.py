"""Nothing lost, nothing crashes: one run per workdir, damaged checkpoints,
failed saves, and the advice the loop gives after a NaN actually working."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from genjax import checkpoint, models, workdir_lock
from genjax.train import loop
from genjax.train import workdir as rundir
from tests.conftest import params_equal

ROOT = Path(__file__).resolve().parents[1]


def _env():
  return dict(os.environ, PYTHONPATH=str(ROOT))


def _cli(workdir, idx_dir, tfds_dir, *flags):
  return [sys.executable, "-m", "experiments.gan_mnist",
          "--config=experiments/gan_mnist.py:tiny", f"--workdir={workdir}",
          f"--config.data.idx_dir={idx_dir}", f"--config.data.data_dir={tfds_dir}",
          "--config.data.download=False", *flags]


def _wait_for(path: Path, proc, log: Path, timeout: float = 300):
  deadline = time.time() + timeout
  while not path.exists():
    assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
    time.sleep(0.2)


def _damage(step_dir: Path) -> None:
  for f in step_dir.rglob("*"):
    if f.is_file() and f.stat().st_size > 1000:
      f.write_bytes(b"\0" * 10)


def test_second_run_in_a_workdir_is_refused_and_the_first_is_intact(mnist_idx_dir, tfds_dir,
                                                                       tmp_path):
  workdir = tmp_path / "run"
  log = tmp_path / "first.txt"
  first = subprocess.Popen(
      _cli(workdir, mnist_idx_dir, tfds_dir, "--config.num_steps=60",
           "--config.checkpoint_every=20", "--config.eval_every=20"),
      stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT, env=_env())
  _wait_for(workdir / "lock", first, log)
  second = subprocess.run(
      _cli(workdir, mnist_idx_dir, tfds_dir, "--config.num_steps=60", "--config.model.g_width=16"),
      capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
  assert second.returncode == 1
  assert f"pid {first.pid}" in second.stderr and "another --workdir" in second.stderr, \
      second.stderr[-2000:]
  assert first.wait(timeout=600) == 0, log.read_text()[-3000:]
  assert not (workdir / "lock").exists()  # released at the end
  _, _, state = rundir.restore(workdir)
  assert int(state.step) == 60
  assert state.generator.params["Conv_0"]["kernel"].shape[2] == 8  # the first run's width
  assert json.loads((workdir / "config.json").read_text())["model"]["g_width"] == 8


def test_lock_of_a_killed_run_is_taken_over_and_the_run_resumes(mnist_idx_dir, tfds_dir,
                                                                  tmp_path):
  workdir = tmp_path / "run"
  log = tmp_path / "killed.txt"
  killed = subprocess.Popen(
      _cli(workdir, mnist_idx_dir, tfds_dir, "--config.num_steps=100000",
           "--config.checkpoint_every=10"),
      stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT, env=_env())
  _wait_for(workdir / "checkpoints" / "10", killed, log)
  killed.send_signal(signal.SIGKILL)
  killed.wait(timeout=60)
  assert workdir_lock.read(workdir)["pid"] == killed.pid  # left behind
  proc = subprocess.run(
      _cli(workdir, mnist_idx_dir, tfds_dir, "--config.num_steps=30",
           "--config.checkpoint_every=10"),
      capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert str(killed.pid) in proc.stderr and "Resuming from step" in proc.stderr, \
      proc.stderr[-3000:]


def _lose_the_lock_after_step_10(monkeypatch, lose) -> None:
  """Calls lose(workdir) right after the run's checkpoint of step 10 is saved."""
  save = checkpoint.Checkpointer.save

  def save_then_lose(self, step, state, metrics=None):
    save(self, step, state, metrics)
    if step == 10 and self.directory.name == "checkpoints":
      lose(self.directory.parent)
  monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_lose)


def test_a_run_whose_lock_is_taken_stops_without_writing(tiny_gan_config, tmp_path,
                                                         monkeypatch):
  """After step 10's checkpoint the lock is deleted and another run locks the
  workdir: at step 20 the run stops before evaluating or saving."""
  other = []

  def take(workdir):
    (workdir / "lock").unlink()
    other.append(workdir_lock.acquire(workdir, run_id="another-run"))
  _lose_the_lock_after_step_10(monkeypatch, take)
  with pytest.raises(workdir_lock.WorkdirLockLost, match="no longer ours.*run id another-run"):
    loop.train_and_evaluate(tiny_gan_config, tmp_path)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]
  samples = sorted(p.name for p in (tmp_path / "samples").iterdir())
  assert samples and all(name.startswith("step_000010_") for name in samples), samples
  assert workdir_lock.read(tmp_path)["run_id"] == "another-run"  # left to its holder
  other[0].release()


# The CLI of experiments.gan_mnist, with the workdir lock deleted after step 10's save.
LOSE_LOCK_CLI = """
import runpy, sys
from genjax import checkpoint
save = checkpoint.Checkpointer.save
def save_then_delete_the_lock(self, step, state, metrics=None):
  save(self, step, state, metrics)
  if step == 10 and self.directory.name == "checkpoints":
    (self.directory.parent / "lock").unlink()
checkpoint.Checkpointer.save = save_then_delete_the_lock
runpy.run_module("experiments.gan_mnist", run_name="__main__", alter_sys=True)
"""


def test_a_cli_run_whose_lock_is_deleted_exits_1_naming_it(mnist_idx_dir, tfds_dir, tmp_path):
  workdir = tmp_path / "run"
  command = _cli(workdir, mnist_idx_dir, tfds_dir)
  proc = subprocess.run([sys.executable, "-c", LOSE_LOCK_CLI, *command[3:]],
                        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600)
  assert proc.returncode == 1, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: this run's workdir lock") and "was deleted" in last, \
      proc.stderr[-3000:]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10"]
  assert not (workdir / "lock").exists()


def test_damaged_latest_checkpoint_is_moved_aside_and_rewritten(tiny_gan_config, tmp_path,
                                                                capsys):
  full, _ = loop.train_and_evaluate(tiny_gan_config, tmp_path)
  _damage(tmp_path / "checkpoints" / "20")
  capsys.readouterr()
  resumed, metrics = loop.train_and_evaluate(tiny_gan_config, tmp_path)
  err = capsys.readouterr().err
  assert "Moved the unreadable checkpoint" in err and "resuming from step 10" in err, err
  assert metrics["step"] == 20
  assert params_equal(full.generator.params, resumed.generator.params)
  moved = list((tmp_path / "checkpoints_unreadable").iterdir())
  assert len(moved) == 1 and moved[0].name.startswith("20-")
  ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
  assert int(ckpt.restore_latest(full).step) == 20 and not ckpt.unreadable  # rewritten
  ckpt.close()


def test_no_restorable_checkpoint_gives_one_short_message(tiny_gan_config, tmp_path):
  loop.train_and_evaluate(tiny_gan_config, tmp_path)
  for step in ("10", "20"):
    _damage(tmp_path / "checkpoints" / step)
  with pytest.raises(checkpoint.CheckpointError) as raised:
    loop.train_and_evaluate(tiny_gan_config, tmp_path)
  message = str(raised.value)
  assert "step 20: " in message and "step 10: " in message and "new --workdir" in message
  assert len(message.splitlines()) <= 6
  assert (tmp_path / "checkpoints" / "20").is_dir()  # nothing moved: maybe the config changed


def test_sample_falls_back_from_a_damaged_checkpoint_and_says_so(tiny_gan_config, tmp_path):
  loop.train_and_evaluate(tiny_gan_config, tmp_path)
  _damage(tmp_path / "checkpoints" / "20")
  out = tmp_path / "s.npz"
  proc = subprocess.run([sys.executable, "-m", "genjax.sample", f"--workdir={tmp_path}",
                         "--num=8", f"--out={out}"],
                        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "could not be restored; using step 10" in proc.stderr
  assert np.load(out)["images"].shape == (8, 28, 28, 1)
  assert (tmp_path / "checkpoints" / "20").is_dir()  # a reader moves nothing
  proc = subprocess.run([sys.executable, "-m", "genjax.sample", f"--workdir={tmp_path}",
                         "--checkpoint=20", f"--out={out}"],
                        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
  assert proc.returncode == 1 and "try another --checkpoint" in proc.stderr, proc.stderr[-2000:]
  assert len(proc.stderr.splitlines()) < 5
  # Asking for the best checkpoint of a run that kept none adds no folder.
  proc = subprocess.run([sys.executable, "-m", "genjax.sample", f"--workdir={tmp_path}",
                         "--checkpoint=best", f"--out={out}"],
                        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
  assert proc.returncode == 1 and "No checkpoint in" in proc.stderr
  assert not (tmp_path / "best_checkpoint").exists()


def test_the_nan_advice_resumes_with_a_lower_learning_rate(tiny_gan_config, tmp_path,
                                                           monkeypatch):
  gan_family = models.get("gan")

  def poisoned(config):
    real_step = gan_family.make_train_step(config)

    def train_step(state, batch, key):
      state, metrics = real_step(state, batch, key)
      metrics["d_loss"] = jnp.where(state.step > 13, jnp.nan, metrics["d_loss"])
      return state, metrics
    return train_step

  with monkeypatch.context() as m:
    m.setitem(models.FAMILIES, "gan",
              dataclasses.replace(gan_family, make_train_step=poisoned))
    with pytest.raises(loop.TrainingDiverged) as raised:
      loop.train_and_evaluate(tiny_gan_config, tmp_path)
  advice = str(raised.value)
  flags = dict(re.findall(r"--config\.(\S+)=(\S+)", advice))
  assert flags == {"opt.g_lr": "0.0001", "opt.d_lr": "0.0001"}, advice
  allowed = re.search(r"--allow_changes=(\S+)", advice).group(1).rstrip(";").split(",")
  assert sorted(allowed) == ["opt.d_lr", "opt.g_lr"]

  lower = tiny_gan_config.copy_and_resolve_references()
  lower.opt.g_lr = lower.opt.d_lr = 1e-4
  with pytest.raises(ValueError, match=r"opt\.d_lr: 0\.0002 -> 0\.0001.*--allow_changes="):
    loop.train_and_evaluate(lower, tmp_path)
  state, metrics = loop.train_and_evaluate(lower, tmp_path, allow_changes=allowed)
  assert metrics["step"] == 20 and int(state.step) == 20
  assert json.loads((tmp_path / "config.json").read_text())["opt"]["g_lr"] == 1e-4


def test_a_failed_save_is_reported_at_once_and_its_partial_folder_removed(tmp_path,
                                                                          monkeypatch):
  ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
  ckpt.save(10, {"w": np.ones(3)})
  ckpt.wait()
  partial = tmp_path / "checkpoints" / "20.orbax-checkpoint-tmp-1234"
  partial.mkdir()

  def fail():
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(ckpt.manager, "check_for_errors", fail)
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"No space left on device.*20\.orbax-checkpoint-tmp-1234.*step 10"):
    ckpt.check()
  assert not partial.exists() and (tmp_path / "checkpoints" / "10").is_dir()
  monkeypatch.undo()
  ckpt.close()


def test_an_allowed_change_that_no_checkpoint_fits_writes_nothing(mnist_idx_dir, tfds_dir,
                                                                  tmp_path):
  """--allow_changes=model.g_width passes the config check, but the state's shapes
  change: the run is refused in one line before config.json or run.json change,
  and the original command still resumes."""
  workdir = tmp_path / "run"
  first = _cli(workdir, mnist_idx_dir, tfds_dir, "--config.num_steps=10")
  proc = subprocess.run(first, capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  kept = {name: (workdir / name).read_bytes() for name in ("config.json", "run.json")}
  changed = _cli(workdir, mnist_idx_dir, tfds_dir, "--config.num_steps=10",
                 "--config.model.g_width=16", "--allow_changes=model.g_width")
  proc = subprocess.run(changed, capture_output=True, text=True, cwd=ROOT, env=_env(),
                        timeout=600)
  assert proc.returncode == 1
  errors = [line for line in proc.stderr.splitlines() if not line.startswith(("W1", "I1"))]
  assert errors[-1].startswith("error: The checkpoints in") and "do not fit" in errors[-1]
  assert re.search(r"stored \(\d+,\) -> now \(\d+,\)", errors[-1]), errors[-1]
  assert "nothing was written" in errors[-1]
  assert len(errors) <= 3, proc.stderr[-3000:]  # no Orbax tracebacks
  assert {name: (workdir / name).read_bytes() for name in kept} == kept
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10"]
  again = _cli(workdir, mnist_idx_dir, tfds_dir, "--config.num_steps=15")
  proc = subprocess.run(again, capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600)
  assert proc.returncode == 0 and "Resuming from step 10" in proc.stderr, proc.stderr[-2000:]


def test_a_resumed_run_whose_folder_changed_is_refused_unless_data_is_allowed(tmp_path):
  """192 images, then 95: refused, run.json's record kept; with
  --allow_changes=data the run goes on and run.json lists both."""
  from PIL import Image

  folder, workdir = tmp_path / "images", tmp_path / "run"
  folder.mkdir()
  rng = np.random.default_rng(0)
  for i in range(192):
    Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
  from experiments import gan_folder
  from genjax.train import workdir as rundir

  config = gan_folder.get_config()
  config.data.path, config.data.image_size = str(folder), 28
  config.batch_size, config.num_steps, config.steps_per_call = 16, 5, 5
  config.eval_every = config.checkpoint_every = 5
  config.num_eval_samples, config.grid_scale = 16, 1
  config.model.g_width = config.model.d_width = config.model.latent_dim = 8
  loop.train_and_evaluate(config, workdir)
  record = json.loads((workdir / "run.json").read_text())["data"]
  before = record[0]["count"]  # the train split: 192 less the held-out test images
  assert len(record) == 1 and 170 < before < 192
  for i in range(95, 192):
    (folder / f"{i}.png").unlink()
  config.num_steps = 10
  with pytest.raises(ValueError, match=rf"changed: {before} images .* then, \d+ .* now.*"
                                       r"--allow_changes=data"):
    loop.train_and_evaluate(config, workdir)
  assert json.loads((workdir / "run.json").read_text())["data"] == record
  _, metrics = loop.train_and_evaluate(config, workdir, allow_changes=("data",))
  assert metrics["step"] == 10
  history = rundir.read(workdir)[1]["data"]
  assert [r["from_step"] for r in history] == [0, 5] and history[0]["count"] == before
  assert 80 < history[1]["count"] < 95
  assert history[0]["fingerprint"] != history[1]["fingerprint"]
