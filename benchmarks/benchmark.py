"""Train-step speed of each family's default config: `python -m benchmarks.benchmark`.

Prints one JSON object (and writes it to --output when given):

  matmul_peak_gflops   float32 matrix-multiply throughput measured in this run
                       (best 1 s window of 4096^3 products, measured before
                       and after the experiments; the higher): the yardstick
  <experiment>: {
    images_per_sec     {k: median, min and max images/s over --windows timed
                       windows}, for k = 1 and k = the config's
                       steps_per_call train steps per compiled call (at most
                       --max_steps_per_call); each window runs calls for at
                       least --window_seconds after a warm-up call
    compile_seconds    {k: seconds to lower and compile the k-step call}
    unrolled           whether the k steps were unrolled or in a rolled scan
                       (--unroll; by default as the loop runs them)
    gflop_per_step     XLA's count of the step's floating-point operations
    fraction_of_matmul_peak   achieved FLOP/s at the best k over the peak
    profile            with --profile: where the best k's call spends its time,
                       from a profiler trace of a few calls: op_ms_per_step
                       (the compiled program's operations, summed; they may
                       run at once, and tracing slows them, so it can exceed
                       step_seconds: the shares are of operation time), share
                       {matmul (dots, convolutions and the fusions holding
                       them), fusion (elementwise work and reductions),
                       copy, other} and top_ops
    peak_rss_mb        peak resident memory of the process (each experiment
                       runs in its own process)
    peak_device_mb     peak accelerator memory, where the backend reports it
    pytorch            {form: the PyTorch twin's figures} for each form of
                       benchmarks/twins.py (nchw, channels_last,
                       torch.compile), each in its own process: the same
                       networks, batch, loss and optimiser; or why not
    pytorch_best_form, genjax_over_pytorch_best
                       the fastest form, and genjax's best images/s over its
  }
  device_kind, device_count, backend
  config_overrides     the --set KEY=VALUE items, where any were given

Each experiment trains on random uint8 images of its dataset's shape, on
device like the loop's data: the step's cost does not depend on pixel values.
Measurement windows are interleaved with nothing else; run it on an idle
machine and compare ratios taken within one run.

  python -m benchmarks.benchmark                        # all, ~20 min on 2 cores
  python -m benchmarks.benchmark --experiments=gan_mnist --windows=3
  python -m benchmarks.benchmark --experiments=gan_mnist:wgan_gp   # a preset
  python -m benchmarks.benchmark --experiments=gan_mnist \
      --set=model.g_width=32 --set=model.d_width=64 --set=batch_size=64
                                                        # any config, twins too
  python -m benchmarks.benchmark --nopytorch            # genjax alone
  python -m benchmarks.benchmark --experiments=vae_mnist:burda_vae --nopytorch --profile
                                                        # and where the step's time goes
"""

import glob
import importlib
import importlib.util
import json
import os
import re
import resource
import sys
import time

from absl import app, flags

from benchmarks import common, pipeline, twins
from benchmarks.common import EXPERIMENTS, load_config
from genjax import runtime

# On CPU, at most this many steps per call for an experiment (else
# --max_steps_per_call): a 256 px CycleGAN step takes seconds there, and a
# call's steps are unrolled, so more would add compile time and nothing else.
MAX_STEPS_PER_CALL = {"cyclegan_horse2zebra": 1}
DEFAULT_EXPERIMENTS = ["gan_mnist", "gan_mnist:wgan_gp", "vae_mnist", "cyclegan_edges2fashion",
                       "cyclegan_horse2zebra"]


def _define_flags():
  flags.DEFINE_list("experiments", DEFAULT_EXPERIMENTS,
                    "Experiments to measure; EXPERIMENT:PRESET measures one of its presets.")
  flags.DEFINE_multi_string("set", [], "KEY=VALUE: a config override applied to every "
                            "measured experiment and its PyTorch twins (repeat the flag).")
  flags.DEFINE_integer("windows", 5, "Timed windows per measurement; the median is reported.")
  flags.DEFINE_float("window_seconds", 3.0, "Least duration of one timed window.")
  flags.DEFINE_integer("max_steps_per_call", 10,
                       "Measure k = min(steps_per_call, this): a 256 px call of 100 steps "
                       "would take minutes.")
  flags.DEFINE_enum("unroll", "auto", ["auto", "on", "off"],
                    "The k steps of a call unrolled (on) or in a rolled scan (off); auto: as "
                    "the loop runs them (parallel.unroll_steps).")
  flags.DEFINE_boolean("pytorch", True, "Measure each experiment's PyTorch twin too, when "
                       "torch is installed.")
  flags.DEFINE_list("pytorch_forms", [], "Twin forms to measure (nchw, channels_last, "
                    "compile); empty = every form that applies.")
  flags.DEFINE_string("pytorch_form", "", "Internal: with --one, measure the twin in this form.")
  flags.DEFINE_boolean("profile", False, "Also trace a few calls and report each kind of "
                       "operation's share of the step (matrix products, fusions, copies).")
  flags.DEFINE_string("output", "", "Also write the JSON here.")
  flags.DEFINE_boolean("pipeline", False, "Measure the input pipeline instead "
                       "(benchmarks/pipeline.py): folder and prepared-dataset "
                       "reading, and a 64x64 GAN streamed against the device path.")
  flags.DEFINE_string("one", "", "Internal: measure this one experiment in this process.")


def matmul_peak_gflops(windows: int, n: int = 4096) -> float:
  """Best-window float32 GFLOP/s of an n x n x n matrix product, jitted.

  A peak, so the best of the windows (each at least 1 s), not the median.
  """
  import jax
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  product = jax.jit(lambda a, b: a @ b)
  rate = common.timed_windows(lambda: product(a, b).block_until_ready(), 1, windows, 1.0)
  return rate["max"] * 2 * n**3 / 1e9


_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.-]+)\s*=\s*.*?\s([a-z][a-z0-9-]*)\(")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.-]+)\s.*\{\s*$")
_CALLS = re.compile(r"calls=%?([\w.-]+)")
_KINDS = {"dot": "matmul", "convolution": "matmul", "fusion": "fusion", "copy": "copy"}
_CONTAINERS = ("while", "call", "conditional")  # their events span the operations inside


def instruction_kinds(hlo_text: str) -> dict[str, tuple[str, str]]:
  """{instruction: (opcode, kind)} of an optimised HLO module's text; kind is
  matmul for dots, convolutions and fusions holding one (as the CPU's
  library fusions do), fusion, copy or other."""
  opcodes, calls, body_opcodes, computation = {}, {}, {}, None
  for line in hlo_text.splitlines():
    header = _COMPUTATION.match(line)
    if header and "=" not in line.split("{")[0]:
      computation = header.group(1)
      continue
    match = _INSTRUCTION.match(line)
    if match:
      opcodes[match.group(1)] = match.group(2)
      body_opcodes.setdefault(computation, set()).add(match.group(2))
      called = _CALLS.search(line)
      if called:
        calls[match.group(1)] = called.group(1)
  kinds = {}
  for name, opcode in opcodes.items():
    kind = _KINDS.get(opcode, "other")
    if opcode == "fusion" and body_opcodes.get(calls.get(name), set()) & {"dot", "convolution"}:
      kind = "matmul"
    kinds[name] = (opcode, kind)
  return kinds


def op_profile(compiled, run_once, steps_per_call: int, calls: int = 5, top: int = 8) -> dict:
  """Where a compiled call's time goes: a profiler trace of `calls` calls of
  `run_once()`, its events matched by name to the instructions of
  `compiled`'s optimised HLO and summed per instruction, per step."""
  import gzip
  import tempfile

  import jax

  kinds = instruction_kinds(compiled.as_text())
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      for _ in range(calls):
        run_once()
    paths = glob.glob(os.path.join(tmp, "**", "perfetto_trace.json.gz"), recursive=True)
    if not paths:
      return {"error": "the profiler wrote no perfetto trace"}
    with gzip.open(paths[0]) as trace:
      events = json.load(trace)
  events = events["traceEvents"] if isinstance(events, dict) else events
  micros = {}
  for e in events:
    name = e.get("name", "")
    if e.get("ph") == "X" and name in kinds and kinds[name][0] not in _CONTAINERS:
      micros[name] = micros.get(name, 0.0) + e.get("dur", 0.0)
  if not micros:
    return {"error": "no trace event names an instruction of the compiled call"}
  steps = calls * steps_per_call
  total = sum(micros.values())
  share = {kind: 0.0 for kind in ("matmul", "fusion", "copy", "other")}
  for name, us in micros.items():
    share[kinds[name][1]] += us / total
  ranked = sorted(micros.items(), key=lambda item: -item[1])[:top]
  return {"calls": calls, "op_ms_per_step": round(total / steps / 1e3, 4),
          "share": {kind: round(v, 3) for kind, v in share.items()},
          "top_ops": [{"op": name, "kind": kinds[name][1], "us_per_step": round(us / steps, 1)}
                      for name, us in ranked]}


def measure_experiment(name: str, windows: int, window_seconds: float,
                       max_steps_per_call: int = 10, assignments=(), unroll: str = "auto",
                       profile: bool = False) -> dict:
  """Compiles and times the loop's own train call for experiment `name`."""
  import jax

  from genjax import models, parallel
  from genjax.train import calls

  config = load_config(name, assignments)
  name = name.partition(":")[0]
  family = models.get(config.family)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  split = common.synthetic_split(config.family, EXPERIMENTS[name])
  dataset = family.to_device(split, mesh)
  init_key, train_key, data_key = jax.random.split(jax.random.key(0), 3)
  state = jax.jit(lambda k: family.create_state(config, k, EXPERIMENTS[name], 10),
                  out_shardings=parallel.replicated(mesh))(init_key)
  images_per_step = config.batch_size * family.batches_per_step(config)

  unrolled = calls.steps_unrolled(family, config, mesh) if unroll == "auto" else unroll == "on"
  result = {"batch_size": config.batch_size, "images_per_step": images_per_step,
            "unrolled": unrolled, "images_per_sec": {}, "compile_seconds": {}}
  best_rate = 0.0
  if unrolled:
    max_steps_per_call = min(max_steps_per_call, MAX_STEPS_PER_CALL.get(name, max_steps_per_call))
  holder = [state]  # the live state: each call donates the one before

  def runner(compiled):
    def run_once():
      holder[0], metrics = compiled(holder[0], dataset, train_key, data_key)
      jax.block_until_ready(metrics)
    return run_once

  for k in sorted({1, min(config.steps_per_call, max_steps_per_call)}):
    call = calls.make_train_call(family, config, mesh, k, unroll=unrolled)
    start = time.perf_counter()
    compiled = call.lower(holder[0], dataset, train_key, data_key).compile()
    result["compile_seconds"][str(k)] = round(time.perf_counter() - start, 2)
    if k == 1:
      flops = compiled.cost_analysis().get("flops", 0.0)
      result["gflop_per_step"] = round(flops / 1e9, 3)
    run_once = runner(compiled)  # bound to this k's program, for the profile after the loop
    rate = common.timed_windows(run_once, k * images_per_step, windows, window_seconds)
    result["images_per_sec"][str(k)] = {key: _round(v) for key, v in rate.items()}
    if rate["median"] > best_rate:
      best_rate, best_call = rate["median"], (compiled, run_once, k)
  if profile:
    result["profile"] = op_profile(*best_call)
  result["step_seconds"] = _round(images_per_step / best_rate)
  result["achieved_gflops"] = round(result["gflop_per_step"] * best_rate / images_per_step, 1)
  result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    result["peak_device_mb"] = round(stats["peak_bytes_in_use"] / 2**20, 1)
  return result


def _round(rate: float) -> float:
  """Four significant figures: 0.0714 images/s stays 0.0714, 94633.3 becomes 94630."""
  return float(f"{rate:.4g}")


def _run_child(args: list[str]) -> dict:
  """This module with `args` in a fresh process (common.run_child)."""
  return common.run_child(args, "benchmarks.benchmark")


def measure_twin(name: str, form: str, windows: int, window_seconds: float,
                 assignments=()) -> dict:
  """The PyTorch twin of experiment `name` in `form` (benchmarks/twins.py)."""
  shape = EXPERIMENTS[name.partition(":")[0]]
  config = load_config(name, assignments)
  return twins.measure(config, shape, form, windows, window_seconds,
                       num_images=common.synthetic_count(shape))


def compare_twins(name: str, ours: dict, forms: list[str], timing: list[str]) -> dict:
  """Runs each form of `name`'s twin in its own process; returns the report's
  pytorch, pytorch_best_form and genjax_over_pytorch_best entries."""
  family = load_config(name).family
  forms = [f for f in (forms or twins.forms_for(family)) if f in twins.forms_for(family)]
  results = {}
  for form in forms:
    print(f"Measuring {name}'s PyTorch twin, {form}...", file=sys.stderr)
    results[form] = _run_child([f"--one={name}", f"--pytorch_form={form}", *timing])
  out = {"pytorch": results}
  rates = {f: r["images_per_sec"]["median"] for f, r in results.items() if "images_per_sec" in r}
  if rates and ours.get("images_per_sec"):
    best_form = max(rates, key=rates.get)
    best = max(v["median"] for v in ours["images_per_sec"].values())
    out["pytorch_best_form"] = best_form
    out["genjax_over_pytorch_best"] = round(best / rates[best_form], 3)
    for f, rate in rates.items():
      results[f]["genjax_over_this"] = round(best / rate, 3)
  return out


def main(argv):
  del argv
  f = flags.FLAGS
  runtime.configure()  # in this process and, through XLA_FLAGS, in every child
  timing = [f"--windows={f.windows}", f"--window_seconds={f.window_seconds}",
            *(f"--set={a}" for a in f.set)]
  if f.pipeline:
    if f.set:
      raise app.UsageError(f"--set {list(f.set)}: the --pipeline measurement has its own "
                           "fixed config; drop --set, or measure --experiments instead.")
    common.print_report(pipeline.measure(f.windows, f.window_seconds), f.output)
    return
  if f.one and f.pytorch_form:
    print(json.dumps(measure_twin(f.one, f.pytorch_form, f.windows, f.window_seconds, f.set)))
    return
  if f.one:
    print(json.dumps(measure_experiment(f.one, f.windows, f.window_seconds,
                                        f.max_steps_per_call, f.set, f.unroll, f.profile)))
    return

  bad_forms = [x for x in f.pytorch_forms if x not in twins.FORMS]
  if bad_forms:
    raise app.UsageError(f"--pytorch_forms: unknown {bad_forms}; choose from "
                         f"{list(twins.FORMS)}.")
  unknown = [e for e in f.experiments if e.partition(":")[0] not in EXPERIMENTS]
  if unknown:
    raise app.UsageError(f"--experiments: unknown {unknown}; choose from {sorted(EXPERIMENTS)}.")
  for e in f.experiments:
    name, _, preset = e.partition(":")
    presets = getattr(importlib.import_module(f"experiments.{name}"), "PRESETS", {})
    if preset and preset not in presets:
      raise app.UsageError(f"--experiments: {name} has no preset {preset!r}; "
                           f"choose from {sorted(presets)}.")
    try:
      config = load_config(e, f.set)
    except ValueError as err:
      raise app.UsageError(f"--set: {err}") from None
    if f.set:  # the values a run would refuse, refused here rather than in a child
      from genjax import configs, models, parallel

      try:
        configs.check_common(config)
        models.get(config.family).validate_config(config)
        parallel.check_batch_size(config.batch_size, parallel.make_mesh())
      except ValueError as err:
        raise app.UsageError(f"{e}'s config with --set {list(f.set)} is invalid: {err}") from None
  import jax

  report = {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "cpu_count": os.cpu_count()}
  if f.set:
    report["config_overrides"] = list(f.set)
  print(f"Measuring the matmul peak on {report['device_count']} x {report['device_kind']}...",
        file=sys.stderr)
  first_peak = matmul_peak_gflops(f.windows)
  for name in f.experiments:
    print(f"Measuring {name}...", file=sys.stderr)
    report[name] = _run_child([f"--one={name}", f"--max_steps_per_call={f.max_steps_per_call}",
                               f"--unroll={f.unroll}", f"--profile={f.profile}", *timing])
  # Measured before and after the experiments; the higher is the yardstick.
  peaks = [first_peak, matmul_peak_gflops(f.windows)]
  report["matmul_peak_gflops"] = round(max(peaks), 1)
  report["matmul_peak_gflops_before_after"] = [round(p, 1) for p in peaks]
  for name in f.experiments:
    if "achieved_gflops" in report[name]:
      report[name]["fraction_of_matmul_peak"] = round(
          report[name]["achieved_gflops"] / report["matmul_peak_gflops"], 3)
  if f.pytorch and importlib.util.find_spec("torch") is None:
    report["pytorch"] = "not measured: torch is not installed; pip install -e '.[bench]'."
  elif f.pytorch:
    for name in f.experiments:
      report[name].update(compare_twins(name, report[name], f.pytorch_forms, timing))
  common.print_report(report, f.output)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
