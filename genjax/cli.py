"""Command-line entry for experiments: `--config`, `--config.KEY=VALUE`, `--workdir`.

An experiment module only supplies `get_config(preset=None)` and a default
workdir:

  if __name__ == "__main__":
    cli.main(get_config, default_workdir="runs/gan_mnist")

`--config` is an ml_collections config file, by default the experiment's own
module; `--config=experiments/gan_mnist.py:wgan_gp` calls its
`get_config("wgan_gp")`, and the default workdir becomes runs/gan_mnist_wgan_gp.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from genjax import data, loop, steps

_POSITIVE_INTS = ("batch_size", "num_steps", "eval_every", "checkpoint_every",
                  "steps_per_call", "keep_checkpoints", "num_eval_samples")


def apply_overrides(config, overrides: dict):
  """Sets dotted keys ('opt.g_lr') of `config` in place and returns it; an
  unknown key is a KeyError naming it."""
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    if leaf not in node:
      raise KeyError(f"config has no key {key!r}")
    node[leaf] = value
  return config


def refuse_preset(experiment: str, preset) -> None:
  """For experiments without presets: `--config=FILE:NAME` is an error."""
  if preset:
    raise ValueError(f"{experiment} has no presets (got {preset!r}); set values with "
                     "--config.KEY=VALUE.")


def validate_config(config) -> None:
  """Raises ValueError naming the first bad key; runs before any compile."""
  for key in _POSITIVE_INTS:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"config.{key}={value!r} must be a positive integer.")
  family = steps.get_family(config.family)
  family.validate_config(config)


def main(get_config, default_workdir: str) -> None:
  module_file = sys.modules[get_config.__module__].__file__
  config_flags.DEFINE_config_file(
      "config", module_file, "Experiment config file[:preset]; override single values as "
      "--config.KEY=VALUE.", lock_config=True,
  )
  flags.DEFINE_string("workdir", None, f"Where checkpoints, logs and samples go (default: "
                      f"{default_workdir}, plus _PRESET for a preset).")

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # keep Orbax's per-save INFO lines out
    config = flags.FLAGS.config
    workdir = flags.FLAGS.workdir
    if workdir is None:
      _, _, preset = config_flags.get_config_filename(flags.FLAGS["config"]).partition(":")
      workdir = f"{default_workdir}_{preset}" if preset else default_workdir
    try:
      validate_config(config)
      loop.train_and_evaluate(config, workdir)
    except (ValueError, FileNotFoundError, data.DatasetUnavailableError,
            loop.TrainingDiverged) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)

  app.run(_main)
