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


def restore(workdir, step=None):
  """(config, family module, state) from the latest (or given) checkpoint."""
  config, info = read(workdir)
  family = steps.get_family(config.family)
  replicated = parallel.replicated(parallel.make_mesh())
  abstract = jax.eval_shape(
      lambda k: family.create_state(config, k, tuple(info["image_shape"])), jax.random.key(0))
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
  ckpt = checkpoint.Checkpointer(Path(workdir) / "checkpoints")
  if ckpt.latest_step() is None:
    raise FileNotFoundError(f"No checkpoint in {ckpt.directory}; train first.")
  state = ckpt.restore(abstract, step)
  ckpt.close()
  return config, family, state
