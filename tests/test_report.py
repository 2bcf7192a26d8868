"""benchmarks.report: one command from configs to the README's results table."""

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import report

ROOT = Path(__file__).resolve().parents[1]


def test_report_trains_scores_and_writes_the_table(tmp_path):
  readme = tmp_path / "README.md"
  readme.write_text(f"# title\n\nbefore\n{report.BEGIN}\nold table\n{report.END}\nafter\n")
  out = tmp_path / "results.md"
  command = [sys.executable, "-m", "benchmarks.report", "--rows=gan_mnist",
             "--steps_scale=0.00075", "--num=300", "--seeds=2", f"--workdir={tmp_path / 'runs'}",
             f"--out={out}", f"--readme={readme}", "--note=Shared the CPU with a test."]
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
  assert text.rstrip().endswith(report.DCGAN_NOTE + " Shared the CPU with a test.")  # --note
  text = readme.read_text()
  readme_rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
  assert "old table" not in text and len(readme_rows) == 3  # the compact table
  assert readme_rows[1].startswith("| DCGAN, non-saturating loss | mnist | 12 | 2 |")
  assert cell in readme_rows[1] and "`python" not in readme_rows[1]
  assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{report.END}\nafter\n")
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


def test_unknown_row_is_named(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.report", "--rows=gan_mnsit", f"--workdir={tmp_path}"],
      capture_output=True, text=True, cwd=ROOT, timeout=120,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode != 0 and "unknown ['gan_mnsit']" in proc.stderr, proc.stderr[-2000:]
