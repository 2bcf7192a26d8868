"""What a run directory holds, and how to bring its state back.

`config.json` is written by the loop at start, `run.json` (image shape and
class count of the data) beside it; together with `checkpoints/` they are
enough to rebuild the state without loading the dataset.
"""

import json
from pathlib import Path

import jax
import ml_collections

from genjax import checkpoint, parallel, steps


def write_info(workdir: Path, image_shape, num_classes: int, data_source: str) -> None:
  info = {"image_shape": list(image_shape), "num_classes": num_classes, "data_source": data_source}
  (Path(workdir) / "run.json").write_text(json.dumps(info, indent=2))


def read(workdir) -> tuple[ml_collections.ConfigDict, dict]:
  workdir = Path(workdir)
  for name in ("config.json", "run.json"):
    if not (workdir / name).exists():
      raise FileNotFoundError(
          f"{workdir / name} not found: --workdir must be a folder written by an "
          "experiment (e.g. runs/gan_mnist).")
  config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
  return config, json.loads((workdir / "run.json").read_text())


def parse_checkpoint(value) -> str | int:
  """'latest', 'best' or a step number, from a flag value."""
  value = str(value)
  if value in ("latest", "best"):
    return value
  if value.isdigit():
    return int(value)
  raise ValueError(f"--checkpoint={value!r}: use 'latest', 'best' or a step number.")


def restore(workdir, checkpoint_name: str | int = "latest"):
  """(config, family module, state) from a checkpoint of the run in `workdir`.

  checkpoint_name: 'latest', 'best' (lowest FID seen by the loop, in
  `best_checkpoint/`), or a step number in `checkpoints/`.
  """
  config, info = read(workdir)
  family = steps.get_family(config.family)
  replicated = parallel.replicated(parallel.make_mesh())
  abstract = jax.eval_shape(
      lambda k: family.create_state(config, k, tuple(info["image_shape"]), info["num_classes"]),
      jax.random.key(0))
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
  best = checkpoint_name == "best"
  ckpt = checkpoint.Checkpointer(Path(workdir) / ("best_checkpoint" if best else "checkpoints"))
  try:
    if ckpt.latest_step() is None:
      raise FileNotFoundError(
          f"No checkpoint in {ckpt.directory}; " +
          ("the loop keeps one when config.metrics_num_samples > 0 and the dataset has a "
           "feature network." if best else "train first."))
    step = None if checkpoint_name in ("latest", "best") else checkpoint_name
    if step is not None and step not in ckpt.manager.all_steps():
      raise FileNotFoundError(f"No checkpoint for step {step} in {ckpt.directory}; it has "
                              f"{sorted(ckpt.manager.all_steps())}.")
    state = ckpt.restore(abstract, step)
  finally:
    ckpt.close()
  return config, family, state
