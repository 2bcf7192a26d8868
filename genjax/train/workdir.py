"""What a run directory holds, how a resumed run is checked against it, and
how to bring its state back.

`config.json` is written by the loop at start, `run.json` (image shape and
class count of the data) beside it; together with `checkpoints/` they are
enough to rebuild the state without loading the dataset.
"""

import hashlib
import json
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np

from genjax import checkpoint, configs, models, parallel
from genjax.train import population

# The name --allow_changes takes for training data that changed under a run.
DATA_CHANGE = "data"


def has_checkpoint(workdir: Path) -> bool:
  folder = workdir / "checkpoints"
  return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def check_resume_config(workdir: Path, config: ml_collections.ConfigDict,
                        allow_changes=()) -> None:
  """Fails, naming the keys, when `workdir` holds checkpoints of a run with
  another config. The old config is upgraded first (`configs.upgrade`); keys
  in `configs.RESUMABLE_KEYS`, and those the user names in
  `allow_changes` (e.g. ('opt.g_lr',) to resume with a lower learning rate),
  may change."""
  path = workdir / "config.json"
  if not path.exists() or not has_checkpoint(workdir):
    return  # nothing trained yet: nothing a new config could spoil
  try:
    old = dict(configs.leaves(configs.upgrade(
        ml_collections.ConfigDict(json.loads(path.read_text())))))
  except (ValueError, TypeError, AttributeError) as e:
    raise ValueError(f"{path} is not a config written by genjax ({e}). Restore it, or start "
                     "in a new --workdir.") from None
  new = dict(configs.leaves(configs.upgrade(config)))
  unknown = sorted(set(allow_changes) - set(new) - {DATA_CHANGE})
  if unknown:
    raise ValueError(f"--allow_changes names {unknown}, which are not config keys.")
  changed = sorted(
      k for k in set(old) | set(new)
      if k not in configs.RESUMABLE_KEYS and k not in allow_changes
      and json.dumps(old.get(k)) != json.dumps(new.get(k)))
  if changed:
    details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
    raise ValueError(
        f"{workdir} holds a run with a different config ({details}). Resume with "
        "the same values, start the new config in a new --workdir, or, to continue this "
        f"run with the new values, add --allow_changes={','.join(changed)}.")


def remove_new(workdir: Path) -> None:
  """Removes what a run that failed to start wrote into the workdir it created."""
  (workdir / "config.json").unlink(missing_ok=True)
  (workdir / "run.json").unlink(missing_ok=True)
  for folder in (workdir / "checkpoints", workdir):
    try:
      folder.rmdir()
    except OSError:
      pass  # not empty, or not there: leave it


def data_record(dataset, step: int) -> dict:
  """What the run trains on from `step`: source, image count and a fingerprint
  (the relative file list of a folder read as a stream; the images' and
  labels' bytes of a split in memory; the count alone otherwise), so that a resumed run can tell that its data changed."""
  h = hashlib.sha256(str(len(dataset)).encode())
  files = getattr(getattr(dataset, "examples", None), "files", None)
  if files is not None:
    for name in files:
      h.update(name.encode("utf-8", "surrogateescape") + b"\0")
  elif hasattr(dataset, "images"):  # in memory; an unpaired set has domains a and b
    for part in [dataset.a, dataset.b] if hasattr(dataset, "a") else [dataset]:
      h.update(np.ascontiguousarray(part.images).data)
      h.update(np.ascontiguousarray(part.labels).data)
  return {"source": dataset.source, "count": len(dataset), "fingerprint": h.hexdigest()[:16],
          "from_step": step}


def check_data(workdir: Path, record: dict, allow_changes=()) -> list[dict]:
  """The run's data history with `record` as its last entry. A resumed run
  whose training data differ from those it last trained on (count or
  fingerprint) is refused, unless `allow_changes` names `data`; the history
  keeps each data the run has seen."""
  path = workdir / "run.json"
  if not has_checkpoint(workdir) or not path.exists():
    return [record]
  try:
    info = json.loads(path.read_text())
    history = list(info.get("data") or [{"source": info.get("data_source", "?")}])
  except (ValueError, TypeError, AttributeError):
    return [record]  # an unreadable run.json is rewritten; restore checks the state itself
  last = history[-1]
  same = lambda r: (r.get("count"), r.get("fingerprint")) == (record["count"],
                                                              record["fingerprint"])
  if "fingerprint" not in last or same(last):
    return history[:-1] + [{**record, "from_step": last.get("from_step", 0)}]
  change = (f"{last['count']} images (fingerprint {last['fingerprint']}) from {last['source']} "
            f"then, {record['count']} ({record['fingerprint']}) from {record['source']} now")
  if DATA_CHANGE not in allow_changes:
    raise ValueError(
        f"The training data of the run in {workdir} changed: {change}. Resume with the data it "
        f"trained on, start in a new --workdir, or go on with the new data with "
        f"--allow_changes={DATA_CHANGE} (run.json keeps both).")
  print(f"Note: the training data changed ({change}); going on with the new data from step "
        f"{record['from_step']} (--allow_changes={DATA_CHANGE}).", file=sys.stderr)
  return history + [record]


def write_info(workdir: Path, image_shape, num_classes: int, history: list[dict]) -> None:
  info = {"image_shape": list(image_shape), "num_classes": num_classes,
          "data_source": history[-1]["source"], "data": history}
  (Path(workdir) / "run.json").write_text(json.dumps(info, indent=2))


def read(workdir) -> tuple[ml_collections.ConfigDict, dict]:
  workdir = Path(workdir)
  for name in ("config.json", "run.json"):
    if not (workdir / name).exists():
      raise FileNotFoundError(
          f"{workdir / name} not found: --workdir must be a folder written by an "
          "experiment (e.g. runs/gan_mnist).")
  loaded = []
  for name in ("config.json", "run.json"):
    try:
      loaded.append(json.loads((workdir / name).read_text()))
    except ValueError as e:
      raise ValueError(f"{workdir / name} is not valid JSON ({e}); it is written by the "
                       "loop at the start of a run: restore it, or rerun the experiment "
                       "in this --workdir to write it again.") from None
  config, info = loaded
  if not isinstance(config, dict) or not isinstance(info, dict):
    bad = "config.json" if not isinstance(config, dict) else "run.json"
    raise ValueError(f"{workdir / bad} does not hold a JSON object; it is written by the loop "
                     "at the start of a run: restore it, or rerun the experiment in this "
                     "--workdir to write it again.")
  for key in ("image_shape", "num_classes"):
    if key not in info:
      raise ValueError(f"{workdir / 'run.json'} has no {key!r}; rerun the experiment in this "
                       "--workdir to write it again.")
  return configs.upgrade(ml_collections.ConfigDict(config)), info


def parse_checkpoint(value) -> str | int:
  """'latest', 'best' or a step number, from a flag value."""
  value = str(value)
  if value in ("latest", "best"):
    return value
  if value.isdigit():
    return int(value)
  raise ValueError(f"--checkpoint={value!r}: use 'latest', 'best' or a step number.")


def check_member(config: ml_collections.ConfigDict, member: int | None) -> None:
  """A ValueError unless `member` (None: all of them) names a member of the run."""
  if member is None:
    return
  if not population.active(config):
    raise ValueError(f"--member={member}: this run is a single model, not a population "
                     "(config.population); leave --member out.")
  size = len(population.members_of(config))
  if not 0 <= member < size:
    raise ValueError(f"--member={member}: the population has members 0..{size - 1}.")


def restore(workdir, checkpoint_name: str | int = "latest", member: int | None = None):
  """(config, Family, state) from a checkpoint of the run in `workdir`.

  checkpoint_name: 'latest', 'best' (lowest FID seen by the loop, in
  `best_checkpoint/`), or a step number in `checkpoints/`.
  member: of a population run (genjax.train.population), member `member`'s config
  and state; None gives the run's config and the whole PopulationState.
  """
  config, info = read(workdir)
  check_member(config, member)
  family = models.get(config.family)
  replicated = parallel.replicated(parallel.make_mesh())
  shape, classes = tuple(info["image_shape"]), info["num_classes"]
  trained = population.resolve(config)  # the family, or its population
  abstract = jax.eval_shape(lambda k: trained.create_state(config, k, shape, classes),
                            jax.random.key(0))
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
  best = checkpoint_name == "best"
  directory = Path(workdir) / ("best_checkpoint" if best else "checkpoints")
  if not directory.is_dir() or not any(p.name.isdigit() for p in directory.iterdir()):
    raise FileNotFoundError(
        f"No checkpoint in {directory}; " +
        ("the loop keeps one when config.metrics_num_samples > 0 and the dataset has a "
         "feature network." if best else "train first."))
  ckpt = checkpoint.Checkpointer(directory, create=False)
  try:
    if checkpoint_name in ("latest", "best"):
      state = ckpt.restore_latest(abstract)
      for step in ckpt.unreadable:
        print(f"Checkpoint {directory / str(step)} could not be restored; using step "
              f"{int(state.step)} instead (--checkpoint picks another).", file=sys.stderr)
    elif checkpoint_name not in ckpt.manager.all_steps():
      raise FileNotFoundError(f"No checkpoint for step {checkpoint_name} in {directory}; it has "
                              f"{sorted(ckpt.manager.all_steps())}.")
    else:
      try:
        state = ckpt.restore(abstract, checkpoint_name)
      except Exception as e:  # pylint: disable=broad-except
        raise checkpoint.CheckpointError(
            f"Checkpoint {directory / str(checkpoint_name)} could not be restored "
            f"({checkpoint.describe_error(e)}); it has {sorted(ckpt.manager.all_steps())}: "
            "try another --checkpoint.") from e
  finally:
    ckpt.close()
  if member is not None:
    return population.members_of(config).configs[member], family, population.member_state(state, member)
  return config, family, state
