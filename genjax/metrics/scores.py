"""Sample quality of a set of generated images against a dataset's test split.

`Scorer(dataset, reference_images)` holds the reference features (computed
once); `scorer(images)` returns FID, KID, precision/recall, density/coverage,
the classifier score and the share of each class among the samples, all in
the feature space of the dataset's committed classifier (genjax.metrics.features),
or of another `network` (a folder's own, or Inception, which has no classes:
no classifier score or class shares then; genjax.metrics.folder_features).
`scorer.identity` names the features; `check_same_features` refuses to
compare numbers made in different ones.
"""

import numpy as np

from genjax.metrics import distances, features


class FeatureMismatch(ValueError):
  """Numbers in one feature space compared with numbers in another."""


def check_same_features(recorded: dict, used: dict, where: str) -> None:
  """Raises FeatureMismatch unless `used` ({'name', 'file', 'sha256'}) are the
  features `recorded` at `where` (FIDs in different features do not compare)."""
  if recorded.get("sha256") != used.get("sha256"):
    raise FeatureMismatch(
        f"{where} records FIDs in {recorded.get('name')} ({recorded.get('file')}, sha256 "
        f"{str(recorded.get('sha256'))[:16]}...), but these are in {used.get('name')} "
        f"({used.get('file')}, sha256 {str(used.get('sha256'))[:16]}...); numbers in different "
        "features are not comparable: bring back those features, or score in a new workdir.")


def classifier_score(logits: np.ndarray) -> float:
  """exp(E_x KL(p(y|x) || p(y))): the Inception Score with the dataset's classifier.

  Between 1 (every sample has the same class distribution) and the number of
  classes (confident predictions, all classes equally often).
  """
  logits = np.asarray(logits, np.float64)
  log_p = logits - logits.max(1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
  p = np.exp(log_p)
  log_marginal = np.log(p.mean(0) + 1e-30)
  return float(np.exp(np.mean(np.sum(p * (log_p - log_marginal), axis=1))))


def class_shares(logits: np.ndarray, num_classes: int) -> list[float]:
  """Fraction of samples the classifier assigns to each class."""
  counts = np.bincount(np.asarray(logits).argmax(1), minlength=num_classes)
  return [round(float(c), 5) for c in counts / counts.sum()]


class Scorer:
  """Scores image sets against fixed reference images (usually the test split)."""

  def __init__(self, dataset: str, reference_images: np.ndarray, kid_subsets: int = 100,
               seed: int = 0, network=None):
    self.network = network if network is not None else features.load(dataset)
    expected = tuple(self.network.record["image_shape"] or reference_images.shape[1:])
    if tuple(reference_images.shape[1:]) != expected:
      raise features.FeatureNetworkError(
          f"The {dataset} feature network takes images {expected}, not "
          f"{tuple(reference_images.shape[1:])}.")
    self.dataset = dataset
    self.kid_subsets = kid_subsets
    self.seed = seed
    _, self.reference = self.network(reference_images)
    self.reference_stats = distances.feature_statistics(self.reference)

  @property
  def num_classes(self) -> int:
    return self.network.record["num_classes"]

  @property
  def identity(self) -> dict:
    """The features the numbers are in: {'name', 'file', 'sha256'}."""
    return self.network.identity

  def __call__(self, images: np.ndarray, *, full: bool = True) -> dict:
    """Metrics of `images` (uint8 or [-1, 1], [N, H, W, C]).

    full=False computes only the cheap ones (FID, KID with 10 subsets,
    classifier score), for evaluations during training.
    """
    logits, feats = self.network(images)
    fid = distances.frechet_distance(*distances.feature_statistics(feats), *self.reference_stats)
    kid, kid_std = distances.kernel_inception_distance(
        self.reference, feats, num_subsets=self.kid_subsets if full else 10, seed=self.seed)
    out = {"fid": fid, "kid": kid, "kid_std": kid_std}
    if logits is not None:  # a classifier's features (Inception's come without classes)
      out["classifier_score"] = classifier_score(logits)
    if full:
      out["precision"], out["recall"] = distances.precision_recall(self.reference, feats, k=3)
      out["density"], out["coverage"] = distances.density_coverage(self.reference, feats, k=5)
      if logits is not None:
        out["class_shares"] = class_shares(logits, self.num_classes)
      out["num_samples"] = len(feats)
      out["num_reference"] = len(self.reference)
    return out
