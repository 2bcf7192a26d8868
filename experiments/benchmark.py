"""Train-step speed of each family's default config: `python -m experiments.benchmark`.

Prints one JSON object (and writes it to --output when given):

  matmul_peak_gflops   float32 matrix-multiply throughput measured in this run
                       (best 1 s window of 4096^3 products, measured before
                       and after the experiments; the higher): the yardstick
  <experiment>: {
    images_per_sec     {k: median images/s over --windows timed windows}, for
                       k = 1 and k = the config's steps_per_call train steps
                       per compiled call; each window runs calls for at least
                       --window_seconds after a warm-up call
    compile_seconds    {k: seconds to lower and compile the k-step call}
    gflop_per_step     XLA's count of the step's floating-point operations
    fraction_of_matmul_peak   achieved FLOP/s at the best k over the peak
    peak_rss_mb        peak resident memory of the process (each experiment
                       runs in its own process)
    peak_device_mb     peak accelerator memory, where the backend reports it
  }
  pytorch_dcgan        the same DCGAN (architecture, batch, loss, Adam) as
                       gan_mnist in PyTorch, images/s by the same windows,
                       and `genjax_over_pytorch`; where torch is not installed
                       (`pip install -e ".[bench]"`), the reason instead
  pytorch_vae          the same for vae_mnist's VAE (benchmark_pytorch.measure_vae)
  device_kind, device_count, backend

Each experiment trains on random uint8 images of its dataset's shape, on
device like the loop's data: the step's cost does not depend on pixel values.
Measurement windows are interleaved with nothing else; run it on an idle
machine and compare ratios taken within one run.

  python -m experiments.benchmark                       # all, ~6 min on 2 cores
  python -m experiments.benchmark --experiments=gan_mnist --windows=3
  python -m experiments.benchmark --experiments=gan_mnist:wgan_gp   # a preset
"""

import importlib
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

from genjax import runtime

EXPERIMENTS = {
    # experiment module: image shape of its default dataset
    "gan_mnist": (28, 28, 1),
    "vae_mnist": (28, 28, 1),
    "cyclegan_edges2fashion": (28, 28, 1),
}


def _define_flags():
  flags.DEFINE_list("experiments", list(EXPERIMENTS),
                    "Experiments to measure; EXPERIMENT:PRESET measures one of its presets.")
  flags.DEFINE_integer("windows", 5, "Timed windows per measurement; the median is reported.")
  flags.DEFINE_float("window_seconds", 3.0, "Least duration of one timed window.")
  flags.DEFINE_boolean("pytorch", True, "Measure the PyTorch DCGAN too, when torch is installed.")
  flags.DEFINE_string("output", "", "Also write the JSON here.")
  flags.DEFINE_boolean("pipeline", False, "Measure the input pipeline instead "
                       "(experiments/benchmark_pipeline.py): folder and prepared-dataset "
                       "reading, and a 64x64 GAN streamed against the device path.")
  flags.DEFINE_string("one", "", "Internal: measure this one experiment in this process.")


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


def matmul_peak_gflops(windows: int, n: int = 4096) -> float:
  """Best-window float32 GFLOP/s of an n x n x n matrix product, jitted.

  A peak, so the best of the windows (each at least 1 s), not the median.
  """
  import jax
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  product = jax.jit(lambda a, b: a @ b)
  rate = timed_windows(lambda: product(a, b).block_until_ready(), 1, windows, 1.0)
  return rate["max"] * 2 * n**3 / 1e9


def synthetic_split(family_name: str, image_shape, n: int = 60000):
  """Random uint8 images with labels, shaped like the loop's loaded split and
  as many as MNIST's training split (the per-step cost of drawing a batch
  must not hide behind a small N)."""
  import numpy as np

  from genjax import data
  from genjax.data import unpaired

  rng = np.random.default_rng(0)

  def images():
    return data.ArrayDataset(rng.integers(0, 256, (n, *image_shape), np.uint8),
                             rng.integers(0, 10, (n,)), 10, "random pixels")

  if family_name == "cyclegan":
    return unpaired.UnpairedDataset(images(), images(), paired=False, source="random pixels")
  return images()


def measure_experiment(name: str, windows: int, window_seconds: float) -> dict:
  """Compiles and times the loop's own train call for experiment `name`."""
  import jax

  from genjax import families, loop, parallel

  name, _, preset = name.partition(":")
  get_config = importlib.import_module(f"experiments.{name}").get_config
  config = get_config(preset) if preset else get_config()
  family = families.get(config.family)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  split = synthetic_split(config.family, EXPERIMENTS[name])
  dataset = family.to_device(split, mesh)
  init_key, train_key, data_key = jax.random.split(jax.random.key(0), 3)
  state = jax.jit(lambda k: family.create_state(config, k, EXPERIMENTS[name], 10),
                  out_shardings=parallel.replicated(mesh))(init_key)
  images_per_step = config.batch_size * family.batches_per_step(config)

  result = {"batch_size": config.batch_size, "images_per_step": images_per_step,
            "images_per_sec": {}, "compile_seconds": {}}
  best_rate = 0.0
  for k in sorted({1, config.steps_per_call}):
    call = loop.make_train_call(family, config, mesh, k)
    start = time.perf_counter()
    compiled = call.lower(state, dataset, train_key, data_key).compile()
    result["compile_seconds"][str(k)] = round(time.perf_counter() - start, 2)
    if k == 1:
      flops = compiled.cost_analysis().get("flops", 0.0)
      result["gflop_per_step"] = round(flops / 1e9, 3)
    holder = [state]

    def run_once():
      holder[0], metrics = compiled(holder[0], dataset, train_key, data_key)
      jax.block_until_ready(metrics)

    rate = timed_windows(run_once, k * images_per_step, windows, window_seconds)
    state = holder[0]
    result["images_per_sec"][str(k)] = {key: round(v, 1) for key, v in rate.items()}
    best_rate = max(best_rate, rate["median"])
  result["step_seconds"] = round(images_per_step / best_rate, 4)
  result["achieved_gflops"] = round(result["gflop_per_step"] * best_rate / images_per_step, 1)
  result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    result["peak_device_mb"] = round(stats["peak_bytes_in_use"] / 2**20, 1)
  return result


def _run_child(args: list[str]) -> dict:
  """Runs this module with `args` in a fresh process; returns its JSON."""
  proc = subprocess.run([sys.executable, "-m", "experiments.benchmark", *args],
                        capture_output=True, text=True)
  if proc.returncode != 0:
    return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else
            f"exit status {proc.returncode}"}
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare_pytorch_vae(ours: dict, timing: list[str]) -> dict:
  """The PyTorch VAE's figures and `genjax_over_pytorch`, vae_mnist's best
  images/s over PyTorch's."""
  print("Measuring the PyTorch VAE...", file=sys.stderr)
  result = _run_child(["--one=pytorch_vae", *timing])
  rates = ours.get("images_per_sec", {})
  if "images_per_sec" in result and rates:
    best = max(v["median"] for v in rates.values())
    result["genjax_over_pytorch"] = round(best / result["images_per_sec"]["median"], 3)
  return result


def main(argv):
  del argv
  f = flags.FLAGS
  runtime.configure()  # in this process and, through XLA_FLAGS, in every child
  timing = [f"--windows={f.windows}", f"--window_seconds={f.window_seconds}"]
  if f.pipeline:
    from experiments import benchmark_pipeline

    print_report(benchmark_pipeline.measure(f.windows, f.window_seconds), f.output)
    return
  if f.one == "pytorch_dcgan":
    from experiments import benchmark_pytorch

    print(json.dumps(benchmark_pytorch.measure(f.windows, f.window_seconds)))
    return
  if f.one == "pytorch_vae":
    from experiments import benchmark_pytorch

    print(json.dumps(benchmark_pytorch.measure_vae(f.windows, f.window_seconds)))
    return
  if f.one:
    print(json.dumps(measure_experiment(f.one, f.windows, f.window_seconds)))
    return

  unknown = [e for e in f.experiments if e.partition(":")[0] not in EXPERIMENTS]
  if unknown:
    raise app.UsageError(f"--experiments: unknown {unknown}; choose from {sorted(EXPERIMENTS)}.")
  for e in f.experiments:
    name, _, preset = e.partition(":")
    presets = getattr(importlib.import_module(f"experiments.{name}"), "PRESETS", {})
    if preset and preset not in presets:
      raise app.UsageError(f"--experiments: {name} has no preset {preset!r}; "
                           f"choose from {sorted(presets)}.")
  import jax

  report = {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "cpu_count": os.cpu_count()}
  print(f"Measuring the matmul peak on {report['device_count']} x {report['device_kind']}...",
        file=sys.stderr)
  first_peak = matmul_peak_gflops(f.windows)
  for name in f.experiments:
    print(f"Measuring {name}...", file=sys.stderr)
    report[name] = _run_child([f"--one={name}", *timing])
  # Measured before and after the experiments; the higher is the yardstick.
  peaks = [first_peak, matmul_peak_gflops(f.windows)]
  report["matmul_peak_gflops"] = round(max(peaks), 1)
  report["matmul_peak_gflops_before_after"] = [round(p, 1) for p in peaks]
  for name in f.experiments:
    if "achieved_gflops" in report[name]:
      report[name]["fraction_of_matmul_peak"] = round(
          report[name]["achieved_gflops"] / report["matmul_peak_gflops"], 3)
  if f.pytorch and "gan_mnist" in f.experiments and importlib.util.find_spec("torch") is None:
    report["pytorch_dcgan"] = {
        "not_measured": "torch is not installed; pip install -e '.[bench]' to compare."}
  elif f.pytorch and "gan_mnist" in f.experiments:
    print("Measuring the PyTorch DCGAN...", file=sys.stderr)
    result = _run_child(["--one=pytorch_dcgan", *timing])
    ours = report["gan_mnist"].get("images_per_sec", {})
    if "images_per_sec" in result and ours:
      best = max(v["median"] for v in ours.values())
      result["genjax_over_pytorch"] = round(best / result["images_per_sec"]["median"], 3)
    report["pytorch_dcgan"] = result
  if f.pytorch and "vae_mnist" in f.experiments and importlib.util.find_spec("torch") is not None:
    report["pytorch_vae"] = _compare_pytorch_vae(report["vae_mnist"], timing)
  print_report(report, f.output)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
