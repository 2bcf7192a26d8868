"""Generates images from a run's latest checkpoint.

  python -m genjax.sample --workdir runs/gan_mnist --num 1000 --out samples.npz

The .npz file holds `images`: uint8 [N, H, W, C].
"""

import sys

import jax
import numpy as np
from absl import app, flags, logging

from genjax import run, viz

flags.DEFINE_string("workdir", None, "A run directory written by an experiment.", required=True)
flags.DEFINE_integer("num", 1000, "How many images.")
flags.DEFINE_string("out", "samples.npz", "Output .npz file.")
flags.DEFINE_integer("seed", 0, "Seed of the latent draws.")
flags.DEFINE_integer("batch", 500, "Images generated per compiled call.")


def generate(workdir, num: int, seed: int = 0, batch: int = 500) -> np.ndarray:
  """uint8 [num, H, W, C] images from the latest checkpoint in `workdir`."""
  config, family, state = run.restore(workdir)
  sample = jax.jit(lambda s, k: family.sample(s, k, batch, config))
  key = jax.random.key(seed)
  chunks = [np.asarray(sample(state, jax.random.fold_in(key, i)))
            for i in range(-(-num // batch))]
  return viz.to_uint8(np.concatenate(chunks)[:num])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  if FLAGS.num < 1:
    raise app.UsageError(f"--num={FLAGS.num} must be at least 1.")
  try:
    images = generate(FLAGS.workdir, FLAGS.num, FLAGS.seed, FLAGS.batch)
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  np.savez_compressed(FLAGS.out, images=images)
  print(f"Wrote {images.shape[0]} images {images.shape[1:]} uint8 to {FLAGS.out}.")


if __name__ == "__main__":
  app.run(main)
