"""benchmarks.report: one command from configs to the README's results table."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboardX import SummaryWriter

from benchmarks import report
from experiments import gan_mnist
from genjax import viz
from genjax.train import workdir as workdir_lib

ROOT = Path(__file__).resolve().parents[1]


def test_report_trains_scores_and_writes_the_table(tmp_path):
  readme = tmp_path / "README.md"
  readme.write_text(f"# title\n\nbefore\n{report.BEGIN}\nold table\n{report.END}\nafter\n")
  out = tmp_path / "results.md"
  command = [sys.executable, "-m", "benchmarks.report", "--rows=gan_mnist",
             "--steps_scale=0.00075", "--num=300", "--seeds=2", f"--workdir={tmp_path / 'runs'}",
             f"--out={out}", f"--readme={readme}", "--note=Shared the CPU with a test.",
             f"--plots={tmp_path / 'plots'}"]
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((tmp_path / "runs" / "gan_mnist" / "report.json").read_text())
  assert result["steps"] == 12 and result["seeds"] == 2
  members = result["metrics"]["members"]  # a population of two seeds, scored one by one
  assert [m["seed"] for m in members] == [0, 1]
  assert all(m["samples"]["num_samples"] == 300 for m in members)
  assert result["command"] == ("python -m experiments.gan_mnist --config.population.seeds=2 "
                               "--config.num_steps=12")
  text = out.read_text()
  rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
  assert len(rows) == 3  # header, the run, the floor
  fids = [m["samples"]["fid"] for m in members]
  summary = result["metrics"]["summary"]["samples.fid"]
  assert abs(summary["mean"] - sum(fids) / 2) < 1e-9 and summary["min"] == min(fids)
  cell = f"| {summary['mean']:.3g} ± {summary['std']:.2g} |"
  assert cell in rows[1] and rows[2].startswith("| floor: training images | mnist |")
  assert f"seed 0: FID {fids[0]:.3g}; seed 1: FID {fids[1]:.3g}" in text
  assert f"{report.DCGAN_NOTE} Shared the CPU with a test.\n" in text  # --note, after the notes
  text = readme.read_text()
  readme_rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
  assert "old table" not in text and len(readme_rows) == 3  # the compact table
  assert readme_rows[1].startswith("| DCGAN, non-saturating loss | mnist | 12 | 2 |")
  assert cell in readme_rows[1] and "`python" not in readme_rows[1]
  assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{report.END}\nafter\n")
  assert (tmp_path / "plots" / "gan_mnist.png").read_bytes().startswith(b"\x89PNG")
  assert "![gan_mnist](plots/gan_mnist.png)" in out.read_text()  # beside the table
  # A second run reads the finished row instead of training again.
  proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
  assert proc.returncode == 0 and "[gan_mnist] already done" in proc.stderr, proc.stderr[-3000:]
  # A row scored in another feature space is scored again from its
  # checkpoint, not trained again.
  report_json = tmp_path / "runs" / "gan_mnist" / "report.json"
  stale = json.loads(report_json.read_text())
  stale["metrics"]["feature_network"]["sha256"] = "0" * 64
  stale["metrics"]["summary"]["samples.fid"]["mean"] = -1.0
  report_json.write_text(json.dumps(stale))
  proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
  assert proc.returncode == 0 and "[gan_mnist] rescoring" in proc.stderr, proc.stderr[-3000:]
  assert "[gan_mnist] training" not in proc.stderr
  rescored = json.loads(report_json.read_text())
  # same checkpoint, same seed, same numbers
  assert rescored["metrics"]["summary"]["samples.fid"] == summary
  assert rescored["train_seconds"] == result["train_seconds"]


def test_an_interrupted_row_is_not_scored_and_its_parts_add_up(tmp_path, monkeypatch):
  """A row whose training stopped on a signal (the loop returns before
  num_steps) stops the report unscored; the resumed row's train time is the
  sum of its parts, and "≥" where a part left no record."""
  parts = []

  def train(config, workdir):  # the loop: the first part stops at step 5
    step = 5 if not parts else config.num_steps
    parts.append(step)
    (Path(workdir) / "checkpoints" / str(step)).mkdir(parents=True)
    time.sleep(0.3)
    return None, {"step": step}

  scored = []
  monkeypatch.setattr(report.loop, "train_and_evaluate", train)
  monkeypatch.setattr(report.evaluate, "evaluate",
                      lambda workdir, **_: scored.append(workdir) or {"data_source": "IDX"})
  row = tmp_path / "gan_mnist"
  with pytest.raises(report.RowInterrupted, match="stopped at step 5 of 12; nothing scored"):
    report.run_row("gan_mnist", row, 0.00075, 10, 0)
  assert not scored and not (row / "report.json").exists()
  result = report.run_row("gan_mnist", row, 0.00075, 10, 0)
  assert parts == [5, 12] and scored == [row] and result["steps"] == 12
  assert result["train_seconds"] >= 0.6 and result["train_seconds_complete"]
  assert report._train_time(result) == f"{result['train_seconds'] / 60:.1f} min"
  # A row resumed from a checkpoint that no part recorded (its process was
  # killed): the time counted is a lower bound, and the table says so.
  parts.clear()
  (tmp_path / "killed" / "checkpoints" / "3").mkdir(parents=True)
  with pytest.raises(report.RowInterrupted):
    report.run_row("gan_mnist", tmp_path / "killed", 0.00075, 10, 0)
  result = report.run_row("gan_mnist", tmp_path / "killed", 0.00075, 10, 0)
  assert not result["train_seconds_complete"] and report._train_time(result).startswith("≥ ")


def test_a_row_that_diverges_stops_the_report_with_one_line(tmp_path, monkeypatch, capsys):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top

  def diverge(name, *_):
    raise report.loop.TrainingDiverged("d_loss is NaN at step 40. Stopped without saving.")

  monkeypatch.setattr(report, "run_row", diverge)
  with flagsaver.flagsaver():
    flags.FLAGS(["report", "--rows=loss_wgan", f"--workdir={tmp_path}"])
    with pytest.raises(SystemExit) as stop:
      report.main([])
  assert stop.value.code == 1
  assert "[loss_wgan] error: d_loss is NaN at step 40" in capsys.readouterr().err


def test_unknown_row_is_named(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.report", "--rows=gan_mnsit", f"--workdir={tmp_path}"],
      capture_output=True, text=True, cwd=ROOT, timeout=120,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode != 0 and "unknown ['gan_mnsit']" in proc.stderr, proc.stderr[-2000:]


def test_scalars_are_read_from_event_files_and_plotted(tmp_path):
  run = tmp_path / "pop_run"
  with SummaryWriter(str(run / "tensorboard")) as writer:
    for step in (100, 200, 300):
      for m in range(3):
        writer.add_scalar(f"eval/fid/member_{m}", 100.0 - step / 10 + m, step)
      writer.add_scalar("eval/fid", 101.0 - step / 10, step)
      writer.add_scalar("train/d_loss", 0.5, step)
  # A resumed run writes step 300 again, to a file of its own.
  with SummaryWriter(str(run / "tensorboard"), filename_suffix=".2") as writer:
    writer.add_scalar("eval/fid/member_0", 7.0, 300)
  scalars = workdir_lib.read_scalars(run, "eval/")
  assert sorted(scalars) == ["eval/fid", *(f"eval/fid/member_{m}" for m in range(3))]
  steps, values = scalars["eval/fid/member_0"]
  assert steps.tolist() == [100, 200, 300] and values.tolist() == [90.0, 80.0, 7.0]
  assert report.plot_run(run, tmp_path / "plots" / "pop.png", "a population") is not None
  image = np.asarray(Image.open(tmp_path / "plots" / "pop.png"))
  assert image.shape[0] > 200 and image.std() > 0  # a drawn figure, not a blank canvas
  (tmp_path / "empty" / "tensorboard").mkdir(parents=True)
  assert report.plot_run(tmp_path / "empty", tmp_path / "plots" / "empty.png") is None
  assert not (tmp_path / "plots" / "empty.png").exists()


def test_a_swept_population_is_drawn_per_combination(tmp_path):
  """A sweep's members are labelled by their values, and each combination's
  seeds get their own band: a mean over step sizes would mean nothing."""
  run = tmp_path / "sweep"
  config = gan_mnist.get_config()
  config.population.seeds = 2
  config.population.sweep = "opt.g_lr=2e-4,5e-4"
  run.mkdir()
  (run / "config.json").write_text(config.to_json())
  workdir_lib.write_info(run, (28, 28, 1), 10, [{"source": "test"}])
  groups = report._sweep_groups(run)
  assert groups == ["g_lr=0.0002", "g_lr=0.0002", "g_lr=0.0005", "g_lr=0.0005"]
  assert report._sweep_groups(tmp_path) is None  # not a run: no labels
  with SummaryWriter(str(run / "tensorboard")) as writer:
    for step in (100, 200):
      for m in range(4):
        writer.add_scalar(f"eval/fid/member_{m}", 100.0 - step / 10 + 10 * m, step)
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  ax = Figure().add_subplot()
  viz.plot_scalar(ax, workdir_lib.read_scalars(run, "eval/"), "eval/fid", groups=groups)
  handles, labels = ax.get_legend_handles_labels()
  assert labels == ["g_lr=0.0002: mean ± std of 2", "g_lr=0.0005: mean ± std of 2"]
  assert handles[0].get_ydata().tolist() == [95.0, 85.0]  # members 0 and 1 only
  assert handles[1].get_ydata().tolist() == [115.0, 105.0]
  assert report.plot_run(run, tmp_path / "sweep.png") is not None
  # One seed: a labelled line per combination, no band.
  ax = Figure().add_subplot()
  viz.plot_scalar(ax, workdir_lib.read_scalars(run, "eval/"), "eval/fid",
                  groups=["a=1", "a=2", "a=3", "a=4"])
  assert ax.get_legend_handles_labels()[1] == ["a=1", "a=2", "a=3", "a=4"]
  assert not ax.collections  # no fill_between band


def test_translation_rows_train_score_and_sit_beside_their_baseline(tmp_path):
  """pix2pix and CycleGAN on the same test pairs, each a population of two; the
  translation table holds both and pix2pix's identity baseline, and the
  generation table already in --out is left as it was."""
  out = tmp_path / "results.md"
  generation = f"## Samples and likelihoods\n\n{report.BEGIN}\n| a generation table |\n{report.END}\n"
  out.write_text(f"# Results\n\n{generation}")
  readme = tmp_path / "README.md"
  begin, end = report.markers("translation")
  readme.write_text(f"# title\n{begin}\nold\n{end}\n")
  command = [sys.executable, "-m", "benchmarks.report",
             "--rows=pix2pix_edges2fashion,cyclegan_edges2fashion", "--steps_scale=0.01",
             "--num=200", "--seeds=2", f"--workdir={tmp_path / 'runs'}", f"--out={out}",
             f"--readme={readme}", "--plots="]
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  pix = json.loads((tmp_path / "runs" / "pix2pix_edges2fashion" / "report.json").read_text())
  cyc = json.loads((tmp_path / "runs" / "cyclegan_edges2fashion" / "report.json").read_text())
  assert pix["steps"] == 10 and cyc["steps"] == 10 and pix["seeds"] == cyc["seeds"] == 2
  assert [m["num_test_pairs"] for m in pix["metrics"]["members"]] == [200, 200]
  for member in cyc["metrics"]["members"]:  # CycleGAN's A->B outputs scored as pix2pix's
    assert 0 < member["ab_l1"] < 1 and member["ab_fid"] > 0
  text = out.read_text()
  assert text.startswith(f"# Results\n\n{generation}")  # the other table untouched
  section = text[text.index(begin):text.index(end)]
  rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
  assert [r.split(" | ")[0] for r in rows[1:]] == [
      "| pix2pix, edges -> garments (paired)", "| baseline: identity",
      "| CycleGAN, edges -> garments (unpaired), pix2pix's steps"]
  l1 = pix["metrics"]["summary"]["l1"]
  assert f"| {l1['mean']:.4g} ± {l1['std']:.2g} |" in rows[1]
  identity = pix["metrics"]["summary"]["identity.l1"]
  # the same for every member: its mean, without a spread
  assert identity["std"] == 0 and f"| {identity['mean']:.4g} |" in rows[2]
  assert "seed 0: L1 " in section and "seed 1: L1 " in section  # per seed, below the table
  assert "old" not in readme.read_text() and "pix2pix, edges -> garments" in readme.read_text()


def test_an_emoji_row_without_its_folder_names_the_command_that_makes_it(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.report", "--rows=biggan_emoji_1k_ada",
       f"--emoji_1k={tmp_path / 'nowhere'}", f"--workdir={tmp_path}"],
      capture_output=True, text=True, cwd=ROOT, timeout=120,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode != 0, proc.stderr[-2000:]
  assert (f"--emoji_1k={tmp_path / 'nowhere'}: no such folder" in proc.stderr
          and "make_rgb_folder.py" in proc.stderr and "--limit 140" in proc.stderr), proc.stderr
