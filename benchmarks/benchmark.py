"""Train-step speed of each family's default config: `python -m benchmarks.benchmark`.

Prints one JSON object (and writes it to --output when given):

  matmul_peak_gflops   float32 matrix-multiply throughput measured in this run
                       (best 1 s window of 4096^3 products, measured before
                       and after the experiments; the higher): the yardstick
  <experiment>, or <experiment>@<batch> under --batches=realistic|tiny: {
    batch_size
    data               for an experiment on a folder: that both sides train on
                       random images of its shape, no folder being read
    <precision>: {       for each --precision (float32, bfloat16)
      genjax: {
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
        profile            with --profile: where the best k's call spends its
                           time, from a profiler trace of a few calls:
                           op_ms_per_step (the compiled program's operations,
                           summed; they may run at once, and tracing slows
                           them, so it can exceed step_seconds: the shares are
                           of operation time), share {matmul (dots,
                           convolutions and the fusions holding them), fusion
                           (elementwise work and reductions), copy, other} and
                           top_ops
        peak_rss_mb        peak resident memory of the process (each
                           measurement runs in its own process)
        peak_device_mb     peak accelerator memory (memory_stats()'s
                           peak_bytes_in_use, with XLA's preallocation off),
                           or null and peak_device_mb_why_none
      }
      pytorch            {form: the PyTorch twin's figures, with its
                         peak_device_mb (torch.cuda.max_memory_allocated)} for
                         each form of benchmarks/twins.py that applies (nchw,
                         channels_last, compile, compile_channels_last,
                         reduce_overhead), each in its own process, the step
                         under bfloat16 autocast in the bfloat16 entry: the same
                         networks, batch, loss and optimiser; {'unavailable':
                         why} for a form this device cannot run, {'error': ...}
                         for one that failed
      genjax_best, pytorch_best_form, pytorch_best, genjax_over_pytorch_best
                         genjax's best images/s (over k), the fastest twin
                         form, its images/s, and the ratio, in this precision
    }
    best: {genjax: {precision, images_per_sec}, pytorch: {precision, form,
           images_per_sec}, genjax_over_pytorch_best}: each side's best
           over precisions and forms
  }
  device_kind, device_count, backend, cpu_count, xla_preallocate
  config_overrides     the --set KEY=VALUE items, where any were given
  settings             batches, precisions, repeats and the timing flags

With --repeats=N every measurement runs N times, the list of measurements
gone through in turn N times (genjax and the twins alternate); an entry's
images_per_sec is then the median of its runs' medians and the min and max
over all their windows, and repeat_medians lists the runs' medians.

--batches: cpu (each config's own batch), realistic (REALISTIC_BATCHES:
batches an accelerator trains with), or tiny (each experiment's `tiny`
preset at the realistic setting's shape of batches: the GPU preset's logic
in seconds on a CPU, for tests). --preset=gpu (benchmarks/gpu.sh) is the
whole GPU comparison: realistic batches, both precisions, every form, and a
time budget (--budget_seconds) after which what is left is recorded as
skipped; eager forms and genjax are measured before torch.compile's forms.

Each experiment trains on random uint8 images of its dataset's shape, on
device like the loop's data: the step's cost does not depend on pixel values.
An experiment on a folder (biggan_folder) gets random images of the shape in
benchmarks/common.py's EXPERIMENTS, and its row says so under `data`.
Measurement windows are interleaved with nothing else; run it on an idle
machine and compare ratios taken within one run.

  python -m benchmarks.benchmark                        # all, ~20 min on 2 cores
  python -m benchmarks.benchmark --experiments=gan_mnist --windows=3
  python -m benchmarks.benchmark --experiments=gan_mnist:wgan_gp   # a preset
  python -m benchmarks.benchmark --experiments=gan_mnist \
      --set=model.g_width=32 --set=model.d_width=64 --set=batch_size=64
                                                        # any config, twins too
  python -m benchmarks.benchmark --precision=float32,bfloat16 --repeats=3
  python -m benchmarks.benchmark --nopytorch            # genjax alone
  python -m benchmarks.benchmark --experiments=vae_mnist:burda_vae --nopytorch --profile
                                                        # and where the step's time goes
  benchmarks/gpu.sh                                     # on a GPU: results/gpu.json
"""

import glob
import importlib
import importlib.util
import json
import os
import re
import statistics
import sys
import time
from typing import NamedTuple

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
# --batches=realistic: the batch sizes an accelerator trains each experiment
# with (None: the config's own; the progressive GAN runs its last phase).
# A setting is a batch size, or (batch size, its own KEY=VALUE assignments):
# the BigGAN-style family in BigGAN's widths at 64 px (ch 64, attention at
# 32, as BigGAN's 64 px setting) and at 128 px (the `paper` preset itself).
REALISTIC_BATCHES = {"gan_mnist": (256,), "gan_mnist:wgan_gp": (256,), "vae_mnist": (1000,),
                     "cyclegan_horse2zebra": (1, 4), "progan_fashion_mnist": (None,),
                     "biggan_folder:paper": (
                         (256, ("data.image_size=64", "model.ch=64", "model.attention=32")),
                         (256, ("data.image_size=128",)))}
# --batches=tiny: the `tiny` presets, shaped like the realistic setting.
TINY_BATCHES = {"cyclegan_horse2zebra": (1, 2)}
GPU_PRESET = {"experiments": list(REALISTIC_BATCHES), "batches": "realistic",
              "precision": ["float32", "bfloat16"], "windows": 3, "window_seconds": 1.0,
              "budget_seconds": 450.0, "output": "benchmarks/results/gpu.json"}


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
  flags.DEFINE_list("pytorch_forms", [], "Twin forms to measure (benchmarks/twins.py's FORMS); "
                    "empty = every form that applies.")
  flags.DEFINE_list("precision", ["float32"], "Precisions to measure each side in: float32, "
                    "bfloat16 (genjax's config.precision; the twins under bfloat16 autocast).")
  flags.DEFINE_enum("batches", "cpu", ["cpu", "realistic", "tiny"],
                    "Batch sizes: each config's own (cpu), REALISTIC_BATCHES, or the tiny "
                    "presets at the realistic setting's shape (for tests).")
  flags.DEFINE_enum("preset", "", ["", "gpu"], "gpu: the whole GPU comparison (GPU_PRESET; "
                    "flags given on the command line win).")
  flags.DEFINE_integer("repeats", 1, "Go through the list of measurements this many times, "
                       "alternating; report medians over the runs.")
  flags.DEFINE_float("budget_seconds", 0.0, "Stop starting measurements after this many "
                     "seconds and record the rest as skipped (0: no budget).")
  flags.DEFINE_string("pytorch_form", "", "Internal: with --one, measure the twin in this form.")
  flags.DEFINE_string("pytorch_precision", "float32", "Internal: the twin's precision.")
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


def synthetic_setup(name: str, assignments=()):
  """Experiment `name`'s config, family, mesh, its synthetic dataset on the
  devices, keys (init, train, data) and `initial_state()`, which builds the
  train state with the networks' code as it is when called."""
  import jax

  from genjax import models, parallel

  config = load_config(name, assignments)
  shape = common.image_shape(name, config)
  family = models.get(config.family)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  dataset = family.to_device(common.synthetic_split(config.family, shape), mesh)
  init_key, train_key, data_key = jax.random.split(jax.random.key(0), 3)

  def initial_state():
    state = jax.jit(lambda k: family.create_state(config, k, shape, 10),
                    out_shardings=parallel.replicated(mesh))(init_key)
    if config.family == "progan":  # its last phase, faded in, as the twin
      import jax.numpy as jnp

      from genjax.models.progan import step as progan

      last = progan.schedule(config, shape[0]).last_start
      state = state.replace(step=jnp.asarray(last, jnp.int32))
    return state

  return config, family, mesh, dataset, (init_key, train_key, data_key), initial_state


def measure_experiment(name: str, windows: int, window_seconds: float,
                       max_steps_per_call: int = 10, assignments=(), unroll: str = "auto",
                       profile: bool = False) -> dict:
  """Compiles and times the loop's own train call for experiment `name`."""
  import jax

  from genjax.train import calls

  config, family, mesh, dataset, keys, initial_state = synthetic_setup(name, assignments)
  _, train_key, data_key = keys
  state = initial_state()
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
  result["peak_rss_mb"] = common.peak_rss_mb()
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    result["peak_device_mb"] = round(stats["peak_bytes_in_use"] / 2**20, 1)
  else:
    result["peak_device_mb"] = None
    result["peak_device_mb_why_none"] = (f"the {jax.default_backend()} backend reports no "
                                         "peak_bytes_in_use: see peak_rss_mb")
  return result


def _round(rate: float) -> float:
  """Four significant figures: 0.0714 images/s stays 0.0714, 94633.3 becomes 94630."""
  return float(f"{rate:.4g}")


def measure_twin(name: str, form: str, windows: int, window_seconds: float,
                 assignments=(), precision: str = "float32") -> dict:
  """The PyTorch twin of experiment `name` in `form` and `precision` (benchmarks/twins.py)."""
  config = load_config(name, assignments)
  shape = common.image_shape(name, config)
  return twins.measure(config, shape, form, windows, window_seconds,
                       num_images=common.synthetic_count(shape), precision=precision)


class Entry(NamedTuple):
  """One row of the report: an experiment at one batch size."""

  key: str  # the report's key: the experiment, with @batch where --batches chose one
  experiment: str  # EXPERIMENT or EXPERIMENT:PRESET
  assignments: tuple[str, ...]  # the --set items, the batch's among them


def entries(experiments, batches: str, assignments=()) -> list[Entry]:
  """The report's rows: each experiment at the batch sizes `batches` gives it."""
  out = []
  for e in experiments:
    sizes = {"cpu": {}, "realistic": REALISTIC_BATCHES, "tiny": TINY_BATCHES}[batches]
    sizes = sizes.get(e, (2,) if batches == "tiny" else (None,))
    if batches == "tiny":
      name, _, preset = e.partition(":")
      e = f"{name}:{preset},tiny" if preset else f"{name}:tiny"
    for size in sizes:
      size, own = size if isinstance(size, tuple) else (size, ())
      batch = () if size is None else (f"batch_size={size}",)
      key = e if size is None or batches == "cpu" else f"{e}@{size}"
      image_size = [a.partition("=")[2] for a in own if a.startswith("data.image_size=")]
      key += f"@{image_size[0]}px" if image_size else ""
      out.append(Entry(key, e, (*assignments, *own, *batch)))
  return out


class Job(NamedTuple):
  """One measurement in its own process: genjax's step or a twin's form."""

  entry: Entry
  precision: str
  side: str  # 'genjax' or a twin form


def jobs_for(rows: list[Entry], precisions, forms, pytorch: bool) -> list[Job]:
  """Every measurement of a pass: genjax and the eager twins first, then the
  compiled forms (slow to compile: the first to go when a budget runs out)."""
  jobs = []
  for row in rows:
    family = load_config(row.experiment, row.assignments).family
    applies = twins.forms_for(family)
    chosen = [f for f in (forms or applies) if f in applies] if pytorch else []
    for precision in precisions:
      jobs += [Job(row, precision, side) for side in ("genjax", *chosen)]
  return sorted(jobs, key=lambda j: j.side != "genjax" and bool(twins.FORMS[j.side].compile_mode))


def job_args(job: Job, f) -> list[str]:
  """The child's command line of `job`."""
  sets = [*(f"--set={a}" for a in job.entry.assignments)]
  timing = [f"--windows={f.windows}", f"--window_seconds={f.window_seconds}"]
  if job.side == "genjax":
    if job.precision != "float32":
      sets.append(f"--set=precision={job.precision}")
    return [f"--one={job.entry.experiment}", f"--max_steps_per_call={f.max_steps_per_call}",
            f"--unroll={f.unroll}", f"--profile={f.profile}", *timing, *sets]
  return [f"--one={job.entry.experiment}", f"--pytorch_form={job.side}",
          f"--pytorch_precision={job.precision}", *timing, *sets]


def combine_runs(runs: list[dict]) -> dict:
  """One measurement's result over its repeats: the first run's figures, its
  images/s the median of the runs' medians and the range of all windows.
  Where some runs were not measured (skipped, failed), the first measured
  run, with the others under runs_not_measured."""
  measured = [r for r in runs if "images_per_sec" in r]
  if len(measured) < len(runs):  # a run skipped by the budget, or one that failed
    others = [r for r in runs if "images_per_sec" not in r]
    return (measured or others)[0] | ({"runs_not_measured": others} if measured else {})
  if len(runs) == 1:
    return runs[0]

  def rates(get):
    return {"median": _round(statistics.median(get(r)["median"] for r in runs)),
            "min": min(get(r)["min"] for r in runs), "max": max(get(r)["max"] for r in runs)}

  out = dict(runs[0])
  if "median" in runs[0]["images_per_sec"]:  # a twin's
    out["images_per_sec"] = rates(lambda r: r["images_per_sec"])
    out["repeat_medians"] = [r["images_per_sec"]["median"] for r in runs]
    out["step_seconds"] = round(out["images_per_step"] / out["images_per_sec"]["median"], 5)
  else:  # genjax's, per k
    out["images_per_sec"] = {k: rates(lambda r, k=k: r["images_per_sec"][k])
                             for k in runs[0]["images_per_sec"]}
    out["repeat_medians"] = {k: [r["images_per_sec"][k]["median"] for r in runs]
                             for k in runs[0]["images_per_sec"]}
  return out


def _best_rate(result: dict) -> float | None:
  """A result's images/s: the median (a twin's) or the best k's median (genjax's)."""
  rates = result.get("images_per_sec")
  if not rates:
    return None
  return rates["median"] if "median" in rates else max(v["median"] for v in rates.values())


def compare(side: dict) -> dict:
  """One precision's genjax_best, pytorch_best_form, pytorch_best and ratio,
  and each twin form's genjax_over_this."""
  ours = _best_rate(side.get("genjax", {}))
  theirs = {f: _best_rate(r) for f, r in side.get("pytorch", {}).items()}
  theirs = {f: v for f, v in theirs.items() if v}
  out = {"genjax_best": ours}
  if theirs:
    best = max(theirs, key=theirs.get)
    out |= {"pytorch_best_form": best, "pytorch_best": theirs[best]}
    if ours:
      out["genjax_over_pytorch_best"] = round(ours / theirs[best], 3)
      for f, v in theirs.items():
        side["pytorch"][f]["genjax_over_this"] = round(ours / v, 3)
  return out


def overall_best(row: dict, precisions) -> dict:
  """Each side's best over precisions and forms, and genjax's over PyTorch's."""
  out = {}
  ours = [(row[p]["genjax_best"], p) for p in precisions if row[p].get("genjax_best")]
  theirs = [(row[p]["pytorch_best"], p, row[p]["pytorch_best_form"]) for p in precisions
            if row[p].get("pytorch_best")]
  if ours:
    rate, p = max(ours)
    out["genjax"] = {"precision": p, "images_per_sec": rate}
  if theirs:
    rate, p, form = max(theirs)
    out["pytorch"] = {"precision": p, "form": form, "images_per_sec": rate}
  if ours and theirs:
    out["genjax_over_pytorch_best"] = round(max(ours)[0] / max(theirs)[0], 3)
  return out


def run_jobs(jobs: list[Job], f, device: str, started: float) -> dict:
  """{job: its combined result}: the jobs gone through --repeats times in
  turn, each in its own process, within --budget_seconds of `started`."""
  runs = {job: [] for job in jobs}
  for repeat in range(f.repeats):
    for job in jobs:
      left = f.budget_seconds - (time.perf_counter() - started) if f.budget_seconds else None
      if job.side != "genjax" and twins.unavailable(job.side, device):
        runs[job][:1] = [{"unavailable": twins.unavailable(job.side, device)}]
        continue
      if left is not None and left <= 0:
        runs[job].append({"skipped": f"the --budget_seconds={f.budget_seconds:g} were spent"})
        continue
      what = "genjax" if job.side == "genjax" else f"its PyTorch twin, {job.side}"
      print(f"Measuring {job.entry.key} ({job.precision}), {what}"
            + (f", run {repeat + 1} of {f.repeats}" if f.repeats > 1 else "") + "...",
            file=sys.stderr)
      runs[job].append(common.run_child(job_args(job, f), "benchmarks.benchmark", left))
  return {job: combine_runs(r) for job, r in runs.items()}


def _apply_preset(f) -> None:
  """--preset: its values for the flags not given on the command line."""
  if f.preset == "gpu":
    for name, value in GPU_PRESET.items():
      if not f[name].present:
        setattr(f, name, value)


def _check_flags(f) -> None:
  """One-line UsageErrors naming a bad flag value and the choices."""
  bad_forms = [x for x in f.pytorch_forms if x not in twins.FORMS]
  if bad_forms:
    raise app.UsageError(f"--pytorch_forms: unknown {bad_forms}; choose from "
                         f"{list(twins.FORMS)}.")
  bad = [p for p in f.precision if p not in twins.PRECISIONS]
  if bad or not f.precision:
    raise app.UsageError(f"--precision: unknown {bad}; choose from {list(twins.PRECISIONS)}.")
  if f.repeats < 1:
    raise app.UsageError(f"--repeats={f.repeats}: give 1 or more.")
  if f.batches != "cpu" and any(a.startswith("batch_size=") for a in f.set):
    raise app.UsageError(f"--batches={f.batches} chooses the batch sizes; drop "
                         f"--set={[a for a in f.set if a.startswith('batch_size=')][0]} "
                         "or use --batches=cpu.")
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


def main(argv):
  del argv
  f = flags.FLAGS
  runtime.configure()  # in this process and, through XLA_FLAGS, in every child
  # Peak device memory is the program's own, not the allocator's preallocated pool.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  if f.pipeline:
    if f.set:
      raise app.UsageError(f"--set {list(f.set)}: the --pipeline measurement has its own "
                           "fixed config; drop --set, or measure --experiments instead.")
    common.print_report(pipeline.measure(f.windows, f.window_seconds), f.output)
    return
  if f.one and f.pytorch_form:
    print(json.dumps(measure_twin(f.one, f.pytorch_form, f.windows, f.window_seconds, f.set,
                                  f.pytorch_precision)))
    return
  if f.one:
    print(json.dumps(measure_experiment(f.one, f.windows, f.window_seconds,
                                        f.max_steps_per_call, f.set, f.unroll, f.profile)))
    return

  _apply_preset(f)
  _check_flags(f)
  started = time.perf_counter()
  import jax

  report = {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "cpu_count": os.cpu_count(),
            "xla_preallocate": os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"]}
  if f.set:
    report["config_overrides"] = list(f.set)
  report["settings"] = {"batches": f.batches, "precision": list(f.precision),
                        "repeats": f.repeats, "windows": f.windows,
                        "window_seconds": f.window_seconds, "preset": f.preset,
                        "budget_seconds": f.budget_seconds}
  pytorch, device = f.pytorch, "cpu"
  if f.pytorch and importlib.util.find_spec("torch") is None:
    report["pytorch"] = "not measured: torch is not installed; pip install -e '.[bench]'."
    pytorch = False
  elif f.pytorch:
    device = twins.default_device()
  print(f"Measuring the matmul peak on {report['device_count']} x {report['device_kind']}...",
        file=sys.stderr)
  first_peak = matmul_peak_gflops(f.windows)
  rows = entries(f.experiments, f.batches, f.set)
  results = run_jobs(jobs_for(rows, f.precision, f.pytorch_forms, pytorch), f, device, started)
  # Measured before and after the experiments; the higher is the yardstick.
  peaks = [first_peak, matmul_peak_gflops(f.windows)]
  report["matmul_peak_gflops"] = round(max(peaks), 1)
  report["matmul_peak_gflops_before_after"] = [round(p, 1) for p in peaks]
  for row in rows:
    config = load_config(row.experiment, row.assignments)
    out = report[row.key] = {"experiment": row.experiment, "batch_size": config.batch_size}
    if config.data.name == "folder":  # say so where the experiment would read a folder
      shape = list(common.image_shape(row.experiment, config))
      out["data"] = (f"random uint8 images of shape {shape} in memory for genjax and the "
                     "PyTorch twin alike; no folder is read")
    for precision in f.precision:
      side = {"genjax": results[Job(row, precision, "genjax")], "pytorch": {
          job.side: r for job, r in results.items()
          if job.entry == row and job.precision == precision and job.side != "genjax"}}
      if not pytorch:
        del side["pytorch"]
      ours = side["genjax"]
      if "achieved_gflops" in ours:
        ours["fraction_of_matmul_peak"] = round(
            ours["achieved_gflops"] / report["matmul_peak_gflops"], 3)
      out[precision] = side | compare(side)
    out["best"] = overall_best(out, f.precision)
  report["wall_seconds"] = round(time.perf_counter() - started, 1)
  common.print_report(report, f.output)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
