"""Orbax checkpoints of a whole training state: save, keep the last few,
restore the latest.

Saves are asynchronous and atomic: Orbax writes each step into a temporary
folder and renames it when complete, so a process killed mid-save leaves no
step that `restore_latest` would pick up; the previous step is restored. A
save that fails (a full disk) is reported by `check()` as soon as it has
failed, and its temporary folder removed. A complete step that does not
restore while an older one does (a damaged file) is moved aside, never
deleted, into `<directory>_unreadable/`, so that the next save of that step
succeeds.
"""

import datetime
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """No checkpoint restores, or a save failed; the message says what to do."""


def describe_error(error: BaseException, limit: int = 200) -> str:
  text = (str(error).strip().splitlines() or [""])[0]
  return f"{type(error).__name__}: {text[:limit]}"


def _names(path) -> tuple[str, ...]:
  """A pytree key path as names: ('generator', 'params', 'Dense_0', 'kernel'),
  the same for a state pytree and for a checkpoint's metadata tree."""
  def name(key):
    for attr in ("name", "key", "idx"):
      if hasattr(key, attr):
        return str(getattr(key, attr))
    return str(key)
  return tuple(name(k) for k in path)


def _named_leaves(tree):
  return [(_names(path), x) for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _added_fields(stored, target) -> set[str]:
  """The top-level fields of the state `target` that the checkpoint's tree
  `stored` has no array of (fields added to a family's state since)."""
  fields = lambda tree: {path[0] for path, _ in _named_leaves(tree) if path}
  return fields(target) - fields(stored)


def _shapes(tree) -> dict[tuple[str, ...], tuple[int, ...]]:
  """{('generator', 'params', 'Dense_0', 'kernel'): shape} of a state pytree or
  of a checkpoint's metadata tree."""
  return {path: tuple(getattr(x, "shape", ())) for path, x in _named_leaves(tree)}


class Checkpointer:
  """Thin owner of one `ocp.CheckpointManager` for one run directory."""

  def __init__(self, directory: Path, max_to_keep: int = 3, best_metric: Optional[str] = None,
               create: bool = True):
    """Keeps the newest `max_to_keep` steps; with `best_metric`, the steps with
    the lowest value of that metric instead (saved with `save(..., metrics=)`).
    `create=False` for readers, which must not add folders to a workdir."""
    self.directory = Path(directory).absolute()
    self.best_metric = best_metric
    self.unreadable: list[int] = []  # steps restore_latest skipped as damaged
    self._best = None
    best = {}
    if best_metric is not None:
      best = dict(best_fn=lambda m: m[best_metric], best_mode="min",
                  keep_checkpoints_without_metrics=False)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=create, enable_async_checkpointing=True, **best,
        ),
    )

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, metrics: Optional[dict] = None) -> None:
    """Starts an asynchronous save; returns once the arrays are copied off device."""
    if step in self.manager.all_steps():
      return
    previous = self.best() if self.best_metric is not None else None
    self.manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)
    if self.best_metric is not None and metrics is not None:
      if previous is None or metrics[self.best_metric] < previous[1]:
        self._best = (step, float(metrics[self.best_metric]))

  def best(self) -> Optional[tuple[int, float]]:
    """(step, value) of the best saved step by `best_metric`, or None.

    Kept in memory from this process's saves (an asynchronous save's metrics
    are on disk only once it finishes); read from disk after a restart.
    """
    if self._best is None:
      step = self.manager.best_step()
      metrics = self.manager.metrics(step) if step is not None else None
      if metrics is not None:
        self._best = (step, float(metrics[self.best_metric]))
    return self._best

  def restore(self, target: Any, step: Optional[int] = None) -> Any:
    """Restores `step` (default: latest) shaped and sharded like `target`.

    A checkpoint written before a family's state gained a field (ADA's p,
    LeCam's averages) restores too: the fields it lacks are `target`'s, the
    initial values of a fresh state, or zeros where `target` is abstract
    (`jax.ShapeDtypeStruct`s). Any other difference of arrays fails."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    stored = self._stored_tree(step)
    if stored is None or not _added_fields(stored, target):
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    by_path = {path: x for path, x in _named_leaves(abstract)}
    subset = jax.tree_util.tree_map_with_path(
        lambda path, _: by_path[_names(path)], stored)
    restored = dict(_named_leaves(
        self.manager.restore(step, args=ocp.args.StandardRestore(subset))))

    def fill(path, x):
      name = _names(path)
      if name in restored:
        return restored[name]
      if isinstance(x, jax.Array):
        return x
      return jax.device_put(jax.numpy.zeros(x.shape, x.dtype), x.sharding)

    return jax.tree_util.tree_map_with_path(fill, target)

  def _stored_tree(self, step: int):
    """The checkpoint's tree of array metadata at `step`, or None if unreadable."""
    try:
      meta = ocp.StandardCheckpointer().metadata(self.directory / str(step) / "default")
      return meta.item_metadata.tree
    except Exception:  # pylint: disable=broad-except
      return None

  def shape_changes(self, target: Any, step: Optional[int] = None) -> list[str]:
    """'path: stored (32,) -> now (64,)' for every array of `target` whose
    shape differs from the one stored at `step` (default: latest), read from
    the checkpoint's metadata without restoring it; [] when they fit or the
    metadata cannot be read (restoring then says what is wrong). A state
    field the checkpoint lacks is no change: `restore` adds it."""
    step = self.latest_step() if step is None else step
    stored_tree = self._stored_tree(step)
    if stored_tree is None:
      return []
    stored, now = _shapes(stored_tree), _shapes(target)
    added = _added_fields(stored_tree, target)
    changes = [f"{'.'.join(path)}: stored {stored.get(path, 'nothing')} -> now "
               f"{now.get(path, 'nothing')}"
               for path in sorted(set(stored) | set(now)) if stored.get(path) != now.get(path)
               and path[0] not in added]
    return changes

  def restore_latest(self, target: Any) -> Optional[Any]:
    """The newest checkpoint that restores, or None when there is none.

    A step that fails to restore is reported and the one before it tried.
    When an older step restores, the newer ones that failed are damaged (the
    same state fits the older one) and are listed in `self.unreadable`, for
    `move_aside`. When none restores, a CheckpointError lists every step and
    why it failed, since a state that fits no checkpoint usually means a
    changed config.
    """
    self.unreadable = []
    failures = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state = self.restore(target, step)
      except Exception as e:  # pylint: disable=broad-except
        failures.append((step, e))
        print(f"WARNING: checkpoint {self.directory / str(step)} could not be restored "
              f"({describe_error(e)}); trying the one before.", file=sys.stderr)
        continue
      self.unreadable = [s for s, _ in failures]
      return state
    if failures:
      details = "\n".join(f"  step {s}: {describe_error(e)}" for s, e in failures)
      raise CheckpointError(
          f"No checkpoint in {self.directory} restores into this run's state:\n{details}\n"
          f"If the model, optimiser or data config changed since they were written, resume "
          f"with the config in {self.directory.parent / 'config.json'} or start the new "
          f"config in a new --workdir. If the files are damaged, move the step folders out "
          f"of {self.directory} to train from the start.") from failures[0][1]
    return None

  def move_aside(self, steps: list[int], resumed: int) -> None:
    """Moves the step folders `steps` into `<directory>_unreadable/`, saying so."""
    aside = self.directory.parent / f"{self.directory.name}_unreadable"
    aside.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for step in steps:
      target = aside / f"{step}-{stamp}"
      shutil.move(str(self.directory / str(step)), str(target))
      print(f"Moved the unreadable checkpoint {self.directory / str(step)} to {target}; "
            f"resuming from step {resumed}.", file=sys.stderr)
    self.manager.reload()

  def check(self) -> None:
    """Raises CheckpointError at once if an asynchronous save has failed,
    after removing the failed save's temporary folder."""
    try:
      self.manager.check_for_errors()
    except Exception as e:  # pylint: disable=broad-except
      removed = []
      for tmp in self.directory.glob("*.orbax-checkpoint-tmp*"):
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp.name)
      raise CheckpointError(
          f"Saving a checkpoint in {self.directory} failed ({describe_error(e, 300)}). "
          + (f"Removed the partial folder(s) {', '.join(removed)}. " if removed else "")
          + f"The last complete checkpoint (step {self.latest_step()}) is kept; free disk "
          "space or fix the folder's permissions, then rerun the same command to resume."
      ) from e

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
