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
from genjax.train import members as members_lib

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
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict):  # null would read as an empty config
      raise ValueError(f"it holds {_json_kind(loaded)}, not a JSON object")
    old = dict(configs.leaves(configs.upgrade(ml_collections.ConfigDict(loaded))))
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


def _json_kind(value) -> str:
  """'null', 'a JSON array', ...: what a JSON value is, in JSON's words."""
  if value is None:
    return "null"
  if isinstance(value, bool):
    return f"the JSON value {json.dumps(value)}"
  kind = {list: "array", str: "string", int: "number", float: "number"}.get(type(value), "value")
  return f"a JSON {kind}"


def remove_new(workdir: Path) -> None:
  """Removes what a run that failed to start wrote into the workdir it created
  (nothing, when it could not even be created)."""
  for name in ("config.json", "run.json"):
    try:
      (workdir / name).unlink(missing_ok=True)
    except OSError:
      pass  # the workdir is not a folder (its failure says so)
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


def write_info(workdir: Path, image_shape, num_classes: int, history: list[dict],
               class_names=()) -> None:
  """Writes run.json: the image shape, the class count, the data's history
  and, for a folder with classes, their names (label i is class_names[i])."""
  info = {"image_shape": list(image_shape), "num_classes": num_classes,
          "data_source": history[-1]["source"], "data": history}
  if class_names:
    info["class_names"] = list(class_names)
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
    bad, value = ("config.json", config) if not isinstance(config, dict) else ("run.json", info)
    raise ValueError(f"{workdir / bad} holds {_json_kind(value)}, not a JSON object; it is "
                     "written by the loop at the start of a run: restore it, or rerun the "
                     "experiment in this --workdir to write it again.")
  for key in ("image_shape", "num_classes"):
    if key not in info:
      raise ValueError(f"{workdir / 'run.json'} has no {key!r}; rerun the experiment in this "
                       "--workdir to write it again.")
  check_info(workdir / "run.json", info)
  config = configs.upgrade(ml_collections.ConfigDict(config))
  check_config(workdir / "config.json", config)
  return config, info


def _is_count(value, least: int) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_info(path: Path, info: dict) -> None:
  """A ValueError naming the value unless run.json's image shape is [H, W, C]
  of positive integers and its class count an integer >= 0."""
  shape, classes = info["image_shape"], info["num_classes"]
  if not (isinstance(shape, list) and len(shape) == 3 and all(_is_count(n, 1) for n in shape)):
    raise ValueError(f"{path}: image_shape={shape!r} must be a list of three positive "
                     "integers [height, width, channels], e.g. [28, 28, 1]; it is written by "
                     "the loop at the start of a run: restore it, or rerun the experiment in "
                     "this --workdir to write it again.")
  if not _is_count(classes, 0):
    raise ValueError(f"{path}: num_classes={classes!r} must be an integer >= 0 (10 for "
                     "MNIST); restore it, or rerun the experiment in this --workdir to write "
                     "it again.")


def check_config(path: Path, config: ml_collections.ConfigDict) -> None:
  """A ValueError naming the key unless a config read from `path` passes the
  checks a run's config passes before training (`configs.check_common`, the
  family's `validate_config`): a hand-edited value of the wrong type is named
  here, not met as an error deep inside JAX."""
  family = config.get("family")
  if not isinstance(family, str) or family not in models.FAMILIES:
    raise ValueError(f"{path}: family={family!r} is not one of {sorted(models.FAMILIES)}; "
                     "restore the file, or rerun the experiment in this --workdir to write "
                     "it again.")
  try:
    configs.check_common(config)
    models.get(family).validate_config(config)
  except (ValueError, TypeError, KeyError, AttributeError) as e:
    what = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
    raise ValueError(f"{path}: {what} The file is written by the loop at the start of a run; "
                     "restore it, or rerun the experiment in this --workdir to write it "
                     "again.") from None


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
  if not members_lib.active(config):
    raise ValueError(f"--member={member}: this run is a single model, not a population "
                     "(config.population); leave --member out.")
  size = len(members_lib.members_of(config))
  if not 0 <= member < size:
    raise ValueError(f"--member={member}: the population has members 0..{size - 1}.")


def recorded_divergences(workdir, up_to_step: int) -> dict[int, int]:
  """{member: the step at which it became NaN/Inf} of a population run, as
  the loop recorded them in TensorBoard (`train/diverged_at/member_m`,
  genjax.train.population.DIVERGED_AT) at or before `up_to_step`; the
  latest record of a member wins (a resumed run may have redone the steps).
  A member whose record is missing (a run written before it was recorded,
  deleted logs, a process killed before TensorBoard flushed) is left out."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top

  prefix = f"train/{population.DIVERGED_AT}/member_"
  found = {}  # member -> (wall time, step)
  for path in sorted((Path(workdir) / "tensorboard").glob("events.out.tfevents.*")):
    try:
      records = list(_tfrecords(path))
    except OSError:
      continue
    for record in records:
      if prefix.encode() not in record:  # most records: skip parsing them
        continue
      event = event_pb2.Event()
      try:
        event.ParseFromString(record)
      except Exception:  # pylint: disable=broad-except  # a damaged record
        continue
      if event.step > up_to_step:
        continue
      for value in event.summary.value:
        if value.tag.startswith(prefix) and value.tag[len(prefix):].isdigit():
          m = int(value.tag[len(prefix):])
          if m not in found or event.wall_time >= found[m][0]:
            found[m] = (event.wall_time, int(round(value.simple_value)))
  return {m: step for m, (_, step) in found.items()}


def read_scalars(workdir, prefix: str = "") -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{tag: (steps [N], values [N])} of the run's TensorBoard scalars whose tag
  starts with `prefix` ("eval/" for the evaluations: `eval/fid`, and in a
  population `eval/fid/member_m` per member beside the mean), in step order.
  Where a resumed run wrote a step again, its latest value wins."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top

  found = {}  # tag -> {step: (wall time, value)}
  for path in sorted((Path(workdir) / "tensorboard").glob("events.out.tfevents.*")):
    try:
      records = list(_tfrecords(path))
    except OSError:
      continue
    for record in records:
      event = event_pb2.Event()
      try:
        event.ParseFromString(record)
      except Exception:  # pylint: disable=broad-except  # a damaged record
        continue
      for value in event.summary.value:
        if value.tag.startswith(prefix) and value.WhichOneof("value") == "simple_value":
          steps = found.setdefault(value.tag, {})
          if event.step not in steps or event.wall_time >= steps[event.step][0]:
            steps[event.step] = (event.wall_time, value.simple_value)
  return {tag: (np.array(sorted(steps), np.int64),
                np.array([steps[s][1] for s in sorted(steps)], np.float64))
          for tag, steps in sorted(found.items())}


def _tfrecords(path: Path):
  """The records of a TFRecord file (TensorBoard's event files): each a
  length (uint64), its CRC, the data and its CRC; a truncated tail ends it."""
  with open(path, "rb") as f:
    while True:
      header = f.read(12)
      if len(header) < 12:
        return
      length = int.from_bytes(header[:8], "little")
      data = f.read(length)
      if len(data) < length or len(f.read(4)) < 4:
        return
      yield data


def divergence(workdir, state, member: int, recorded: dict | None = None) -> dict | None:
  """None while population member `member` of `state` (a PopulationState)
  is healthy; else {"diverged": True, "diverged_at_step": the step at which
  it became NaN/Inf, or None where that was not recorded}, and the
  sentence saying so (key "message"). `recorded`: `recorded_divergences`
  up to the state's step, when the caller has read them already."""
  if bool(jax.device_get(state.healthy)[member]):
    return None
  if recorded is None:
    recorded = recorded_divergences(workdir, int(state.step))
  at = recorded.get(member)
  when = (f"became NaN/Inf at step {at} and is frozen at its last finite state, that of "
          f"step {at - 1}" if at is not None else
          "became NaN/Inf and is frozen at its last finite state (the step is not recorded "
          "in this run's TensorBoard logs)")
  message = (f"member {member} diverged: it {when}, not trained to the checkpoint's step "
             f"{int(state.step)}.")
  return {"diverged": True, "diverged_at_step": at, "message": message}


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
  trained = population.resolve(config, copies=1)  # the family, or its population
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
    return members_lib.members_of(config).configs[member], family, population.member_state(state, member)
  return config, family, state


def restore_member(workdir, checkpoint_name: str | int, member: int):
  """`restore(workdir, checkpoint_name, member)` and `divergence` of that
  member (None while it is healthy): (config, Family, state, divergence)."""
  check_member(read(workdir)[0], member)
  config, family, state = restore(workdir, checkpoint_name)
  return (members_lib.members_of(config).configs[member], family,
          population.member_state(state, member), divergence(workdir, state, member))
