"""A change to one module, timed in the training step against the module as it was.

  python scripts/time_module_change.py --experiment=biggan_folder \\
      --module=genjax.models.biggan.networks --before=/tmp/networks_before.py

`--before` is a copy of the module's file before the change (e.g.
`git show HEAD~1:genjax/models/biggan/networks.py > /tmp/networks_before.py`).
Its code is run over the imported module's namespace to build one train
step, the module as it is now builds the other; both are compiled (one step
a call, the experiment's default config on the benchmark's synthetic data),
then timed in alternating bursts of `--burst` steps, `--rounds` pairs, in
one process: on a shared machine two processes a minute apart can differ by
a third, one burst from the next far less. Prints JSON: the median seconds
a step of each and the median and quartiles of the per-pair ratios
(before / after: above 1, the change is faster).

Only code that the step reads at trace time through the module's attributes
(classes, functions) is swapped; a change to another module's imports of it
by name (`from m import f`) is not seen.
"""

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from genjax import runtime  # noqa: E402

runtime.configure()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import benchmark  # noqa: E402
from genjax.train import calls  # noqa: E402


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--experiment", default="biggan_folder")
  parser.add_argument("--module", required=True, help="dotted name, e.g. genjax.nn.layers")
  parser.add_argument("--before", required=True, help="the module's file before the change")
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--burst", type=int, default=5)
  args = parser.parse_args()
  module = importlib.import_module(args.module)
  after = dict(module.__dict__)
  # The old code stands in for the module's file: paths it builds from
  # __file__ (weights, data beside it) resolve as the module's own.
  before = {"__name__": args.module, "__file__": module.__file__,
            "__package__": module.__package__}
  with open(args.before) as f:
    exec(compile(f.read(), args.before, "exec"), before)  # noqa: S102

  config, family, mesh, dataset, keys, initial_state = benchmark.synthetic_setup(args.experiment)
  _, train_key, data_key = keys
  programs = {}
  for side, namespace in (("before", before), ("after", after)):
    module.__dict__.update(namespace)
    state = initial_state()
    call = calls.make_train_call(family, config, mesh, 1, unroll=True)
    programs[side] = [call.lower(state, dataset, train_key, data_key).compile(), state]
  module.__dict__.update(after)

  def burst(side, steps):
    compiled, state = programs[side]
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = compiled(state, dataset, train_key, data_key)
      jax.block_until_ready(metrics)
    programs[side][1] = state
    return (time.perf_counter() - start) / steps

  for side in programs:
    burst(side, 2)  # warm-up
  seconds = {"before": [], "after": []}
  for i in range(args.rounds):
    for side in (("before", "after") if i % 2 == 0 else ("after", "before")):
      seconds[side].append(burst(side, args.burst))
  before_s, after_s = np.array(seconds["before"]), np.array(seconds["after"])
  ratios = before_s / after_s
  print(json.dumps({
      "experiment": args.experiment, "module": args.module, "rounds": args.rounds,
      "burst": args.burst,
      "seconds_per_step": {"before": round(float(np.median(before_s)), 4),
                           "after": round(float(np.median(after_s)), 4)},
      "speedup": {"median": round(float(np.median(ratios)), 3),
                  "quartiles": [round(float(np.quantile(ratios, q)), 3) for q in (0.25, 0.75)]},
  }, indent=2))


if __name__ == "__main__":
  main()
