"""Orbax checkpoints of a whole training state: save, keep the last few,
restore the latest.

Saves are asynchronous and atomic: Orbax writes each step into a temporary
folder and renames it when complete, so a process killed mid-save leaves no
step that `restore_latest` would pick up; the previous step is restored.
"""

import sys
from pathlib import Path
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Thin owner of one `ocp.CheckpointManager` for one run directory."""

  def __init__(self, directory: Path, max_to_keep: int = 3, best_metric: Optional[str] = None):
    """Keeps the newest `max_to_keep` steps; with `best_metric`, the steps with
    the lowest value of that metric instead (saved with `save(..., metrics=)`)."""
    self.directory = Path(directory).absolute()
    self.best_metric = best_metric
    self._best = None
    best = {}
    if best_metric is not None:
      best = dict(best_fn=lambda m: m[best_metric], best_mode="min",
                  keep_checkpoints_without_metrics=False)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=True, **best,
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
    """Restores `step` (default: latest) shaped and sharded like `target`."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def restore_latest(self, target: Any) -> Optional[Any]:
    """The newest checkpoint that restores, or None when there is none.

    A step that fails to restore (a corrupted file) is reported and the one
    before it tried; if none restores, the first error is raised, because a
    state that does not fit any checkpoint means the config changed.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    first_error = None
    for step in steps:
      try:
        return self.restore(target, step)
      except Exception as e:  # pylint: disable=broad-except
        first_error = first_error or e
        print(f"WARNING: checkpoint {self.directory / str(step)} could not be restored "
              f"({type(e).__name__}: {str(e)[:300]}); trying the one before.", file=sys.stderr)
    if first_error is not None:
      raise RuntimeError(
          f"No checkpoint in {self.directory} fits this run's state. Was the "
          "model or optimiser config changed? Use a new --workdir for a new "
          "config, or the old config to resume."
      ) from first_error
    return None

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
