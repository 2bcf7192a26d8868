"""What the command lines do with input that is wrong or too large: one line
`error: ...` naming the file or value and the fix (never a traceback), sizes
refused before they are allocated, and a diverged population member never
passed off as a trained one."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from genjax.train import loop
from genjax.train import members as members_lib
from genjax.train import workdir as rundir
from tests.conftest import make_tiny_gan_config
from tests.test_population import _poisoned, _short

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, timeout=300):
  """`python ARGS...` from the repository root, as a user would run it."""
  return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)),
                        capture_output=True, text=True, timeout=timeout)


def _train(workdir, idx_dir, tfds_dir, *flags, timeout=300):
  """The tiny gan_mnist experiment on the local digits, as a user runs it."""
  return _run("-m", "experiments.gan_mnist", "--config=experiments/gan_mnist.py:tiny",
              f"--workdir={workdir}", f"--config.data.idx_dir={idx_dir}",
              f"--config.data.data_dir={tfds_dir}", "--config.data.download=False", *flags,
              timeout=timeout)


def _one_line_error(proc, *expected: str) -> str:
  """Exit status 1 and a single stderr line `error: ...` holding each of `expected`."""
  assert proc.returncode == 1, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error: ")]
  assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
  for text in expected:
    assert text in lines[0], lines[0]
  return lines[0]


@pytest.fixture(scope="module")
def trained_workdir(mnist_idx_dir, tfds_dir, tmp_path_factory) -> Path:
  """A tiny gan_mnist run (20 steps), trained once for this module."""
  workdir = tmp_path_factory.mktemp("tiny_gan_run")
  loop.train_and_evaluate(make_tiny_gan_config(mnist_idx_dir, tfds_dir), workdir)
  return workdir


@pytest.fixture(scope="module")
def diverged_population(mnist_idx_dir, tfds_dir, tmp_path_factory) -> Path:
  """A population of two (opt.d_lr 2e-4 and 4e-4) whose member 1 becomes
  NaN at step 14 (test_population's poisoned step), trained to step 20."""
  workdir = tmp_path_factory.mktemp("diverged_population")
  config = _short(make_tiny_gan_config(mnist_idx_dir, tfds_dir), num_steps=20)
  config.population.sweep = "opt.d_lr=2e-4,4e-4"
  with pytest.MonkeyPatch.context() as monkeypatch:
    _poisoned(monkeypatch)
    state, _ = loop.train_and_evaluate(config, workdir)
  assert np.asarray(state.healthy).tolist() == [True, False]
  return workdir


def _copy(workdir: Path, tmp_path: Path) -> Path:
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  return copy


# A diverged population member ------------------------------------------------


def test_sampling_a_diverged_member_says_so_and_at_which_step(diverged_population, tmp_path):
  out = tmp_path / "s.npz"
  proc = _run("-m", "genjax.sample", f"--workdir={diverged_population}", "--member=1",
              "--num=8", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert ("member 1 diverged: it became NaN/Inf at step 14 and is frozen at its last finite "
          "state, that of step 13, not trained to the checkpoint's step 20.") in proc.stderr, \
      proc.stderr[-3000:]
  assert np.load(out)["images"].shape == (8, 28, 28, 1)  # sampled all the same, as asked

  # Without the TensorBoard record the step is not claimed.
  copy = _copy(diverged_population, tmp_path)
  shutil.rmtree(copy / "tensorboard")
  *_, diverged = rundir.restore_member(copy, "latest", 1)
  assert diverged["diverged"] and diverged["diverged_at_step"] is None
  assert "the step is not recorded" in diverged["message"]
  assert rundir.restore_member(copy, "latest", 0)[3] is None  # the healthy member


def test_evaluating_a_diverged_member_marks_it(diverged_population):
  proc = _run("-m", "genjax.evaluate", f"--workdir={diverged_population}", "--member=1",
              "--num=64", "--nofloor", "--noinception", timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout)
  assert result["diverged"] is True and result["diverged_at_step"] == 14, result
  assert result["step"] == 20 and "frozen at its last finite state" in result["note"]
  assert "member 1 diverged" in proc.stderr


def test_population_summary_over_one_healthy_member_has_no_std(diverged_population):
  assert members_lib.summarize([3.0])["std"] is None
  assert members_lib.summarize([3.0, 5.0])["std"] == pytest.approx(np.sqrt(2))
  proc = _run("-m", "genjax.evaluate", f"--workdir={diverged_population}", "--num=64",
              "--nofloor", "--noinception", timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout)
  first, second = result["members"]
  assert not first.get("diverged") and "samples" in first
  assert second["diverged"] is True and second["diverged_at_step"] == 14
  assert "samples" not in second
  fid = result["summary"]["samples.fid"]
  assert fid["std"] is None and fid["mean"] == fid["min"] == fid["max"], fid
  assert re.search(r'"std": null', proc.stdout)


# Sizes refused before they are allocated -------------------------------------


def test_a_population_too_large_for_memory_is_refused_before_allocating(mnist_idx_dir,
                                                                         tfds_dir, tmp_path):
  """10^6 tiny members need about 1.7 TB: refused, naming the figure and a
  count that fits, within seconds and without building the members."""
  workdir = tmp_path / "run"
  start = time.perf_counter()
  proc = _train(workdir, mnist_idx_dir, tfds_dir, "--config.population.seeds=1000000",
                timeout=120)
  line = _one_line_error(proc, "config.population: 1000000 members need about ", " TB ",
                         " is free (")
  fit = int(re.search(r"At most (\d+) members fit: use --config.population.seeds=(\d+)",
                      line).group(1))
  assert 0 < fit < 1000000, line
  assert time.perf_counter() - start < 120
  assert not workdir.exists()  # a run that could not start leaves no trace


def test_sample_of_more_images_than_the_disk_holds_is_refused(trained_workdir, tmp_path):
  out = tmp_path / "s.npz"
  num = max(10**9, 2 * shutil.disk_usage(tmp_path).free // 784)
  proc = _run("-m", "genjax.sample", f"--workdir={trained_workdir}", f"--num={num}",
              f"--out={out}", timeout=120)
  line = _one_line_error(proc, f"--num={num}: {num} images (28, 28, 1) take up to ",
                         f"but {tmp_path} has ")
  fit = int(re.search(r"at most (\d+) fit \(--num=\d+\)", line).group(1))
  assert 0 < fit < num
  assert list(tmp_path.iterdir()) == []  # nothing written


# Run `genjax.sample` and print its peak resident memory.
PEAK_RSS = """
import atexit, resource, runpy, sys
atexit.register(lambda: print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                              file=sys.stderr))
sys.argv = ["genjax.sample", *sys.argv[1:]]
runpy.run_module("genjax.sample", run_name="__main__", alter_sys=True)
"""


def test_sample_writes_large_counts_a_batch_at_a_time(trained_workdir, tmp_path):
  """200,000 images (157 MB as uint8, 627 MB as the generator's float32) take
  no more memory than 1,000: they are written to the .npz as they come."""
  peaks = {}
  for num in (1000, 200_000):
    out = tmp_path / f"s{num}.npz"
    proc = _run("-c", PEAK_RSS, f"--workdir={trained_workdir}", f"--num={num}",
                f"--out={out}", "--batch=1000", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks[num] = int(re.search(r"PEAK_RSS_KB (\d+)", proc.stderr).group(1)) * 1024
  images = np.load(tmp_path / "s200000.npz")["images"]
  assert images.shape == (200_000, 28, 28, 1) and images.dtype == np.uint8
  np.testing.assert_array_equal(images[:1000], np.load(tmp_path / "s1000.npz")["images"])
  assert peaks[200_000] - peaks[1000] < images.nbytes / 4, peaks
  assert not list(tmp_path.glob(".*.tmp"))


def test_evaluate_num_beyond_memory_is_refused_before_loading(trained_workdir):
  start = time.perf_counter()
  proc = _run("-m", "genjax.evaluate", f"--workdir={trained_workdir}", "--num=1000000000",
              timeout=120)
  line = _one_line_error(proc, "--num=1000000000: scoring 1000000000 samples (28, 28, 1) "
                         "needs about ", " is free (")
  fit = int(re.search(r"at most --num=(\d+) fits", line).group(1))
  assert 4 <= fit < 10**9
  assert proc.stdout == "" and time.perf_counter() - start < 120


# A workdir or run file that cannot be used -----------------------------------


def _file_workdir(tmp_path):
  (tmp_path / "file").write_text("not a folder")
  return tmp_path / "file"


def _lock_folder(tmp_path):
  (tmp_path / "run" / "lock").mkdir(parents=True)
  (tmp_path / "run" / "lock" / "notes.txt").write_text("kept")
  return tmp_path / "run"


@pytest.mark.parametrize("make_workdir, expected", [
    (_lock_folder, ["/run/lock is a folder, not the lock file", "Move it out of"]),
    (_file_workdir, ["/file is a file, not a folder", "Name a folder"]),
    (lambda tmp_path: _file_workdir(tmp_path) / "run", ["/file/run cannot be created: ",
                                                        "/file is a file, not a folder"]),
    # Folders no user may write in, root included (sysfs): a read-only
    # workdir, and one that cannot be created.
    (lambda tmp_path: Path("/sys/kernel"), ["cannot write in the workdir /sys/kernel (",
                                            "make it writable"]),
    (lambda tmp_path: Path("/sys/genjax_run"), ["--workdir /sys/genjax_run cannot be created (",
                                                "name another --workdir"]),
], ids=["lock_is_a_folder", "workdir_is_a_file", "workdir_under_a_file", "read_only_workdir",
        "workdir_cannot_be_created"])
def test_an_unusable_workdir_is_one_line(make_workdir, expected, mnist_idx_dir, tfds_dir,
                                         tmp_path):
  workdir = make_workdir(tmp_path)
  before = sorted(str(p) for p in tmp_path.rglob("*"))
  proc = _train(workdir, mnist_idx_dir, tfds_dir)
  _one_line_error(proc, *expected)
  assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing added or removed


@pytest.mark.parametrize("text, kind", [("null", "null"), ("[1, 2]", "a JSON array")])
def test_a_config_json_that_is_not_an_object_is_one_line_on_resume_and_in_sample(
    trained_workdir, mnist_idx_dir, tfds_dir, tmp_path, text, kind):
  workdir = _copy(trained_workdir, tmp_path)
  (workdir / "config.json").write_text(text)
  _one_line_error(_train(workdir, mnist_idx_dir, tfds_dir),
                  f"{workdir / 'config.json'} is not a config written by genjax (it holds "
                  f"{kind}, not a JSON object)", "new --workdir")
  assert (workdir / "config.json").read_text() == text  # kept for the user to restore
  _one_line_error(_run("-m", "genjax.sample", f"--workdir={workdir}", "--num=4",
                       f"--out={tmp_path / 's.npz'}"),
                  f"{workdir / 'config.json'} holds {kind}, not a JSON object")


@pytest.mark.parametrize("tool", ["genjax.sample", "genjax.evaluate"])
def test_run_files_with_values_of_the_wrong_type_are_one_line(trained_workdir, tmp_path, tool):
  workdir = _copy(trained_workdir, tmp_path)
  config = json.loads((workdir / "config.json").read_text())
  config["model"]["latent_dim"] = "16"
  (workdir / "config.json").write_text(json.dumps(config))
  flags = [f"--out={tmp_path / 's.npz'}"] if tool == "genjax.sample" else ["--noinception"]
  _one_line_error(_run("-m", tool, f"--workdir={workdir}", "--num=4", *flags),
                  f"{workdir / 'config.json'}: config.model.latent_dim='16' must be a "
                  "positive integer.", "restore it")

  config["model"]["latent_dim"] = 16
  (workdir / "config.json").write_text(json.dumps(config))
  info = json.loads((workdir / "run.json").read_text())
  info["image_shape"] = "28x28"
  (workdir / "run.json").write_text(json.dumps(info))
  _one_line_error(_run("-m", tool, f"--workdir={workdir}", "--num=4", *flags),
                  f"{workdir / 'run.json'}: image_shape='28x28' must be a list of three "
                  "positive integers")
  assert not (tmp_path / "s.npz").exists()


# Config values ---------------------------------------------------------------


def test_negative_population_seeds_are_refused_by_name(mnist_idx_dir, tfds_dir, tmp_path):
  workdir = tmp_path / "run"
  _one_line_error(_train(workdir, mnist_idx_dir, tfds_dir, "--config.population.seeds=-3"),
                  "config.population.seeds=-3 must be an integer >= 0")
  assert not workdir.exists()  # refused before anything was trained or written
