"""The one training loop, shared by every model family.

  config -> data (on device) -> state (restored if a checkpoint exists)
  -> compiled k-step calls -> logs, sample grids, checkpoints

What a run writes under `workdir`:
  lock               held while the run is alive: a second run is refused
                     (genjax.workdir_lock)
  config.json        the config it was started with (checked on resume)
  run.json           image shape, class count and source of the data
  checkpoints/<step> Orbax checkpoints of the whole state, the last few kept
  tensorboard/       scalars every call, image grids at every evaluation
  samples/           PNG grids at every evaluation (step_000500_samples.png)
  best_checkpoint/   the state with the lowest FID seen at an evaluation, when
                     config.metrics_num_samples > 0 and the dataset has a
                     feature network (genjax.metrics.features)

The pieces, in order: `_start` (mesh, data, state, restore), `Evaluation`
(grids, family scalars, FID and the best checkpoint), the loop body in
`train_and_evaluate`, and the teardown through a `contextlib.ExitStack`.
"""

import contextlib
import dataclasses
import functools
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import tqdm
from tensorboardX import SummaryWriter

from genjax import (checkpoint, configs, data, families, parallel, population, run, viz,
                    workdir_lock)
from genjax import images as images_lib
from genjax.data import stream as stream_lib
from genjax.evaluators import Sampler
from genjax.metrics import features, scores

# Config keys that may change when a run resumes; any other change is an error.
RESUMABLE_KEYS = frozenset({
    "num_steps", "eval_every", "checkpoint_every", "keep_checkpoints", "steps_per_call",
    "num_eval_samples", "metrics_num_samples", "grid_scale", "data.data_dir", "data.idx_dir",
    "data.download", "data.pipeline", "data.threads", "population.layout",
    "population.stop_on_nan",
})


class TrainingDiverged(FloatingPointError):
  """A loss became NaN or Inf; the last good checkpoint is kept."""


def _flatten(config: ml_collections.ConfigDict, prefix: str = "") -> dict:
  out = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _has_checkpoint(workdir: Path) -> bool:
  folder = workdir / "checkpoints"
  return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def check_resume_config(workdir: Path, config: ml_collections.ConfigDict,
                        allow_changes=()) -> None:
  """Fails, naming the keys, when `workdir` holds checkpoints of a run with
  another config. Keys in RESUMABLE_KEYS, and those the user names in
  `allow_changes` (e.g. ('opt.g_lr',) to resume with a lower learning rate),
  may change."""
  path = workdir / "config.json"
  if not path.exists() or not _has_checkpoint(workdir):
    return  # nothing trained yet: nothing a new config could spoil
  try:
    old = _flatten(ml_collections.ConfigDict(json.loads(path.read_text())))
  except (ValueError, TypeError) as e:
    raise ValueError(f"{path} is not a config written by genjax ({e}). Restore it, or start "
                     "in a new --workdir.") from None
  new = _flatten(config)
  unknown = sorted(set(allow_changes) - set(new))
  if unknown:
    raise ValueError(f"--allow_changes names {unknown}, which are not config keys.")
  # A key the old run's config lacks (added to genjax since) with an "off"
  # value (False, 0, '') does what the old run did.
  added_off = {k for k in set(new) - set(old) if not new[k]}
  changed = sorted(
      k for k in set(old) | set(new)
      if k not in RESUMABLE_KEYS and k not in allow_changes and k not in added_off
      and json.dumps(old.get(k)) != json.dumps(new.get(k)))
  if changed:
    details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
    raise ValueError(
        f"{workdir} holds a run with a different config ({details}). Resume with "
        "the same values, start the new config in a new --workdir, or, to continue this "
        f"run with the new values, add --allow_changes={','.join(changed)}.")


def load_split(family: families.Family, config: ml_collections.ConfigDict, split: str):
  """The family's split of the run's data.

  In a multi-process run process 0 loads (and, the first time, prepares) the
  split before the others start, so that hosts sharing a filesystem do not
  prepare the same TFDS dataset at once.
  """
  if jax.process_count() == 1:
    return family.load_split(config, split)
  if jax.process_index() == 0:
    result = family.load_split(config, split)
  parallel.barrier(f"genjax: data prepared ({split})")
  if jax.process_index() != 0:
    result = family.load_split(config, split)
  return result


def multi_step(state, dataset, train_key, data_key, *, train_step, draw_batch, num_steps,
               batch_size, num_batches, sharding, unroll):
  """`num_steps` train steps in one compiled call; metrics stacked [num_steps].

  The batch of each step is drawn on device from `dataset`, and its key is
  `fold_in(train_key, step)`, so a resumed run repeats an uninterrupted one.
  `unroll`: unroll the steps instead of a rolled `lax.scan` (see
  `parallel.unroll_steps`).
  """

  def body(state, _):
    step = state.step
    batch = draw_batch(dataset, step, data_key, batch_size, num_batches)
    batch = jax.lax.with_sharding_constraint(batch, sharding)
    return train_step(state, batch, jax.random.fold_in(train_key, step))

  if num_steps == 1:
    state, metrics = body(state, None)
    return state, jax.tree.map(lambda m: m[None], metrics)
  return jax.lax.scan(body, state, length=num_steps, unroll=True if unroll else 1)


def multi_step_streamed(state, batches, train_key, *, train_step, sharding, unroll):
  """The steps of `batches` (uint8 images [k, n, B, H, W, C] and labels read
  by the host, genjax.data.stream) in one compiled call; metrics [k]."""

  def body(state, batch):
    batch = {"image": images_lib.to_float(batch["image"]), "label": batch["label"]}
    batch = jax.lax.with_sharding_constraint(batch, sharding)
    return train_step(state, batch, jax.random.fold_in(train_key, state.step))

  return jax.lax.scan(body, state, batches, unroll=True if unroll else 1)


def steps_unrolled(family: families.Family, config: ml_collections.ConfigDict, mesh) -> bool:
  """Whether the loop unrolls the steps of one call (`parallel.unroll_steps`)."""
  return parallel.unroll_steps(mesh, family.convolutional(config))


def make_train_call(family: families.Family, config: ml_collections.ConfigDict, mesh,
                    num_steps: int, streamed: bool = False, members=None, state_sharding=None,
                    unroll: bool | None = None):
  """The jitted call the loop runs: (state, dataset, train_key, data_key) ->
  (state after `num_steps` steps, metrics [num_steps]). The state is donated
  and replicated; each step's batch is split over the mesh's `data` axis.
  `streamed`: the call takes the k steps' host batches instead,
  (state, batches, train_key). `members` (genjax.population.Members): the
  state is a population's, sharded as `state_sharding`, and its metrics are
  [num_steps, members]. `unroll`: unroll the steps (True) or roll them
  (False) instead of `parallel.unroll_steps`'s choice (for measurements)."""
  replicated = parallel.replicated(mesh)
  if unroll is None:
    unroll = steps_unrolled(family, config, mesh)
  if members is not None:
    return jax.jit(
        functools.partial(
            multi_step, train_step=population.make_train_step(family, members, mesh),
            draw_batch=population.make_draw_batch(family, members, config),
            num_steps=num_steps, batch_size=config.batch_size,
            num_batches=family.batches_per_step(config),
            sharding=population.batch_sharding(mesh), unroll=unroll),
        donate_argnums=0, out_shardings=(state_sharding, replicated))
  if streamed:
    return jax.jit(
        functools.partial(
            multi_step_streamed, train_step=family.make_train_step(config),
            sharding=parallel.batch_sharding(mesh, batch_axis=1), unroll=unroll),
        donate_argnums=0, out_shardings=(replicated, replicated))
  return jax.jit(
      functools.partial(
          multi_step, train_step=family.make_train_step(config),
          draw_batch=family.make_draw_batch(config), num_steps=num_steps,
          batch_size=config.batch_size, num_batches=family.batches_per_step(config),
          sharding=parallel.batch_sharding(mesh, batch_axis=1), unroll=unroll),
      donate_argnums=0, out_shardings=(replicated, replicated))


class _StopRequest:
  """Turns SIGTERM/SIGINT into a flag the loop checks between calls."""

  def __init__(self):
    self.signal = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self  # signal handlers can only be set from the main thread
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    if self.signal is not None:  # second signal: stop now
      signal.signal(signum, self._previous[signum])
      raise KeyboardInterrupt
    self.signal = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def _next_boundary(step: int, config) -> int:
  """The first step after `step` at which something is due."""
  due = [config.num_steps]
  for every in (config.eval_every, config.checkpoint_every):
    due.append((step // every + 1) * every)
  return min(due)


def make_scorer(family: families.Family, config: ml_collections.ConfigDict, test):
  """The FID/KID scorer of evaluations during training, or None (saying why)."""
  num = config.get("metrics_num_samples", 0)
  if not num or family.sample is None:
    return None
  try:
    return scores.Scorer(config.data.name, test.images, kid_subsets=10)
  except features.FeatureNetworkError as e:
    print(f"Sample metrics off during training: {e}", file=sys.stderr)
    return None


@dataclasses.dataclass
class _Start:
  """What `_start` sets up: everything the loop body reads."""

  family: families.Family
  mesh: Any
  dataset: Any  # the training split on device (None when streamed)
  stream: Any  # the host pipeline of the training split (None on the device path)
  test: Any  # the test split in memory
  state: Any
  start_step: int
  restored: bool
  train_key: jax.Array
  data_key: jax.Array
  eval_key: jax.Array
  members: Any  # genjax.population.Members of a population run, else None
  state_sharding: Any


MAX_QUIET_UNROLL = 10  # steps per call unrolled on CPU without a note


def unroll_note(config: ml_collections.ConfigDict, mesh) -> str | None:
  """A note when a CPU mesh would unroll more than MAX_QUIET_UNROLL steps into
  one compiled call (`parallel.unroll_steps`): compile time grows with them."""
  k = config.steps_per_call
  if not steps_unrolled(families.get(config.family), config, mesh) or k <= MAX_QUIET_UNROLL:
    return None
  return (f"Note: config.steps_per_call={k}: on CPU the {k} steps of a call are unrolled "
          f"into one program, whose compilation grows with them (minutes for large "
          f"networks); --config.steps_per_call=1 compiles a single step.")


def _start(config: ml_collections.ConfigDict, workdir: Path, devices, allow_changes,
           members) -> _Start:
  """Mesh, data, state (restored from the latest checkpoint when there is one)
  and the run's files; nothing is compiled for training yet. config.json is
  written before anything slow."""
  family = families.get(config.family)
  mesh = (parallel.make_mesh(devices) if members is None
          else population.make_mesh(devices, len(members)))
  parallel.check_batch_size(config.batch_size, mesh)
  check_resume_config(workdir, config, allow_changes)
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(config.to_json(indent=2))

  train = load_split(family, config, "train")
  image_shape = tuple(train.image_shape)
  print(f"Data: {config.data.name} train, {len(train)} images {image_shape} "
        f"from {train.source}.", file=sys.stderr)
  num_batches = family.batches_per_step(config)
  if len(train) < num_batches * config.batch_size:
    raise ValueError(f"config.batch_size={config.batch_size} is larger than the "
                     f"{len(train)} training images.")
  per_pass = config.opt.get("examples_per_pass", 0) if "opt" in config else 0
  if per_pass and per_pass != len(train):  # a schedule counted in passes (steps/vae.py)
    print(f"Note: config.opt.examples_per_pass={per_pass}, but this training split has "
          f"{len(train)} images: the schedule's passes are of {per_pass} examples. Set "
          f"--config.opt.examples_per_pass={len(train)} to count passes over this split.",
          file=sys.stderr)
  note = unroll_note(config, mesh)
  if note:
    print(note, file=sys.stderr)
  streamed = (isinstance(train, data.StreamedDataset)
              or data.choose_pipeline(config.data, len(train), image_shape) == "stream")
  if streamed and not family.streams:
    raise ValueError(f"config.data.pipeline: the {family.name!r} family reads its data on the "
                     "device path only; set config.data.pipeline=device.")
  if streamed and members is not None:
    raise ValueError("config.data.pipeline: a population (config.population) reads its data "
                     "on the device path only; set config.data.pipeline=device, or train the "
                     "members as separate runs.")
  dataset = None if streamed else family.to_device(train, mesh)

  init_key, train_key, data_key, eval_key = jax.random.split(jax.random.key(config.seed), 4)
  if members is None:
    state_sharding = parallel.replicated(mesh)
    create = lambda: family.create_state(config, init_key, image_shape, train.num_classes)
  else:  # every member's keys from its own seed (genjax.population)
    create = lambda: population.create_state(family, members, image_shape, train.num_classes)
    state_sharding = population.state_sharding(mesh, jax.eval_shape(create))
    print(f"Population: {len(members)} members "
          f"({', '.join(members.describe(m) for m in range(len(members)))}); mesh "
          f"{dict(mesh.shape)}.", file=sys.stderr)
  state = jax.jit(create, out_shardings=state_sharding)()
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config.keep_checkpoints)
  try:
    restored = ckpt.restore_latest(state)
    parallel.barrier("genjax: restored")  # every process has read the steps
    if jax.process_index() == 0 and ckpt.unreadable:
      ckpt.move_aside(ckpt.unreadable, resumed=int(restored.step))
  finally:
    ckpt.close()
  if restored is not None:
    state = restored
  if jax.process_index() == 0:
    run.write_info(workdir, image_shape, train.num_classes, train.source)
  start = int(state.step)
  print(("Resuming from" if restored is not None else "Starting at") +
        f" step {start} of {config.num_steps}; workdir {workdir.absolute()}", file=sys.stderr)
  host_stream = None
  if streamed:  # batches from `start` on: the step is the pipeline's whole state
    batches = stream_lib.StepBatches(train, config.batch_size, num_batches, data_key,
                                     jax.process_index(), jax.process_count())
    host_stream = stream_lib.Stream(batches, start, config.num_steps,
                                    threads=config.data.get("threads", 4))
    print(f"Streaming the training data: {config.data.get('threads', 4)} reader threads "
          f"per process.", file=sys.stderr)
  return _Start(family, mesh, dataset, host_stream, load_split(family, config, "test"), state,
                start, restored is not None, train_key, data_key, eval_key, members,
                state_sharding)


class Evaluation:
  """One evaluation of the loop: the family's grids and scalars, and FID/KID
  of `config.metrics_num_samples` samples where the dataset has a feature
  network, keeping the lowest-FID state in `best_checkpoint/`.

  For a population (`members`), every healthy member is evaluated with the
  same keys (the same latent draws): the scalars are their means, with each
  member's value beside them (`fid/member_3`), the best checkpoint is the
  one with the lowest mean FID, and a grid `members` has one row of samples
  per member (families without a sampler: each grid, members stacked)."""

  GRID_COLUMNS = 10

  def __init__(self, family: families.Family, config: ml_collections.ConfigDict, test,
               key: jax.Array, workdir: Path, writer, stack: contextlib.ExitStack,
               members=None):
    self.config, self.key, self.workdir, self.writer = config, key, workdir, writer
    self.family, self.members = family, members
    member_config = config if members is None else members.configs[0]
    self.evaluator = family.make_evaluator(member_config, key, test)
    self.scorer = make_scorer(family, config, test)
    if self.scorer is not None:
      self.sampler = Sampler(family.sample, member_config, min(500, config.metrics_num_samples))
      self.best = checkpoint.Checkpointer(workdir / "best_checkpoint", 1, best_metric="fid")
      stack.callback(self.best.close)
    if members is not None and family.sample is not None:
      self.row_sampler = Sampler(family.sample, member_config, self.GRID_COLUMNS)

  def _evaluate(self, state) -> tuple[dict, dict]:
    images, scalars = self.evaluator(state)
    if self.scorer is not None:
      fakes = self.sampler(state, self.config.metrics_num_samples,
                           jax.random.fold_in(self.key, 1))
      scalars.update(self.scorer(fakes, full=False))
    return images, scalars

  def _evaluate_population(self, state) -> tuple[dict, dict, dict]:
    healthy = np.asarray(jax.device_get(state.healthy))
    per_member, grids, rows = {}, {}, []
    for m in np.flatnonzero(healthy):
      member = population.member(state, int(m))
      images, scalars = self._evaluate(member)
      for name, value in scalars.items():
        per_member.setdefault(name, {})[int(m)] = value
      for name, image in images.items():
        grids.setdefault(name, []).append(image)
      if self.family.sample is not None:
        rows.append(self.row_sampler(member, self.GRID_COLUMNS, jax.random.fold_in(self.key, 2)))
    if rows:
      grids = {"members": viz.grid(np.concatenate(rows), ncol=self.GRID_COLUMNS)}
    else:
      grids = {name: viz.grid(np.stack(images), ncol=1, pad=4) for name, images in grids.items()}
    means = {name: float(np.mean(list(v.values()))) for name, v in per_member.items()}
    return grids, means, per_member

  def __call__(self, state, step: int, log) -> None:
    per_member = {}
    if self.members is None:
      images, scalars = self._evaluate(state)
    else:
      images, scalars, per_member = self._evaluate_population(state)
    if self.scorer is not None and "fid" in scalars:
      best = self.best.best()
      if best is None or scalars["fid"] < best[1]:
        self.best.save(step, state, metrics={"fid": scalars["fid"]})
    if self.writer is None:  # not the main process
      return
    scale = self.config.get("grid_scale", 1)
    for name, image in images.items():
      viz.save_png(self.workdir / "samples" / f"step_{step:06d}_{name}.png",
                   viz.upscale(image, scale))
      self.writer.add_image(name, image, step, dataformats="HWC")
    for name, value in scalars.items():
      self.writer.add_scalar(f"eval/{name}", value, step)
    for name, values in per_member.items():
      self.writer.add_scalars(f"eval/{name}", {f"member_{m}": v for m, v in values.items()},
                              step)
    if scalars:
      line = ", ".join(f"{n}={v:.4g}" for n, v in scalars.items())
      if per_member:
        spread = [f"{n} per member: " + " ".join(f"{v:.4g}" for v in values.values())
                  for n, values in per_member.items() if n in ("fid", "elbo")]
        line = "; ".join([f"mean of {len(next(iter(per_member.values())))} members: {line}",
                          *spread])
      log(f"step {step}: {line}")
    self.writer.flush()


def _check_finite(stacked: dict, first: int, last: int, ckpt: checkpoint.Checkpointer,
                  config: ml_collections.ConfigDict) -> None:
  bad = [name for name, v in stacked.items() if not np.all(np.isfinite(v))]
  if bad:
    rates = [k for k in _flatten(config) if k.startswith("opt.") and k.endswith("lr")]
    lower = " ".join(f"--config.{k}={config.opt[k[4:]] / 2:g}" for k in rates)
    raise TrainingDiverged(
        f"{', '.join(bad)} became NaN/Inf between steps {first} and {last}. "
        f"Stopped without saving; the last good checkpoint "
        f"(step {ckpt.latest_step()}) in {ckpt.directory} is kept. To resume it with a "
        f"lower learning rate, rerun the same command with {lower} "
        f"--allow_changes={','.join(rates)}; or start over in a new --workdir.")


def _population_metrics(stacked: dict, was_healthy: np.ndarray, members, first: int,
                        last: int, ckpt: checkpoint.Checkpointer,
                        config: ml_collections.ConfigDict, log) -> tuple[dict, dict, np.ndarray]:
  """(means over healthy members, {name: {member: mean}}, healthy [M]) of one
  call's metrics [k, M]. A member that turned NaN/Inf in this call is
  reported, and stops the run when config.population.stop_on_nan is set or
  no member is left."""
  healthy_steps = stacked.pop("healthy")  # [k, M]: healthy after each step
  healthy = healthy_steps[-1]
  for m in np.flatnonzero(was_healthy & ~healthy):
    at = first + 1 + int(np.argmin(healthy_steps[:, m]))
    what = members.describe(int(m))
    if config.population.stop_on_nan:
      raise TrainingDiverged(
          f"{what} became NaN/Inf at step {at}. Stopped without saving "
          f"(config.population.stop_on_nan); the last good checkpoint (step "
          f"{ckpt.latest_step()}) in {ckpt.directory} is kept. Rerun without "
          "--config.population.stop_on_nan to go on with the other members.")
    log(f"{what} became NaN/Inf at step {at}: it keeps its last finite state and no longer "
        f"trains; the other {int(healthy.sum())} go on.")
  if not healthy.any():
    raise TrainingDiverged(
        f"Every member of the population became NaN/Inf by step {last}. The last good "
        f"checkpoint (step {ckpt.latest_step()}) in {ckpt.directory} is kept; lower the "
        "learning rates (see --allow_changes) or start over in a new --workdir.")
  per_member, means = {}, {}
  for name, values in stacked.items():  # [k, M]; steps after a member's NaN left out
    per_member[name] = {int(m): float(np.mean(values[healthy_steps[:, m], m]))
                        for m in np.flatnonzero(healthy)}
    means[name] = float(np.mean(list(per_member[name].values())))
  return means, per_member, healthy


def _remove_new_workdir(workdir: Path) -> None:
  """Removes what a run that failed to start wrote into the workdir it created."""
  (workdir / "config.json").unlink(missing_ok=True)
  (workdir / "run.json").unlink(missing_ok=True)
  for folder in (workdir / "checkpoints", workdir):
    try:
      folder.rmdir()
    except OSError:
      pass  # not empty, or not there: leave it


def _duration(seconds: float) -> str:
  """'42 s', '7.1 min' or '1 h 16 min'."""
  if seconds < 60:
    return f"{seconds:.0f} s"
  if round(seconds / 60, 1) < 60:
    return f"{seconds / 60:.1f} min"
  minutes = max(60, round(seconds / 60))
  return f"{minutes // 60} h {minutes % 60} min"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None,
                       allow_changes=()):
  """Trains `config.family` per `config`, writing to `workdir`; resumes if possible.

  Args:
    config: an experiment's config (see experiments/).
    workdir: the run directory; a checkpoint there is resumed. One run at a
      time: a second one is refused while the first holds the lock.
    devices: the devices of the mesh (default: all devices of all processes).
    allow_changes: config keys that may differ from the checkpointed run's.

  Returns:
    (state, metrics): the final state, and the last call's metrics averaged
    over its steps (host floats) with 'step'.
  """
  began = time.perf_counter()
  workdir = Path(workdir)
  configs.check_common(config)  # before anything is loaded or compiled
  data.check_limit(config.data.get("limit", 0))
  families.get(config.family).validate_config(config)
  members = None
  if population.active(config):
    members = population.members(config)
    for member_config in members.configs:
      configs.check_common(member_config)
      families.get(config.family).validate_config(member_config)
  parallel.initialize_distributed()
  is_main = jax.process_index() == 0
  new_workdir = not workdir.exists()
  started = False
  try:
    with contextlib.ExitStack() as stack:
      lock = stack.enter_context(workdir_lock.acquire(
          workdir, run_id=parallel.shared_run_id(), is_main=is_main))
      s = _start(config, workdir, devices, tuple(allow_changes), members)
      started = True
      state, step, metrics = s.state, s.start_step, {}
      images_per_step = config.batch_size * s.family.batches_per_step(config)
      calls = {}
      ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config.keep_checkpoints)
      stack.callback(ckpt.close)
      writer = SummaryWriter(str(workdir / "tensorboard")) if is_main else None
      if writer is not None:
        stack.callback(writer.close)
      evaluate = Evaluation(s.family, config, s.test, s.eval_key, workdir, writer, stack,
                            members)
      healthy = None if members is None else np.asarray(jax.device_get(state.healthy))
      bar = stack.enter_context(tqdm.tqdm(
          total=config.num_steps, initial=step, unit="step", dynamic_ncols=True,
          disable=not is_main, mininterval=1.0 if sys.stderr.isatty() else 30.0))
      stop = stack.enter_context(_StopRequest())
      batch_sharding = parallel.batch_sharding(s.mesh, batch_axis=2)  # [k, n, B, ...]
      while step < config.num_steps:
        k = min(config.steps_per_call, _next_boundary(step, config) - step)
        if k not in calls:
          calls[k] = make_train_call(s.family, config, s.mesh, k, streamed=s.stream is not None,
                                     members=members, state_sharding=s.state_sharding)
        t0 = time.perf_counter()
        if s.stream is None:
          state, stacked = calls[k](state, s.dataset, s.train_key, s.data_key)
        else:
          batches = stream_lib.to_global(s.stream.take(k), batch_sharding, jax.process_count())
          state, stacked = calls[k](state, batches, s.train_key)
        stacked = jax.device_get(stacked)  # waits for the call
        seconds = time.perf_counter() - t0
        step += k
        ckpt.check()
        per_member = {}
        if members is None:
          _check_finite(stacked, step - k, step, ckpt, config)
          metrics = {name: float(np.mean(v)) for name, v in stacked.items()}
        else:
          metrics, per_member, healthy = _population_metrics(
              stacked, healthy, members, step - k, step, ckpt, config, bar.write)
        num_members = 1 if members is None else len(members)
        metrics["images_per_sec"] = k * images_per_step * num_members / seconds
        bar.update(k)
        bar.set_postfix({n: f"{v:.3g}" for n, v in metrics.items()}, refresh=False)
        if writer is not None:
          for name, value in metrics.items():
            writer.add_scalar(f"train/{name}", value, step)
          for name, values in per_member.items():  # one curve per member
            writer.add_scalars(f"train/{name}", {f"member_{m}": v for m, v in values.items()},
                               step)
        if step % config.eval_every == 0 or step == config.num_steps:
          lock.check()  # workdir lock: a run that lost it writes nothing more
          evaluate(state, step, bar.write)
        if step % config.checkpoint_every == 0 or step == config.num_steps or stop.signal:
          lock.check()  # workdir lock: a run that lost it writes nothing more
          ckpt.save(step, state)
        if stop.signal:
          ckpt.wait()
          bar.write(f"{stop.signal} received: saved a checkpoint at step {step} in "
                    f"{ckpt.directory}. Run the same command to resume.")
          break

  finally:
    if not started and new_workdir and is_main:  # a run that could not start leaves no trace
      _remove_new_workdir(workdir)

  if step >= config.num_steps and s.start_step < config.num_steps and is_main:
    took = _duration(time.perf_counter() - began)
    resumed = f", from step {s.start_step}" if s.start_step else ""
    steps = f"{step} step{'' if step == 1 else 's'}"
    print(f"Done: {steps} in {took}{resumed}. Samples in {workdir / 'samples'}, "
          f"TensorBoard logs in {workdir / 'tensorboard'}.", file=sys.stderr)
  elif s.start_step >= config.num_steps:
    print(f"Nothing to do: the run in {workdir} already reached step {s.start_step} "
          f"(config.num_steps={config.num_steps}). Raise --config.num_steps to train on.",
          file=sys.stderr)
  return state, {"step": step, **metrics}
