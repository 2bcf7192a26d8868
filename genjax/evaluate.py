"""Evaluates a run's latest checkpoint on the test split; prints JSON.

  python -m genjax.evaluate --workdir runs/vae_fashion_mnist [--iwae_k 5000]

VAE runs: the test ELBO and the IWAE-k negative log-likelihood in nats
(Burda et al. 2016) over the whole test split, with the number of images used.
"""

import json
import sys
import time

import jax
import tqdm
from absl import app, flags, logging

from genjax import data, run

flags.DEFINE_string("workdir", None, "A run directory written by an experiment.", required=True)
flags.DEFINE_integer("iwae_k", 5000, "Importance samples per test image for the IWAE bound.")
flags.DEFINE_integer("chunk", 25, "Samples per compiled call (bounds memory).")
flags.DEFINE_integer("num", 0, "Test images to use; 0 = the whole test split.")
flags.DEFINE_integer("seed", 0, "Seed of the binarisation and the samples.")


def evaluate(workdir, iwae_k: int = 5000, chunk: int = 25, num: int = 0, seed: int = 0) -> dict:
  config, family, state = run.restore(workdir)
  if not hasattr(family, "evaluate_metrics"):
    raise ValueError(f"genjax.evaluate has no metrics for the {config.family!r} family yet.")
  test = data.load_from_config(config.data, "test")
  if num:
    test = data.ArrayDataset(test.images[:num], test.labels[:num], test.num_classes, test.source)
  start = time.perf_counter()
  with tqdm.tqdm(total=len(test), unit="image", file=sys.stderr) as bar:
    def progress(done):
      bar.update(done - bar.n)
    metrics = family.evaluate_metrics(state, config, test, jax.random.key(seed), iwae_k=iwae_k,
                                      chunk=chunk, progress=progress)
  return {"workdir": str(workdir), "step": int(state.step), "dataset": config.data.name,
          "data_source": test.source, **metrics,
          "seconds": round(time.perf_counter() - start, 1)}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  if FLAGS.iwae_k < 1 or FLAGS.chunk < 1:
    raise app.UsageError(f"--iwae_k={FLAGS.iwae_k} and --chunk={FLAGS.chunk} must be >= 1.")
  try:
    result = evaluate(FLAGS.workdir, FLAGS.iwae_k, FLAGS.chunk, FLAGS.num, FLAGS.seed)
  except (FileNotFoundError, ValueError, data.DatasetUnavailableError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
