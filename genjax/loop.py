"""The one training loop, shared by every experiment.

  config -> data (on device) -> state (restored if a checkpoint exists)
  -> compiled k-step calls -> logs, sample grids, checkpoints

What a run writes under `workdir`:
  config.json        the config it was started with (checked on resume)
  run.json           image shape, class count and source of the data
  checkpoints/<step> Orbax checkpoints of the whole state, the last few kept
  tensorboard/       scalars every call, image grids at every evaluation
  samples/           PNG grids at every evaluation (step_000500_samples.png)
  best_checkpoint/   the state with the lowest FID seen at an evaluation, when
                     config.metrics_num_samples > 0 and the dataset has a
                     feature network (genjax.metrics.features)
"""

import functools
import json
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from tensorboardX import SummaryWriter

from genjax import checkpoint, data, parallel, run, sample, steps, viz
from genjax.data import device
from genjax.metrics import features, scores

# Config keys that may change when a run resumes; any other change is an error.
RESUMABLE_KEYS = frozenset({
    "num_steps", "eval_every", "checkpoint_every", "keep_checkpoints", "steps_per_call",
    "num_eval_samples", "metrics_num_samples", "data.data_dir", "data.idx_dir", "data.download",
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


def check_resume_config(workdir: Path, config: ml_collections.ConfigDict) -> None:
  """Fails, naming the keys, when `workdir` was started with another config."""
  path = workdir / "config.json"
  if not path.exists():
    return
  old = _flatten(ml_collections.ConfigDict(json.loads(path.read_text())))
  new = _flatten(config)
  changed = sorted(
      k for k in set(old) | set(new)
      if k not in RESUMABLE_KEYS and json.dumps(old.get(k)) != json.dumps(new.get(k))
  )
  if changed:
    details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
    raise ValueError(
        f"{workdir} holds a run with a different config ({details}). Resume with "
        "the same values, or start the new config in a new --workdir."
    )


def load_split(family, config: ml_collections.ConfigDict, split: str):
  """A split of the run's data: the family's own loader (two domains for
  CycleGAN), else one image dataset by config.data.name.

  In a multi-process run process 0 loads (and, the first time, prepares) the
  split before the others start, so that hosts sharing a filesystem do not
  prepare the same TFDS dataset at once.
  """
  def load():
    if hasattr(family, "load_split"):
      return family.load_split(config, split)
    return data.load_from_config(config.data, split)

  if jax.process_count() == 1:
    return load()
  if jax.process_index() == 0:
    result = load()
  parallel.barrier(f"genjax: data prepared ({split})")
  if jax.process_index() != 0:
    result = load()
  return result


def multi_step(state, dataset, train_key, data_key, *, train_step, draw_batch, num_steps,
               batch_size, num_batches, sharding):
  """`num_steps` train steps in one compiled call; metrics stacked [num_steps].

  The batch of each step is drawn on device from `dataset`, and its key is
  `fold_in(train_key, step)`, so a resumed run repeats an uninterrupted one.
  On CPU the steps are unrolled: XLA:CPU runs a conv net inside a while loop
  about 15x slower than the same ops unrolled (measured: 1.7 s against 0.1 s
  per DCGAN step), while GPUs and TPUs run the rolled loop at full speed.
  """

  def body(state, _):
    step = state.step
    batch = draw_batch(dataset, step, data_key, batch_size, num_batches)
    batch = jax.lax.with_sharding_constraint(batch, sharding)
    return train_step(state, batch, jax.random.fold_in(train_key, step))

  if num_steps == 1:
    state, metrics = body(state, None)
    return state, jax.tree.map(lambda m: m[None], metrics)
  unroll = True if jax.default_backend() == "cpu" else 1
  return jax.lax.scan(body, state, length=num_steps, unroll=unroll)


def make_train_call(family, config: ml_collections.ConfigDict, mesh, num_steps: int):
  """The jitted call the loop runs: (state, dataset, train_key, data_key) ->
  (state after `num_steps` steps, metrics [num_steps]). The state is donated
  and replicated; each step's batch is split over the mesh's `data` axis."""
  draw_batch = (family.make_draw_batch(config) if hasattr(family, "make_draw_batch")
                else device.draw_batch)
  replicated = parallel.replicated(mesh)
  return jax.jit(
      functools.partial(
          multi_step, train_step=family.make_train_step(config), draw_batch=draw_batch,
          num_steps=num_steps, batch_size=config.batch_size,
          num_batches=family.batches_per_step(config),
          sharding=parallel.batch_sharding(mesh, batch_axis=1)),
      donate_argnums=0, out_shardings=(replicated, replicated))


def to_device(family, dataset, mesh):
  """A loaded split on every device of the mesh (the family's own layout if it has one)."""
  if hasattr(family, "to_device"):
    return family.to_device(dataset, mesh)
  return device.to_device(dataset.images, dataset.labels, mesh)


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


def make_scorer(config: ml_collections.ConfigDict, test: data.ArrayDataset):
  """The FID/KID scorer of evaluations during training, or None (saying why)."""
  num = config.get("metrics_num_samples", 0)
  if not num:
    return None
  try:
    return scores.Scorer(config.data.name, test.images, kid_subsets=10)
  except features.FeatureNetworkError as e:
    print(f"Sample metrics off during training: {e}", file=sys.stderr)
    return None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None):
  """Trains `config.family` per `config`, writing to `workdir`; resumes if possible.

  Args:
    config: an experiment's config (see experiments/).
    workdir: the run directory; a checkpoint there is resumed.
    devices: the devices of the mesh (default: all devices of all processes).

  Returns:
    (state, metrics): the final state, and the last call's metrics averaged
    over its steps (host floats) with 'step'.
  """
  workdir = Path(workdir)
  family = steps.get_family(config.family)
  parallel.initialize_distributed()
  mesh = parallel.make_mesh(devices)
  parallel.check_batch_size(config.batch_size, mesh)
  is_main = jax.process_index() == 0
  check_resume_config(workdir, config)

  train = load_split(family, config, "train")
  print(f"Data: {config.data.name} train, {len(train)} images {train.images.shape[1:]} "
        f"from {train.source}.", file=sys.stderr)
  num_batches = family.batches_per_step(config)
  if len(train) < num_batches * config.batch_size:
    raise ValueError(f"config.batch_size={config.batch_size} is larger than the "
                     f"{len(train)} training images.")
  dataset = to_device(family, train, mesh)
  image_shape = train.images.shape[1:]

  init_key, train_key, data_key, eval_key = jax.random.split(jax.random.key(config.seed), 4)
  replicated = parallel.replicated(mesh)
  state = jax.jit(lambda k: family.create_state(config, k, image_shape, train.num_classes),
                  out_shardings=replicated)(init_key)
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config.keep_checkpoints)
  restored = ckpt.restore_latest(state)
  if restored is not None:
    state = restored
  start = int(state.step)
  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json(indent=2))
    run.write_info(workdir, image_shape, train.num_classes, train.source)
  print(("Resuming from" if restored is not None else "Starting at") +
        f" step {start} of {config.num_steps}; workdir {workdir.absolute()}", file=sys.stderr)

  calls = {config.steps_per_call: make_train_call(family, config, mesh, config.steps_per_call)}
  test = load_split(family, config, "test")
  evaluator = family.make_evaluator(config, eval_key, test)
  scorer = make_scorer(config, test)
  if scorer is not None:
    sampler = sample.Sampler(family, config, min(500, config.metrics_num_samples))
    best_ckpt = checkpoint.Checkpointer(workdir / "best_checkpoint", 1, best_metric="fid")
  writer = SummaryWriter(str(workdir / "tensorboard")) if is_main else None

  def evaluate(state, step):
    images, scalars = evaluator(state)
    if scorer is not None:
      fakes = sampler(state, config.metrics_num_samples, jax.random.fold_in(eval_key, 1))
      scalars.update(scorer(fakes, full=False))
      best = best_ckpt.best()
      if best is None or scalars["fid"] < best[1]:
        best_ckpt.save(step, state, metrics={"fid": scalars["fid"]})
    if not is_main:
      return
    for name, image in images.items():
      viz.save_png(workdir / "samples" / f"step_{step:06d}_{name}.png", image)
      writer.add_image(name, image, step, dataformats="HWC")
    for name, value in scalars.items():
      writer.add_scalar(f"eval/{name}", value, step)
    if scalars:
      bar.write(f"step {step}: " + ", ".join(f"{n}={v:.4g}" for n, v in scalars.items()))
    writer.flush()

  step, metrics = start, {}
  images_per_step = config.batch_size * num_batches
  bar = tqdm.tqdm(total=config.num_steps, initial=start, unit="step", dynamic_ncols=True,
                  disable=not is_main, mininterval=1.0 if sys.stderr.isatty() else 30.0)
  try:
    with _StopRequest() as stop:
      while step < config.num_steps:
        k = min(config.steps_per_call, _next_boundary(step, config) - step)
        if k not in calls:
          calls[k] = make_train_call(family, config, mesh, k)
        t0 = time.perf_counter()
        state, stacked = calls[k](state, dataset, train_key, data_key)
        stacked = jax.device_get(stacked)  # waits for the call
        seconds = time.perf_counter() - t0
        step += k
        bad = [name for name, v in stacked.items() if not np.all(np.isfinite(v))]
        if bad:
          raise TrainingDiverged(
              f"{', '.join(bad)} became NaN/Inf between steps {step - k} and {step}. "
              f"Stopped without saving; the last good checkpoint "
              f"(step {ckpt.latest_step()}) in {ckpt.directory} is kept. Lower the "
              "learning rate or change the loss, then rerun.")
        metrics = {name: float(np.mean(v)) for name, v in stacked.items()}
        metrics["images_per_sec"] = k * images_per_step / seconds
        bar.update(k)
        bar.set_postfix({n: f"{v:.3g}" for n, v in metrics.items()}, refresh=False)
        if writer is not None:
          for name, value in metrics.items():
            writer.add_scalar(f"train/{name}", value, step)
        if step % config.eval_every == 0 or step == config.num_steps:
          evaluate(state, step)
        if step % config.checkpoint_every == 0 or step == config.num_steps:
          ckpt.save(step, state)
        if stop.signal:
          ckpt.save(step, state)
          ckpt.wait()
          bar.write(f"{stop.signal} received: saved a checkpoint at step {step} in "
                    f"{ckpt.directory}. Run the same command to resume.")
          break
  finally:
    bar.close()
    ckpt.close()
    if scorer is not None:
      best_ckpt.close()
    if writer is not None:
      writer.close()
  if step >= config.num_steps and start < config.num_steps and is_main:
    print(f"Done: {step} steps. Samples in {workdir / 'samples'}, "
          f"TensorBoard logs in {workdir / 'tensorboard'}.", file=sys.stderr)
  elif start >= config.num_steps:
    print(f"Nothing to do: the run in {workdir} already reached step {start} "
          f"(config.num_steps={config.num_steps}). Raise --config.num_steps to train on.",
          file=sys.stderr)
  return state, {"step": step, **metrics}
