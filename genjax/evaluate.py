"""Evaluates a run's checkpoint against the dataset's test split; prints JSON.

  python -m genjax.evaluate --workdir runs/gan_mnist [--num 10000] [--seed 0]
  python -m genjax.evaluate --workdir runs/vae_fashion_mnist --iwae_k 5000
  python -m genjax.evaluate --workdir runs/vae_mnist --iwae_k 5000 --num 0   # the NLL alone
  python -m genjax.evaluate --workdir runs/gan_mnist --checkpoint best
  python -m genjax.evaluate --workdir runs/gan_mnist_seeds [--member 2]   # a population

Every run with a generator (GAN, VAE): `--num` samples scored against the
test split in the dataset's feature network (genjax.metrics.features): FID,
KID (mean and std over 100 subsets), precision/recall (k=3), density/coverage
(k=5), the classifier score and the share of each class among the samples.
`floor_train_vs_test` scores real training images the same way: the value a
perfect generator would get with this many samples.

Where pytorch-fid's Inception weights are on disk (genjax.metrics.inception:
$GENJAX_INCEPTION_WEIGHTS, the torch.hub cache, or --inception_weights PATH),
`inception_fid` adds the standard Inception FID of the samples (and of the
floor); without the file it says `unavailable` and why. On a CPU it is slow
(about 15 images/s here), so `--noinception` skips it.

A run on a user's folder (data.path) is scored in one feature space
(genjax.metrics.folder_features): Inception-v3 where its weights are given
or found, else the network trained on the folder's own images
(`python -m genjax.metrics.train_classifier --workdir RUN`), else none.
Every result names its features (`features`: name, file, SHA-256).

Then the family's own measures over the test split (`--num_test` images;
all by default), from its `evaluate_metrics` (genjax.models): for VAEs
the test ELBO, active units and the IWAE-k negative log-likelihood in nats
(Burda et al. 2016; `--iwae_k 0` skips the IWAE bound); for CycleGAN the
cycle-reconstruction L1 both ways and, on edges2fashion's paired test
split, the A -> B error (L1, PSNR, SSIM) against the true edge maps and the
share of B -> A translations classified as the source garment's class; for
pix2pix the L1, PSNR and SSIM of the outputs against the targets of the test
pairs, their FID in the feature network, and the same for a baseline: the
identity, or for super-resolution the bicubic input and for inpainting the
mean-filled input, inpainting's measures taken inside the hole (`--num 0`:
a translator draws no samples).
"""

import json
import math
import sys
import time

import jax
import numpy as np
import tqdm
from absl import app, flags, logging

from genjax import checkpoint, data, memory, runtime
from genjax.train import population
from genjax.train import members as members_lib
from genjax.train import workdir as rundir
from genjax.models import sampling
from genjax.metrics import distances, features, folder_features, inception, scores


def _log(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def _inception_features(network, images, what: str) -> np.ndarray:
  with tqdm.tqdm(total=len(images), unit="image", desc=f"Inception: {what}",
                 file=sys.stderr) as bar:
    return network(images, progress=lambda done: bar.update(done - bar.n))


# The fewest samples scored: precision/recall find each one's k = 3 nearest
# neighbours among the others (genjax.metrics.scores).
MIN_NUM = 4


def check_num(num: int) -> None:
  """Refuses a `num` of samples that the sample measures cannot score."""
  if num != 0 and num < MIN_NUM:
    raise ValueError(f"--num={num} must be 0 (no samples scored) or >= {MIN_NUM}: precision "
                     "and recall need each sample's 3rd nearest neighbour among the samples "
                     "(10,000 is the usual number).")


# Bytes each scored sample needs, beyond its uint8 pixels: its logits and
# features in float32 (and their concatenation), the float64 copy the k-NN
# measures make, and its column of the k-NN distance blocks
# (genjax.metrics.distances: `block` rows of float64 distances, with about
# three temporaries of that size at once); with Inception, its 2048 pool3
# features (and their concatenation).
_KNN_BLOCK_ROWS = 2000


def sample_bytes(num: int, image_shape, num_classes: int, use_inception: bool) -> int:
  """About the most memory scoring `num` samples takes at once (a lower bound)."""
  dims = features.Classifier.feature_dim
  per = (math.prod(image_shape) + 2 * 4 * (dims + max(num_classes, 1)) + 8 * dims
         + 4 * 8 * _KNN_BLOCK_ROWS)
  if use_inception:
    per += 2 * 4 * inception.FEATURE_DIM
  return num * per


def check_num_fits(num: int, image_shape, num_classes: int, use_inception: bool) -> None:
  """Refuses a --num whose samples, features and k-NN blocks would not fit in
  the host's memory, before anything is loaded."""
  if not num:
    return
  needed = sample_bytes(num, image_shape, num_classes, use_inception)
  free, where = memory.host_available()
  if needed > free:
    fit = free // sample_bytes(1, image_shape, num_classes, use_inception)
    raise ValueError(
        f"--num={num}: scoring {num} samples {tuple(image_shape)} needs about "
        f"{memory.describe(needed)} of memory (the images, their features and the k-NN "
        f"distances of precision/recall), but {memory.describe(free)} is free ({where}); at "
        f"most --num={fit} fits (10,000 is the usual number).")


def evaluate(workdir, num: int = 10000, seed: int = 0, checkpoint="latest", floor: bool = True,
             iwae_k: int = 5000, chunk: int = 25, num_test: int = 0, use_inception: bool = True,
             inception_weights=None, member: int | None = None) -> dict:
  """The measures of one run's checkpoint (module docstring). For a
  population run (genjax.train.population), `member` picks one member; without
  it every healthy member is measured with the same keys, and `summary`
  gives each number's mean, std, min and max over the members."""
  check_num(num)
  start = time.perf_counter()
  run_config, info = rundir.read(workdir)
  rundir.check_member(run_config, member)
  check_num_fits(num, info["image_shape"], info["num_classes"], use_inception)
  inception_unavailable = None
  if use_inception:  # the weights file is found and hash-checked before any work
    try:
      inception.check_weights_file(inception_weights)
    except inception.InceptionUnavailable as e:
      if inception_weights:  # a file the user named must be usable
        raise ValueError(f"--inception_weights: {e}") from e
      inception_unavailable = f"unavailable: {e}"
  diverged = None
  if member is None:
    config, family, state = rundir.restore(workdir, checkpoint)
  else:
    config, family, state, diverged = rundir.restore_member(workdir, checkpoint, member)
  test = family.load_split(config, "test")
  result = {"workdir": str(workdir), "checkpoint": str(checkpoint), "step": int(state.step),
            "family": config.family, "dataset": config.data.name, "data_source": test.source}
  if member is not None:
    result["member"] = member
  if diverged:  # measured as asked, and marked: its numbers are not of a trained model
    _log(f"WARNING: {diverged['message']} It is measured as that state.")
    result.update(diverged=True, diverged_at_step=diverged["diverged_at_step"],
                  note=diverged["message"])
  key = jax.random.key(seed)

  scorer = None
  if family.sample is not None and not num:
    result["sample_metrics"] = "skipped (--num 0)"
  elif family.sample is not None:  # a generator of new images (not a translator)
    try:
      scorer = _scorer(config, test, seed, use_inception, inception_weights)
    except features.FeatureNetworkError as e:
      result["sample_metrics"] = f"unavailable: {e}"
  network = reference = None
  if scorer is not None:
    result["features"] = scorer.identity
    record = scorer.network.record
    if "test_accuracy" in record:  # a classifier's, with its accuracy
      keys = ("sha256", "test_accuracy", "data_source") + (
          ("task", "test_images", "chance") if "task" in record else ())  # a folder's own
      result["feature_network"] = {k: record[k] for k in keys}
    if inception_unavailable:
      result["inception"] = inception_unavailable
    elif use_inception and not folder_features.is_folder(config.data):
      # (A folder's scorer is Inception itself where its weights are here.)
      network = inception.load(inception_weights)
      result["inception"] = {"weights": str(network.path), "sha256": network.sha256}
      reference = distances.feature_statistics(
          _inception_features(network, test.images, "test split"))
    if floor:
      whole = config.copy_and_resolve_references()
      if "limit" in whole.data:  # the floor is the data's, not a run's few images
        whole.data.limit = 0
      train = family.load_split(whole, "train")
      rng = np.random.default_rng(seed)
      real = train.images[rng.choice(len(train), min(num, len(train)), replace=False)]
      _log(f"Scoring {len(real)} training images (the floor)...")
      result["floor_train_vs_test"] = _score(scorer, real, network, reference, "floor")
  if scorer is None and family.evaluate_metrics is None:
    raise ValueError(f"Nothing to evaluate for this {config.family!r} run: "
                     + result.get("sample_metrics", "").removeprefix("unavailable: "))

  def measure(config, state) -> dict:
    out = {}
    if scorer is not None:
      _log(f"Scoring {num} samples against {len(test)} test images...")
      fakes = sampling.draw(family.sample, state, config, num, jax.random.fold_in(key, 0))
      out["samples"] = _score(scorer, fakes, network, reference, "samples")
    if family.evaluate_metrics is not None:
      family_test = test.take(num_test)
      options = {"iwae_k": iwae_k, "chunk": chunk}
      with tqdm.tqdm(total=len(family_test), unit="image", file=sys.stderr) as bar:
        out.update(family.evaluate_metrics(
            state, config, family_test, jax.random.fold_in(key, 1),
            progress=lambda done: bar.update(done - bar.n),
            **{name: options[name] for name in family.metric_options}))
    return out

  if member is not None or not members_lib.active(config):
    result.update(measure(config, state))
  else:
    members = members_lib.members_of(config)
    healthy = np.asarray(jax.device_get(state.healthy))
    recorded = None if healthy.all() else rundir.recorded_divergences(workdir, int(state.step))
    result["members"] = []
    for m in range(len(members)):
      entry = {"member": m, "seed": members.seeds[m],
               **{k: v[m] for k, v in members.swept.items()}}
      if not healthy[m]:  # frozen at its last finite state: not measured
        diverged = rundir.divergence(workdir, state, m, recorded)
        entry.update(diverged=True, diverged_at_step=diverged["diverged_at_step"])
        _log(f"Not measured: {diverged['message']}")
      else:
        _log(f"Measuring {members.describe(m)}...")
        entry.update(measure(members.configs[m], population.member_state(state, m)))
      result["members"].append(entry)
    result["summary"] = _summary([e for e in result["members"] if not e.get("diverged")])
  result["seconds"] = round(time.perf_counter() - start, 1)
  return result


def _scorer(config, test, seed: int, use_inception: bool, inception_weights) -> scores.Scorer:
  """The scorer of a run's samples against its test split: in the dataset's
  committed classifier, or for a folder in Inception or the folder's own network."""
  network = None
  if folder_features.is_folder(config.data):
    network = folder_features.choose(config.data, inception_weights, use_inception)
  return scores.Scorer(config.data.name, test.images, seed=seed, network=network)


def _score(scorer, images, network, reference, what: str) -> dict:
  out = scorer(images)
  if network is not None:
    stats = distances.feature_statistics(_inception_features(network, images, what))
    out["inception_fid"] = distances.frechet_distance(*stats, *reference)
  return out


def _numbers(tree, prefix="") -> dict:
  """{'samples.fid': 12.3, ...}: the numeric leaves of a result dict."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_numbers(v, f"{prefix}{k}."))
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
      out[f"{prefix}{k}"] = v
  return out


def _summary(entries: list[dict]) -> dict:
  """{metric: {mean, std, min, max}} over the members' results (std None,
  null in JSON, over a single member)."""
  skip = {"member", "seed", "diverged_at_step"}
  values = {}
  for entry in entries:
    for k, v in _numbers(entry).items():
      if k not in skip:
        values.setdefault(k, []).append(v)
  return {k: members_lib.summarize(v) for k, v in values.items() if len(v) == len(entries)}


def define_flags():
  """The command-line flags; defined only when run as a program, so that
  importing this module leaves the importer's flags alone."""
  flags.DEFINE_string("workdir", None, "A run directory written by an experiment.", required=True)
  flags.DEFINE_string("checkpoint", "latest", "'latest', 'best' (lowest FID) or a step number.")
  flags.DEFINE_integer("num", 10000, "Generated samples to score (and training images for the "
                       "floor); 0 = none, only the family's own measures (a VAE's NLL).")
  flags.DEFINE_integer("seed", 0, "Seed of the samples, KID subsets and binarisation.")
  flags.DEFINE_bool("floor", True, "Also score training images against the test split.")
  flags.DEFINE_integer("iwae_k", 5000, "VAEs: importance samples per test image; 0 = skip.")
  flags.DEFINE_integer("chunk", 25, "VAEs: importance samples per compiled call (bounds memory).")
  flags.DEFINE_integer("num_test", 0, "Test images for the family's own measures; 0 = all.")
  flags.DEFINE_bool("inception", True, "Also the standard Inception FID, where its weights "
                    "are on disk (genjax.metrics.inception).")
  flags.DEFINE_integer("member", None, "Population runs: the member to measure (default: "
                       "every member, then the mean, std, min and max of each number).")
  flags.DEFINE_string("inception_weights", None, "pytorch-fid's pt_inception-2015-12-05-"
                      "6726825d.pth (default: $GENJAX_INCEPTION_WEIGHTS, then the torch.hub cache).")


def main(argv):
  del argv
  runtime.configure()
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  try:
    check_num(FLAGS.num)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if FLAGS.chunk < 1:
    raise app.UsageError(f"--chunk={FLAGS.chunk} must be >= 1.")
  if not 0 <= FLAGS.seed < 2**63:
    raise app.UsageError(f"--seed={FLAGS.seed} must be in [0, 2**63).")
  for name in ("iwae_k", "num_test"):
    if FLAGS[name].value < 0:
      raise app.UsageError(f"--{name}={FLAGS[name].value} must be >= 0.")
  try:
    result = evaluate(FLAGS.workdir, FLAGS.num, FLAGS.seed, rundir.parse_checkpoint(FLAGS.checkpoint),
                      FLAGS.floor, FLAGS.iwae_k, FLAGS.chunk, FLAGS.num_test,
                      FLAGS.inception, FLAGS.inception_weights, FLAGS.member)
  except (FileNotFoundError, ValueError, data.DatasetUnavailableError,
          checkpoint.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  define_flags()
  app.run(main)
