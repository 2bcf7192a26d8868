"""The training loop of one model; every family and a population (a Family
too, genjax.train.population) train through it unchanged.

  config -> data (on device, or streamed) -> state (restored if a checkpoint
  exists) -> compiled k-step calls -> periodic actions -> teardown

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

The periodic actions after each call, in order: the NaN check (the family's
metric reader), logging, evaluation (`genjax.train.evaluation`), checkpoint,
and stop on SIGTERM/SIGINT.
"""

import contextlib
import dataclasses
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import tqdm
from tensorboardX import SummaryWriter

from genjax import checkpoint, configs, data, models, parallel, workdir_lock
from genjax.data import stream as stream_lib
from genjax.train import calls, evaluation, population
from genjax.train import workdir as workdir_lib


class TrainingDiverged(FloatingPointError):
  """A loss became NaN or Inf; the last good checkpoint is kept."""


def _load_split_process_0_first(family: models.Family, config: ml_collections.ConfigDict,
                                split: str):
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


@dataclasses.dataclass
class _Start:
  """What `_start` sets up: everything the loop body reads."""

  mesh: Any
  dataset: Any  # the training split on device (None when streamed)
  stream: Any  # the host pipeline of the training split (None on the device path)
  test: Any  # the test split in memory
  state: Any
  start_step: int
  train_key: jax.Array
  data_key: jax.Array
  eval_key: jax.Array
  state_sharding: Any


def _checkpointed_step(workdir: Path) -> int:
  """The newest checkpoint's step (0 when there is none), from the folder names."""
  folder = workdir / "checkpoints"
  steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
  return max(steps, default=0)


def _start(family: models.Family, config: ml_collections.ConfigDict, workdir: Path, devices,
           allow_changes) -> _Start:
  """Mesh, data, state (restored from the latest checkpoint when there is one)
  and the run's files; nothing is compiled for training yet. What the run
  writes about itself (config.json, run.json) is written only once the
  restore has succeeded, so a resume that fails leaves the workdir as it was."""
  mesh = family.make_mesh(devices)
  parallel.check_batch_size(config.batch_size, mesh)
  workdir_lib.check_resume_config(workdir, config, allow_changes)

  train = _load_split_process_0_first(family, config, "train")
  image_shape = tuple(train.image_shape)
  print(f"Data: {config.data.name} train, {len(train)} images {image_shape} "
        f"from {train.source}.", file=sys.stderr)
  num_batches = family.batches_per_step(config)
  history = workdir_lib.check_data(
      workdir, workdir_lib.data_record(train, _checkpointed_step(workdir)), allow_changes)
  if len(train) < num_batches * config.batch_size:
    raise ValueError(f"config.batch_size={config.batch_size} is larger than the "
                     f"{len(train)} training images.")
  per_pass = config.opt.get("examples_per_pass", 0) if "opt" in config else 0
  if per_pass and per_pass != len(train):  # a schedule counted in passes (models/vae)
    print(f"Note: config.opt.examples_per_pass={per_pass}, but this training split has "
          f"{len(train)} images: the schedule's passes are of {per_pass} examples. Set "
          f"--config.opt.examples_per_pass={len(train)} to count passes over this split.",
          file=sys.stderr)
  note = calls.unroll_note(config, mesh)
  if note:
    print(note, file=sys.stderr)
  streamed = (isinstance(train, data.StreamedDataset)
              or data.choose_pipeline(config.data, len(train), image_shape) == "stream")
  if streamed and not family.streams:
    raise ValueError(f"config.data.pipeline: the {family.name!r} family reads its data on the "
                     "device path only; set config.data.pipeline=device.")
  dataset = None if streamed else family.to_device(train, mesh)

  init_key, train_key, data_key, eval_key = jax.random.split(jax.random.key(config.seed), 4)
  create = lambda: family.create_state(config, init_key, image_shape, train.num_classes)
  state_sharding = family.state_sharding(mesh, jax.eval_shape(create))
  described = family.describe(mesh)
  if described:
    print(described, file=sys.stderr)
  state = jax.jit(create, out_shardings=state_sharding)()
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config.keep_checkpoints)
  try:
    changes = ckpt.shape_changes(state) if ckpt.latest_step() is not None else []
    if changes:  # an allowed change (a width, the members) that no checkpoint can hold
      raise ValueError(
          f"The checkpoints in {ckpt.directory} do not fit this config's state: "
          f"{'; '.join(changes[:3])}{'; ...' if len(changes) > 3 else ''} "
          f"({len(changes)} arrays). --allow_changes={','.join(allow_changes) or '-'} "
          "cannot change a shape; nothing was written. Resume with the config in "
          f"{workdir / 'config.json'}, or start the new one in a new --workdir.")
    restored = ckpt.restore_latest(state)
    parallel.barrier("genjax: restored")  # every process has read the steps
    if jax.process_index() == 0 and ckpt.unreadable:
      ckpt.move_aside(ckpt.unreadable, resumed=int(restored.step))
  finally:
    ckpt.close()
  if restored is not None:
    state = restored
  start = int(state.step)
  print(("Resuming from" if restored is not None else "Starting at") +
        f" step {start} of {config.num_steps}; workdir {workdir.absolute()}", file=sys.stderr)
  host_stream = None
  if streamed:  # batches from `start` on: the step is the pipeline's whole state
    batches = stream_lib.StepBatches(train, config.batch_size, num_batches, data_key,
                                     jax.process_index(), jax.process_count())
    host_stream = stream_lib.Stream(batches, start, config.num_steps,
                                    threads=config.data.threads)
    print(f"Streaming the training data: {config.data.threads} reader threads "
          f"per process.", file=sys.stderr)
  test = _load_split_process_0_first(family, config, "test")
  if jax.process_index() == 0:  # the run's record, once everything above has succeeded
    (workdir / "config.json").write_text(config.to_json(indent=2))
    workdir_lib.write_info(workdir, image_shape, train.num_classes, history,
                           getattr(train, "class_names", ()))
  return _Start(mesh, dataset, host_stream, test, state, start,
                train_key, data_key, eval_key, state_sharding)


def _diverged(error: models.Diverged, ckpt: checkpoint.Checkpointer,
              config: ml_collections.ConfigDict) -> TrainingDiverged:
  """The loop's message for a divergence: what, the checkpoint kept, what to do."""
  advice = error.advice
  if not advice:
    rates = [k for k, _ in configs.leaves(config)
             if k.startswith("opt.") and k.endswith("lr")]
    lower = " ".join(f"--config.{k}={config.opt[k[4:]] / 2:g}" for k in rates)
    advice = (f"To resume it with a lower learning rate, rerun the same command with {lower} "
              f"--allow_changes={','.join(rates)}; or start over in a new --workdir.")
  return TrainingDiverged(
      f"{error.what}. Stopped without saving; the last good checkpoint "
      f"(step {ckpt.latest_step()}) in {ckpt.directory} is kept. {advice}")


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
  data.check_config(config.data)
  parallel.initialize_distributed()
  family = population.resolve(config, devices)  # a population is a family too
  family.validate_config(config)
  is_main = jax.process_index() == 0
  new_workdir = not workdir.exists()
  started = False
  try:
    with contextlib.ExitStack() as stack:
      lock = stack.enter_context(workdir_lock.acquire(
          workdir, run_id=parallel.shared_run_id(), is_main=is_main))
      s = _start(family, config, workdir, devices, tuple(allow_changes))
      started = True
      state, step, metrics = s.state, s.start_step, {}
      images_per_call_step = config.batch_size * family.batches_per_step(config) * \
          family.num_models
      train_calls = {}
      ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config.keep_checkpoints)
      stack.callback(ckpt.close)
      writer = SummaryWriter(str(workdir / "tensorboard")) if is_main else None
      if writer is not None:
        stack.callback(writer.close)
      evaluate = evaluation.Evaluation(family, config, s.test, s.eval_key, workdir, writer,
                                       stack)
      read_metrics = family.make_metric_reader(config, state)
      bar = stack.enter_context(tqdm.tqdm(
          total=config.num_steps, initial=step, unit="step", dynamic_ncols=True,
          disable=not is_main, mininterval=1.0 if sys.stderr.isatty() else 30.0))
      stop = stack.enter_context(_StopRequest())
      batch_sharding = parallel.batch_sharding(s.mesh, batch_axis=2)  # [k, n, B, ...]
      while step < config.num_steps:
        k = min(config.steps_per_call, _next_boundary(step, config) - step)
        if k not in train_calls:
          train_calls[k] = calls.make_train_call(family, config, s.mesh, k,
                                                 streamed=s.stream is not None,
                                                 state_sharding=s.state_sharding)
        t0 = time.perf_counter()
        if s.stream is None:
          state, stacked = train_calls[k](state, s.dataset, s.train_key, s.data_key)
        else:
          batches = stream_lib.to_global(s.stream.take(k), batch_sharding, jax.process_count())
          state, stacked = train_calls[k](state, batches, s.train_key)
        stacked = jax.device_get(stacked)  # waits for the call
        seconds = time.perf_counter() - t0
        step += k
        ckpt.check()
        try:  # NaN/Inf: stop without saving, the last good checkpoint kept
          metrics = read_metrics(stacked, step - k, step, bar.write)
        except models.Diverged as e:
          raise _diverged(e, ckpt, config) from None
        metrics["images_per_sec"] = k * images_per_call_step / seconds
        bar.update(k)
        bar.set_postfix({n: f"{v:.3g}" for n, v in metrics.items() if "/" not in n},
                        refresh=False)
        if writer is not None:
          for name, value in metrics.items():
            writer.add_scalar(f"train/{name}", value, step)
        if step % config.eval_every == 0 or step == config.num_steps:
          lock.check()  # a run that lost its workdir lock writes nothing more
          evaluate(state, step, bar.write)
        if step % config.checkpoint_every == 0 or step == config.num_steps or stop.signal:
          lock.check()
          ckpt.save(step, state)
        if stop.signal:
          ckpt.wait()
          bar.write(f"{stop.signal} received: saved a checkpoint at step {step} in "
                    f"{ckpt.directory}. Run the same command to resume.")
          break

  finally:
    if not started and new_workdir and is_main:  # a run that could not start leaves no trace
      workdir_lib.remove_new(workdir)

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
