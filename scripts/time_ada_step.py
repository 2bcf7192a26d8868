"""The cost of ADA in the GAN step: `python scripts/time_ada_step.py [--p=0.5] [--experiment=biggan_folder]`.

Times the compiled train step of `experiments.gan_folder` (the DCGAN) or
`experiments.biggan_folder` (64x64 RGB, the experiment's default networks
and batch) with `augment=none` and with `augment=ada` at a fixed p,
alternating the two after compiling both, and prints the median seconds
per step of each, their range and their ratio as JSON.
"""

import argparse
import json
import statistics
import time

from genjax import runtime

runtime.configure()

import jax  # noqa: E402

from experiments import biggan_folder, gan_folder  # noqa: E402
from genjax.models.biggan import step as biggan  # noqa: E402
from genjax.models.gan import step as gan  # noqa: E402

EXPERIMENTS = {"gan_folder": (gan_folder, gan), "biggan_folder": (biggan_folder, biggan)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--p", type=float, default=0.5, help="ADA's probability p")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), default="gan_folder")
  args = parser.parse_args()
  experiment, family = EXPERIMENTS[args.experiment]
  shape = (64, 64, 3)
  steps = {}
  for name in ("none", "ada"):
    config = experiment.get_config()
    config.augment, config.ada_p_init = name, args.p
    state = family.create_state(config, jax.random.key(0), shape)
    images = jax.random.uniform(jax.random.key(1),
                                (family.batches_per_step(config), config.batch_size, *shape),
                                minval=-1, maxval=1)
    step = jax.jit(family.make_train_step(config))
    jax.block_until_ready(step(state, {"image": images}, jax.random.key(2)))  # compile
    steps[name] = (step, state, {"image": images})
  times = {name: [] for name in steps}
  for i in range(args.repeats):
    for name, (step, state, batch) in steps.items():
      start = time.perf_counter()
      jax.block_until_ready(step(state, batch, jax.random.key(3 + i)))
      times[name].append(time.perf_counter() - start)
  median = {name: statistics.median(t) for name, t in times.items()}
  print(json.dumps({"experiment": args.experiment, "seconds_per_step": median,
                    "range": {name: [min(t), max(t)] for name, t in times.items()},
                    "ada_over_plain": median["ada"] / median["none"], "p": args.p, "batch_size": config.batch_size, "device": str(jax.devices()[0])}))


if __name__ == "__main__":
  main()
