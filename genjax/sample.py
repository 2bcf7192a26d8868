"""Generates images from a run's checkpoint.

  python -m genjax.sample --workdir runs/gan_mnist --num 1000 --out samples.npz
  python -m genjax.sample --workdir runs/gan_mnist --checkpoint best
  python -m genjax.sample --workdir runs/gan_mnist_cgan --labels 3,7   # conditional runs
  python -m genjax.sample --workdir runs/gan_mnist_seeds --member 2     # population runs

The .npz file holds `images`: uint8 [N, H, W, C], and for conditional runs
`labels` [N] (the --labels list repeated, or every class in turn).
"""

import os
import sys
from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging

from genjax import checkpoint, runtime
from genjax.train import population
from genjax.train import workdir as rundir
from genjax.models import sampling


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
             checkpoint: str | int = "latest", labels: list[int] | None = None,
             member: int | None = None):
  """(uint8 [num, H, W, C] images, labels [num] or None) from a checkpoint in
  `workdir`; of a population run, from member `member`."""
  config, info = rundir.read(workdir)
  rundir.check_member(config, member)
  if member is None and population.active(config):
    raise ValueError(f"{workdir} holds a population of {len(population.members_of(config))} "
                     "members (config.population); pick one with --member.")
  labels = sample_labels(config, info, num, labels)
  config, family, state = rundir.restore(workdir, checkpoint, member)
  if family.sample is None:
    raise ValueError(f"{workdir} holds a {config.family!r} run, which translates images and "
                     "draws no new ones; `python -m genjax.evaluate` measures it.")
  images = sampling.draw(family.sample, state, config, num, jax.random.key(seed), batch, labels)
  return images, labels


def define_flags():
  """The command-line flags; defined only when run as a program, so that
  importing this module leaves the importer's flags alone."""
  flags.DEFINE_string("workdir", None, "A run directory written by an experiment.", required=True)
  flags.DEFINE_integer("num", 1000, "How many images.")
  flags.DEFINE_string("out", "samples.npz", "Output .npz file.")
  flags.DEFINE_integer("seed", 0, "Seed of the latent draws.")
  flags.DEFINE_integer("batch", 500, "Images generated per compiled call.")
  flags.DEFINE_string("checkpoint", "latest", "'latest', 'best' (lowest FID) or a step number.")
  flags.DEFINE_integer("member", None, "Population runs (config.population): the member "
                       "to sample from.")
  flags.DEFINE_list("labels", [], "Conditional runs: classes to draw, repeated to --num "
                    "(default: every class in turn).")


def main(argv):
  del argv
  runtime.configure()
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  for name in ("num", "batch"):
    if FLAGS[name].value < 1:
      raise app.UsageError(f"--{name}={FLAGS[name].value} must be at least 1.")
  if not 0 <= FLAGS.seed < 2**63:
    raise app.UsageError(f"--seed={FLAGS.seed} must be in [0, 2**63).")
  try:
    out = check_output_path(FLAGS.out)
    try:
      wanted = [int(y) for y in FLAGS.labels]
    except ValueError:
      raise ValueError(f"--labels={','.join(FLAGS.labels)} must be class numbers, "
                       "e.g. --labels=3,7.") from None
    images, labels = generate(FLAGS.workdir, FLAGS.num, FLAGS.seed, FLAGS.batch,
                              rundir.parse_checkpoint(FLAGS.checkpoint), wanted, FLAGS.member)
  except (FileNotFoundError, ValueError, checkpoint.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  arrays = {"images": images} if labels is None else {"images": images, "labels": labels}
  np.savez_compressed(out, **arrays)
  print(f"Wrote {images.shape[0]} images {images.shape[1:]} uint8 to {out}.")


def check_output_path(out: str) -> Path:
  """`--out` as a writable .npz path, checked before any image is generated."""
  path = Path(out)
  if path.suffix != ".npz":
    raise ValueError(f"--out={out}: name a .npz file (e.g. {path.with_suffix('.npz').name}).")
  if path.is_dir():
    raise ValueError(f"--out={out} is a folder; name a .npz file in it.")
  if not path.parent.is_dir():
    raise ValueError(f"--out={out}: the folder {path.parent} does not exist; create it first.")
  if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
    raise ValueError(f"--out={out}: {path if path.exists() else path.parent} is not writable.")
  return path


if __name__ == "__main__":
  define_flags()
  app.run(main)
