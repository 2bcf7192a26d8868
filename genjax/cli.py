"""Command-line entry for experiments: `--config`, `--config.KEY=VALUE`, `--workdir`.

An experiment module supplies `get_config(preset=None)` (see
`genjax.configs`) and a default workdir:

  if __name__ == "__main__":
    from genjax import cli
    cli.main(get_config, default_workdir="runs/gan_mnist")

`--config` is an ml_collections config file, by default the experiment's own
module; `--config=experiments/gan_mnist.py:wgan_gp` calls its
`get_config("wgan_gp")`, and the default workdir becomes runs/gan_mnist_wgan_gp.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from genjax import checkpoint, configs, data, runtime, workdir_lock
from genjax.train import loop

# What a run can stop with that the user can fix: printed as one line, status 1.
USER_ERRORS = (ValueError, FileNotFoundError, data.DatasetUnavailableError,
               loop.TrainingDiverged, checkpoint.CheckpointError, workdir_lock.WorkdirLocked,
               workdir_lock.WorkdirLockLost, workdir_lock.WorkdirUnusable)


def unknown_overrides(argv: list[str], get_config, module_file: str) -> str | None:
  """The one-line error for the first `--config.KEY` of `argv` that the
  experiment's config lacks (closest keys named), or None. Checked before
  absl parses the flags, whose own error is a long traceback. A --config
  naming another file is left to absl."""
  preset = None
  for arg in argv[1:]:
    if arg.startswith("--config="):
      path, _, preset = arg[len("--config="):].partition(":")
      if os.path.realpath(path) != os.path.realpath(module_file):
        return None
  try:
    config = get_config(preset or None)
  except (ValueError, KeyError):
    return None  # an unknown preset: absl reports it, naming the choices
  keys = {k for k, _ in configs.leaves(config)}
  for arg in argv[1:]:
    if not arg.startswith("--config."):
      continue
    key = arg[len("--config."):].partition("=")[0]
    if key not in keys:
      where = os.path.relpath(module_file)
      return f"--config.{key}: " + configs.unknown_key_message(key, config, where)
  return None


def main(get_config, default_workdir: str) -> None:
  runtime.configure()
  module_file = sys.modules[get_config.__module__].__file__
  error = unknown_overrides(sys.argv, get_config, module_file)
  if error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  config_flags.DEFINE_config_file(
      "config", module_file, "Experiment config file[:preset]; override single values as "
      "--config.KEY=VALUE.", lock_config=True,
  )
  flags.DEFINE_string("workdir", None, f"Where checkpoints, logs and samples go (default: "
                      f"{default_workdir}, plus _PRESET for a preset).")
  flags.DEFINE_list("allow_changes", [], "Config keys that may differ from those of the run "
                    "being resumed, e.g. opt.g_lr,opt.d_lr to go on with a lower learning rate; "
                    "'data' to go on with training data that changed.")

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # keep Orbax's per-save INFO lines out
    config = flags.FLAGS.config
    workdir = flags.FLAGS.workdir
    if workdir is None:
      _, _, preset = config_flags.get_config_filename(flags.FLAGS["config"]).partition(":")
      workdir = configs.preset_workdir(default_workdir, preset)
    try:  # the loop checks the config before it loads or compiles anything
      loop.train_and_evaluate(config, workdir, allow_changes=flags.FLAGS.allow_changes)
    except USER_ERRORS as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)

  app.run(_main)
