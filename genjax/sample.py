"""Generates images from a run's checkpoint.

  python -m genjax.sample --workdir runs/gan_mnist --num 1000 --out samples.npz
  python -m genjax.sample --workdir runs/gan_mnist --checkpoint best
  python -m genjax.sample --workdir runs/gan_mnist_cgan --labels 3,7   # conditional runs

The .npz file holds `images`: uint8 [N, H, W, C], and for conditional runs
`labels` [N] (the --labels list repeated, or every class in turn).
"""

import sys

import jax
import numpy as np
from absl import app, flags, logging

from genjax import run, viz


class Sampler:
  """`sampler(state, num, key, labels=None)`: uint8 [num, H, W, C], `batch` per
  compiled call (compiled once, reused for every state of the same shape)."""

  def __init__(self, family, config, batch: int = 500):
    self.batch = batch
    self._sample = jax.jit(lambda s, k: family.sample(s, k, batch, config))
    self._sample_labels = jax.jit(lambda s, k, y: family.sample(s, k, batch, config, labels=y))

  def __call__(self, state, num: int, key: jax.Array, labels=None) -> np.ndarray:
    chunks = []
    for i in range(-(-num // self.batch)):
      k = jax.random.fold_in(key, i)
      if labels is None:
        chunks.append(np.asarray(self._sample(state, k)))
      else:
        y = np.resize(np.asarray(labels[i * self.batch:(i + 1) * self.batch], np.int32), self.batch)
        chunks.append(np.asarray(self._sample_labels(state, k, y)))
    return viz.to_uint8(np.concatenate(chunks)[:num])


def draw(family, state, config, num: int, key: jax.Array, batch: int = 500,
         labels=None) -> np.ndarray:
  """uint8 [num, H, W, C] samples of `state`, `batch` per compiled call."""
  return Sampler(family, config, min(batch, num))(state, num, key, labels)


def sample_labels(config, info: dict, num: int, wanted: list[int] | None):
  """The labels [num] for a conditional run (None for an unconditional one)."""
  num_classes = info["num_classes"]
  if not config.get("conditional", False):
    if wanted:
      raise ValueError(f"--labels={','.join(map(str, wanted))}: this run is not conditional "
                       f"(config.conditional=False), so it takes no labels; its data has "
                       f"classes 0..{num_classes - 1}.")
    return None
  bad = [y for y in wanted or [] if not 0 <= y < num_classes]
  if bad:
    raise ValueError(f"--labels: {bad} out of range; the classes are 0..{num_classes - 1}.")
  return np.resize(np.asarray(wanted or np.arange(num_classes), np.int32), num)


def generate(workdir, num: int, seed: int = 0, batch: int = 500,
             checkpoint: str | int = "latest", labels: list[int] | None = None):
  """(uint8 [num, H, W, C] images, labels [num] or None) from a checkpoint in `workdir`."""
  config, info = run.read(workdir)
  labels = sample_labels(config, info, num, labels)
  config, family, state = run.restore(workdir, checkpoint)
  return draw(family, state, config, num, jax.random.key(seed), batch, labels), labels


def define_flags():
  """The command-line flags; defined only when run as a program, so that
  importing this module leaves the importer's flags alone."""
  flags.DEFINE_string("workdir", None, "A run directory written by an experiment.", required=True)
  flags.DEFINE_integer("num", 1000, "How many images.")
  flags.DEFINE_string("out", "samples.npz", "Output .npz file.")
  flags.DEFINE_integer("seed", 0, "Seed of the latent draws.")
  flags.DEFINE_integer("batch", 500, "Images generated per compiled call.")
  flags.DEFINE_string("checkpoint", "latest", "'latest', 'best' (lowest FID) or a step number.")
  flags.DEFINE_list("labels", [], "Conditional runs: classes to draw, repeated to --num "
                    "(default: every class in turn).")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  if FLAGS.num < 1:
    raise app.UsageError(f"--num={FLAGS.num} must be at least 1.")
  try:
    try:
      wanted = [int(y) for y in FLAGS.labels]
    except ValueError:
      raise ValueError(f"--labels={','.join(FLAGS.labels)} must be class numbers, "
                       "e.g. --labels=3,7.") from None
    images, labels = generate(FLAGS.workdir, FLAGS.num, FLAGS.seed, FLAGS.batch,
                              run.parse_checkpoint(FLAGS.checkpoint), wanted)
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  arrays = {"images": images} if labels is None else {"images": images, "labels": labels}
  np.savez_compressed(FLAGS.out, **arrays)
  print(f"Wrote {images.shape[0]} images {images.shape[1:]} uint8 to {FLAGS.out}.")


if __name__ == "__main__":
  define_flags()
  app.run(main)
