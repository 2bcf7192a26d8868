"""Speed of the progressive GAN's 32x32-phase step: genjax against PyTorch.

  python -m benchmarks.progan --output=benchmarks/results/progan_cpu.json

Prints one JSON object: images/s (median, min and max over --windows timed
windows of at least --window_seconds, after a warm-up call) of

  genjax    the loop's own compiled call (`calls.make_train_call`) of the
            default experiment (progan_fashion_mnist) with its step placed in
            the 32x32 phase, one step per call, compile seconds and XLA's
            FLOP count of a step;
  pytorch   the same step written in PyTorch (benchmarks/twins.py's
            progan twin, on the CPU): the same generator and discriminator
            (equalised learning rate, pixel norm, minibatch stddev, the
            fade-in blend), the same batch, WGAN-GP with the drift term,
            Adam(1e-3, 0, 0.99), one generator forward pass, the
            generator's loss through the updated discriminator and the EMA
            of its weights;

and `genjax_over_pytorch_best`, against the faster of PyTorch with one
thread and with one per core (its default): on a machine shared with other
work, PyTorch's spinning OpenMP threads can run its step many times slower
with two threads than with one. Each measurement runs in its own process,
one after the other; JAX uses every core. The step's
cost does not depend on pixel values: both train on random images. Compare
ratios taken within one run; the machine's load moves both.
"""

import json
import os
import sys

from absl import app, flags

from benchmarks import common, twins
from genjax import runtime


def _define_flags():
  flags.DEFINE_integer("windows", 5, "Timed windows per measurement; the median is reported.")
  flags.DEFINE_float("window_seconds", 5.0, "Least duration of one timed window.")
  flags.DEFINE_boolean("pytorch", True, "Measure PyTorch too, when torch is installed.")
  flags.DEFINE_string("output", "", "Also write the JSON here.")
  flags.DEFINE_string("one", "", "Internal: measure 'genjax' or 'pytorch' in this process.")
  flags.DEFINE_string("preset", "", "A preset of progan_fashion_mnist to measure (default: none).")
  flags.DEFINE_integer("torch_threads", 0,
                       "Internal: PyTorch's intra-op threads for --one=pytorch.")


IMAGE_SHAPE = (28, 28, 1)


def _config():
  from experiments import progan_fashion_mnist

  config = progan_fashion_mnist.get_config(flags.FLAGS.preset or None)
  config.steps_per_call = 1
  return config


def measure_genjax(windows: int, window_seconds: float) -> dict:
  import time

  import jax
  import jax.numpy as jnp

  from genjax import models, parallel
  from genjax.train import calls
  from genjax.models.progan import step as progan

  config = _config()
  family = models.get(config.family)
  mesh = parallel.make_mesh()
  dataset = family.to_device(common.synthetic_split(config.family, IMAGE_SHAPE), mesh)
  init_key, train_key, data_key = jax.random.split(jax.random.key(0), 3)
  state = jax.jit(lambda k: family.create_state(config, k, IMAGE_SHAPE, 10),
                  out_shardings=parallel.replicated(mesh))(init_key)
  sched = progan.schedule(config, IMAGE_SHAPE[0])
  state = state.replace(step=jnp.asarray(sched.last_start, jnp.int32))  # 32x32, alpha = 1
  call = calls.make_train_call(family, config, mesh, 1)
  start = time.perf_counter()
  compiled = call.lower(state, dataset, train_key, data_key).compile()
  compile_seconds = time.perf_counter() - start
  flops = compiled.cost_analysis().get("flops", 0.0)
  holder = [state]

  def run_once():
    holder[0], metrics = compiled(holder[0], dataset, train_key, data_key)
    jax.block_until_ready(metrics)

  rate = common.timed_windows(run_once, config.batch_size, windows, window_seconds)
  resolution = float(jax.device_get(call(holder[0], dataset, train_key, data_key)[1])
                     ["resolution"][0])
  return {"jax_version": jax.__version__, "device_kind": jax.devices()[0].device_kind,
          "batch_size": config.batch_size, "resolution": resolution,
          "compile_seconds_all_phases": round(compile_seconds, 1),
          "gflop_per_step_all_branches": round(flops / 1e9, 2),
          "images_per_sec": {k: round(v, 1) for k, v in rate.items()}}


def measure_pytorch(windows: int, window_seconds: float, threads: int) -> dict:
  """The progan twin's step (benchmarks/twins.py) on the CPU with `threads`
  intra-op threads: the report compares thread counts."""
  import torch

  config = _config()
  torch.set_num_threads(threads)
  step, nets, b, _ = twins.make_step(config, IMAGE_SHAPE, "nchw", num_images=60000,
                                     device="cpu")
  rate = common.timed_windows(step, b, windows, window_seconds)
  return {"torch_version": torch.__version__, "threads": torch.get_num_threads(),
          "batch_size": b, "resolution": 4 * 2 ** (nets["generator"].levels - 1),
          "images_per_sec": {k: round(v, 1) for k, v in rate.items()}}


def _run_child(args: list[str]) -> dict:
  return common.run_child(args, "benchmarks.progan")


def main(argv):
  del argv
  f = flags.FLAGS
  runtime.configure()  # here and, through XLA_FLAGS, in the children
  if f.one == "genjax":
    print(json.dumps(measure_genjax(f.windows, f.window_seconds)))
    return
  if f.one == "pytorch":
    print(json.dumps(measure_pytorch(f.windows, f.window_seconds, f.torch_threads)))
    return
  args = [f"--windows={f.windows}", f"--window_seconds={f.window_seconds}",
          *([f"--preset={f.preset}"] if f.preset else [])]
  report = {"cpu_count": os.cpu_count(), "experiment": "progan_fashion_mnist"
            + (f":{f.preset}" if f.preset else ""), "phase": "32x32, alpha = 1"}
  print("Measuring genjax...", file=sys.stderr)
  report["genjax"] = _run_child(["--one=genjax", *args])
  if f.pytorch:
    import importlib.util  # pylint: disable=g-import-not-at-top

    if importlib.util.find_spec("torch") is None:
      report["pytorch"] = {"not_measured": "torch is not installed; pip install -e '.[bench]'."}
    else:
      report["pytorch"] = {}
      for threads in sorted({1, os.cpu_count()}):
        print(f"Measuring PyTorch, {threads} thread(s)...", file=sys.stderr)
        report["pytorch"][f"threads_{threads}"] = _run_child(
            ["--one=pytorch", f"--torch_threads={threads}", *args])
      rates = [r["images_per_sec"]["median"] for r in report["pytorch"].values()
               if "images_per_sec" in r]
      if rates and "images_per_sec" in report["genjax"]:
        report["genjax_over_pytorch_best"] = round(
            report["genjax"]["images_per_sec"]["median"] / max(rates), 3)
  common.print_report(report, f.output)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
