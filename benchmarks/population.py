"""Speed and memory of a population against one model: `python -m benchmarks.population`.

Prints one JSON object (and writes it to --output when given): for each
population size M in --members (1 = one model, the population off), the
loop's own train call of --experiment's config with
`population.seeds=M`, on random images of its dataset's shape:

  images_per_sec       {median, min, max} over --windows timed windows of
                       all members' images together (M x batch per step)
  per_member_images_per_sec   the median over M
  speedup_over_one     aggregate images/s over that of M = 1 (same run):
                       above 1, M members cost less than M single runs
  compile_seconds, peak_rss_mb (each size in its own process)

  python -m benchmarks.population         # gan_mnist, M = 1, 3, 8, both layouts
  python -m benchmarks.population --members=1,4 --layouts=vmap --experiment=vae_mnist
"""

import json
import resource
import time

from absl import app, flags

from benchmarks import common
from genjax import runtime


def _define_flags():
  flags.DEFINE_string("experiment", "gan_mnist", "Experiment (EXPERIMENT:PRESET for a preset).")
  flags.DEFINE_list("members", ["1", "3", "8"], "Population sizes to measure.")
  flags.DEFINE_list("layouts", ["loop", "vmap"], "population.layout values to measure.")
  flags.DEFINE_integer("windows", 5, "Timed windows per size; the median is reported.")
  flags.DEFINE_float("window_seconds", 3.0, "Least duration of one timed window.")
  flags.DEFINE_string("output", "", "Also write the JSON here.")
  flags.DEFINE_integer("one", 0, "Internal: measure this population size in this process.")
  flags.DEFINE_string("layout", "auto", "Internal: its population.layout.")


def measure(name: str, num_members: int, windows: int, window_seconds: float,
            layout: str = "auto") -> dict:
  """Compiles and times the loop's train call for `num_members` members."""
  import jax

  from genjax.train import calls, population

  config = common.load_config(name)
  name = name.partition(":")[0]
  config.population.seeds = num_members
  config.population.layout = layout
  family = population.resolve(config)  # the family itself for one member
  shape = common.EXPERIMENTS[name]
  split = common.synthetic_split(config.family, shape)
  mesh = family.make_mesh(None)
  create = lambda: family.create_state(config, jax.random.key(0), shape, 10)
  sharding = family.state_sharding(mesh, jax.eval_shape(create))
  state = jax.jit(create, out_shardings=sharding)()
  dataset = family.to_device(split, mesh)
  train_key, data_key = jax.random.split(jax.random.key(1))
  k = config.steps_per_call
  call = calls.make_train_call(family, config, mesh, k, state_sharding=sharding)
  start = time.perf_counter()
  compiled = call.lower(state, dataset, train_key, data_key).compile()
  compile_seconds = time.perf_counter() - start
  holder = [state]

  def run_once():
    holder[0], metrics = compiled(holder[0], dataset, train_key, data_key)
    jax.block_until_ready(metrics)

  images = k * config.batch_size * family.batches_per_step(config) * family.num_models
  rate = common.timed_windows(run_once, images, windows, window_seconds)
  return {"members": num_members, "layout": population.choose_layout(layout, mesh)
          if num_members > 1 else "single", "images_per_sec": {n: round(v, 1) for n, v in rate.items()},
          "per_member_images_per_sec": round(rate["median"] / num_members, 1),
          "compile_seconds": round(compile_seconds, 2),
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv):
  del argv
  f = flags.FLAGS
  runtime.configure()
  timing = [f"--windows={f.windows}", f"--window_seconds={f.window_seconds}"]
  if f.one:
    print(json.dumps(measure(f.experiment, f.one, f.windows, f.window_seconds, f.layout)))
    return
  result = {"experiment": f.experiment, "sizes": []}
  sizes = [int(x) for x in f.members]
  jobs = [(m, layout) for m in sizes for layout in (["auto"] if m == 1 else f.layouts)]
  for m, layout in jobs:
    size = common.run_child([f"--experiment={f.experiment}", f"--one={m}", f"--layout={layout}",
                             *timing], "benchmarks.population")
    result["sizes"].append({"members": m, "layout": layout, "error": size["error"]}
                           if "error" in size else size)
  ok = [s for s in result["sizes"] if "error" not in s]
  base = next((s for s in ok if s["members"] == 1), None)
  if base is not None:
    for s in ok:
      s["speedup_over_one"] = round(s["images_per_sec"]["median"]
                                    / base["images_per_sec"]["median"], 2)
  import jax

  result.update(backend=jax.default_backend(), device_kind=jax.devices()[0].device_kind,
                device_count=jax.device_count())
  common.print_report(result, f.output)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
