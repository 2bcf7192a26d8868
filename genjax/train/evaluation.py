"""The loop's evaluation: a family's grids and scalars, FID/KID of its samples
in the dataset's feature network (a folder's: Inception or its own network,
genjax.metrics.folder_features), and the lowest-FID state kept.

`make_evaluator` gives one model's whole evaluation (what the loop and a
population's per-member evaluation call); `Evaluation` is the periodic
action: it writes the grids and scalars and keeps `best_checkpoint/`.
"""

import contextlib
import json
import sys
from pathlib import Path

import jax
import ml_collections

from genjax import checkpoint, models, viz
from genjax.metrics import features, folder_features, scores
from genjax.models.sampling import Sampler

# Scalars whose breakdowns ('fid/member_3') the log line prints.
HEADLINE = ("fid", "elbo")


def make_scorer(family: models.Family, config: ml_collections.ConfigDict, test):
  """The FID/KID scorer of evaluations during training, or None (saying why)."""
  if family.sample is None or not config.metrics_num_samples:  # translators have none
    return None
  try:
    network = (folder_features.choose(config.data) if folder_features.is_folder(config.data)
               else None)
    return scores.Scorer(config.data.name, test.images, kid_subsets=10, network=network)
  except features.FeatureNetworkError as e:
    print(f"Sample metrics off during training: {e}", file=sys.stderr)
    return None


FEATURES_FILE = "features.json"  # a folder run's record of the features its FIDs are in


def check_features(workdir: Path, used: dict) -> None:
  """Records in `workdir` the features a folder run's FIDs are in, or refuses
  (scores.FeatureMismatch) features other than those it recorded: its
  TensorBoard curve and best_checkpoint/ compare every FID with the earlier ones."""
  path = Path(workdir) / FEATURES_FILE
  if path.exists():
    scores.check_same_features(json.loads(path.read_text()), used, str(path))
  else:
    path.write_text(json.dumps(used, indent=2) + "\n")


def make_evaluator(family: models.Family, config: ml_collections.ConfigDict, key: jax.Array,
                   test, workdir: Path | None = None) -> models.Evaluator:
  """state -> (grids, scalars): the family's evaluator, plus FID/KID of
  `config.metrics_num_samples` samples where the dataset has a feature
  network (`make_scorer`). A folder run's features are checked against those
  recorded in `workdir` (`check_features`)."""
  evaluate = family.make_evaluator(config, key, test)
  scorer = make_scorer(family, config, test)
  if scorer is None:
    return evaluate
  if workdir is not None and folder_features.is_folder(config.data):
    check_features(workdir, scorer.identity)
  sampler = Sampler(family.sample, config, min(500, config.metrics_num_samples))

  def evaluate_with_scores(state):
    images, scalars = evaluate(state)
    fakes = sampler(state, config.metrics_num_samples, jax.random.fold_in(key, 1))
    scalars.update(scorer(fakes, full=False))
    return images, scalars

  return evaluate_with_scores


class Evaluation:
  """One evaluation of the loop: grids to samples/ and TensorBoard, scalars
  to TensorBoard and the log, and the state with the lowest `fid` seen in
  `best_checkpoint/`. `writer` is None outside the main process."""

  def __init__(self, family: models.Family, config: ml_collections.ConfigDict, test,
               key: jax.Array, workdir: Path, writer, stack: contextlib.ExitStack):
    self.config, self.workdir, self.writer, self.stack = config, workdir, writer, stack
    self.evaluate = make_evaluator(family, config, key, test, workdir)
    self.best = None

  def _keep_if_best(self, state, step: int, fid: float) -> None:
    if self.best is None:
      self.best = checkpoint.Checkpointer(self.workdir / "best_checkpoint", 1, best_metric="fid")
      self.stack.callback(self.best.close)
    best = self.best.best()
    if best is None or fid < best[1]:
      self.best.save(step, state, metrics={"fid": fid})

  def __call__(self, state, step: int, log) -> None:
    images, scalars = self.evaluate(state)
    if "fid" in scalars:
      self._keep_if_best(state, step, scalars["fid"])
    if self.writer is None:  # not the main process
      return
    scale = self.config.grid_scale
    for name, image in images.items():
      viz.save_png(self.workdir / "samples" / f"step_{step:06d}_{name}.png",
                   viz.upscale(image, scale))
      self.writer.add_image(name, image, step, dataformats="HWC")
    for name, value in scalars.items():
      self.writer.add_scalar(f"eval/{name}", value, step)
    if scalars:
      line = ", ".join(f"{n}={v:.4g}" for n, v in scalars.items() if "/" not in n)
      for headline in HEADLINE:
        parts = [f"{n.partition('/')[2]} {v:.4g}" for n, v in scalars.items()
                 if n.startswith(headline + "/")]
        if parts:
          line += f"; {headline} by {', '.join(parts)}"
      log(f"step {step}: {line}")
    self.writer.flush()
