"""What the benchmarks share: timed windows, synthetic data, configs, child
processes and the JSON report. Imports nothing of benchmarks/ itself."""

import importlib
import json
import statistics
import subprocess
import sys
import time

EXPERIMENTS = {
    # experiment module: image shape of its default dataset
    "gan_mnist": (28, 28, 1),
    "vae_mnist": (28, 28, 1),
    "cyclegan_edges2fashion": (28, 28, 1),
    "cyclegan_horse2zebra": (256, 256, 3),  # the paper's setting: 9 blocks, width 64, batch 1
    "progan_fashion_mnist": (28, 28, 1),  # measured at its last phase (32x32, faded in)
    "pix2pix_edges2fashion": (32, 32, 1),  # garments and edge maps padded to 32x32
    "superres_fashion_mnist": (28, 28, 1),  # x4: inputs made from the targets in the step
    "inpaint_fashion_mnist": (32, 32, 1),  # garments padded to 32x32, centre holes
    "biggan_folder": (64, 64, 3),  # a folder at the default preset's 64 px: random pixels
}


def image_shape(name: str, config) -> tuple[int, int, int]:
  """The images experiment `name` (EXPERIMENT or EXPERIMENT:PRESET) is measured
  at: a folder experiment's follow its config (data.image_size,
  data.channels), the others' are their dataset's (EXPERIMENTS)."""
  if config.data.name == "folder":
    return (config.data.image_size, config.data.image_size, config.data.channels)
  return EXPERIMENTS[name.partition(":")[0]]


def print_report(report: dict, output: str = "") -> None:
  """Prints `report` as indented JSON, and writes the same text to `output` when given."""
  text = json.dumps(report, indent=2)
  print(text)
  if output:
    with open(output, "w") as out:
      out.write(text + "\n")


def timed_windows(run_once, items_per_call: int, windows: int, window_seconds: float) -> dict:
  """Median and spread of items/s over `windows` windows of repeated calls.

  `run_once()` must block until its work is done. One warm-up call first.
  """
  run_once()
  rates = []
  for _ in range(windows):
    calls, start = 0, time.perf_counter()
    while True:
      run_once()
      calls += 1
      elapsed = time.perf_counter() - start
      if elapsed >= window_seconds:
        break
    rates.append(calls * items_per_call / elapsed)
  return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def peak_rss_mb() -> float:
  """This process's peak resident memory in MiB: /proc's VmHWM where there is
  one (getrusage's ru_maxrss keeps the parent's peak across fork and exec)."""
  try:
    with open("/proc/self/status") as status:
      for line in status:
        if line.startswith("VmHWM:"):
          return round(int(line.split()[1]) / 1024, 1)
  except OSError:
    pass
  import resource

  scale = 2**20 if sys.platform == "darwin" else 2**10  # bytes on macOS, KiB elsewhere
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, 1)


def run_child(args: list[str], module: str, timeout: float | None = None) -> dict:
  """Runs `module` with `args` in a fresh process; returns the JSON of its
  last line, or {'error': ...} (also when it runs past `timeout` seconds)."""
  try:
    proc = subprocess.run([sys.executable, "-m", module, *args],
                          capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return {"error": f"stopped after {timeout:.0f} s, the time left to it"}
  if proc.returncode != 0:
    return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else
            f"exit status {proc.returncode}"}
  try:
    return json.loads(proc.stdout.strip().splitlines()[-1])
  except (IndexError, json.JSONDecodeError):
    return {"error": f"no JSON on the last line of its output: {proc.stdout[-200:]!r}"}


def load_config(name: str, assignments=()):
  """The config of 'experiment' or 'experiment:preset', with the KEY=VALUE
  `assignments` (--set) applied."""
  from genjax import configs

  name, _, preset = name.partition(":")
  get_config = importlib.import_module(f"experiments.{name}").get_config
  config = get_config(preset) if preset else get_config()
  return configs.apply_overrides(config, configs.parse_assignments(assignments, config))


def synthetic_count(image_shape) -> int:
  """Images per synthetic split: MNIST's 60,000 where they take at most 256 MB
  (the per-step cost of drawing a batch must not hide behind a small N),
  fewer for large images (1,365 at 256 x 256 x 3)."""
  import math

  return min(60000, 2**28 // math.prod(image_shape))


def synthetic_split(family_name: str, image_shape, n: int | None = None):
  """Random uint8 images with labels, shaped like the loop's loaded split,
  `synthetic_count` of them unless n is given."""
  import numpy as np

  from genjax import data
  from genjax.data import unpaired

  rng = np.random.default_rng(0)
  n = synthetic_count(image_shape) if n is None else n

  def images():
    return data.ArrayDataset(rng.integers(0, 256, (n, *image_shape), np.uint8),
                             rng.integers(0, 10, (n,)), 10, "random pixels")

  if family_name in ("cyclegan", "pix2pix"):  # two domains (pix2pix's aligned by index)
    return unpaired.UnpairedDataset(images(), images(), paired=family_name == "pix2pix",
                                    source="random pixels")
  return images()
