"""The committed feature networks and sample scores on real images."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from genjax import checkpoint, data, evaluate
from genjax.train import loop
from genjax.train import workdir as rundir
from genjax.metrics import features, inception, scores
from tests.conftest import full_mnist_dir

ROOT = Path(__file__).resolve().parents[1]


def test_classifier_score_bounds():
  k = 10
  # Every sample the same soft prediction: score 1.
  same = np.tile(np.random.default_rng(0).normal(size=k), (500, 1))
  np.testing.assert_allclose(scores.classifier_score(same), 1.0, rtol=1e-9)
  # Confident predictions, each class equally often: score k.
  confident = np.full((500, k), -1e4)
  confident[np.arange(500), np.arange(500) % k] = 0.0
  np.testing.assert_allclose(scores.classifier_score(confident), k, rtol=1e-6)
  # All confident in one class: 1 again (no diversity).
  one_class = np.full((500, k), -1e4)
  one_class[:, 3] = 0.0
  np.testing.assert_allclose(scores.classifier_score(one_class), 1.0, rtol=1e-6)
  shares = scores.class_shares(confident[:100], k)
  assert len(shares) == k and abs(sum(shares) - 1) < 1e-9 and max(shares) == 0.1


def test_weights_with_another_hash_are_refused(tmp_path):
  for suffix in (".msgpack", ".json"):
    shutil.copy(features.weights_path("mnist").with_suffix(suffix), tmp_path)
  path = features.weights_path("mnist", tmp_path)
  good = features.KNOWN_WEIGHTS["mnist"]
  assert features.load("mnist", tmp_path, good).record["dataset"] == "mnist"
  raw = bytearray(path.read_bytes())
  raw[-1] ^= 1  # one bit of one weight
  path.write_bytes(bytes(raw))
  with pytest.raises(features.FeatureNetworkError, match=f"sha256 .* defined with {good}"):
    features.load("mnist", tmp_path, good)


def test_unknown_dataset_says_how_to_train_a_feature_network():
  with pytest.raises(features.FeatureNetworkError,
                     match="No feature network.*'cifar10'.*train_classifier --dataset cifar10"):
    features.load("cifar10")


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_committed_classifier_accuracy_on_real_test_images(dataset, request):
  # MNIST: the whole test split (10,000 digits); Fashion-MNIST: 500 of its test images.
  folder = full_mnist_dir() if dataset == "mnist" else request.getfixturevalue("fashion_mnist_slice")
  network = features.load(dataset)
  test = data.load(dataset, "test", idx_dir=str(folder), data_dir=str(request.getfixturevalue("tfds_dir")),
                   download=False)
  logits, feats = network(test.images)
  accuracy = float(np.mean(logits.argmax(1) == test.labels))
  assert feats.shape == (len(test), 128)
  if dataset == "mnist":  # the very images the record was measured on
    assert len(test) == 10000 and abs(accuracy - network.record["test_accuracy"]) < 1e-3
  else:  # the recorded accuracy is over the whole test split; the slice is 500 of them
    assert accuracy >= network.record["test_accuracy"] - 0.02, (accuracy, network.record)
  assert network.record["test_accuracy"] >= (0.91 if dataset == "fashion_mnist" else 0.99)


def test_mnist_classifier_reads_the_embedded_digits(mnist_idx_dir, tfds_dir):
  # These 5,000 digits come from MNIST's training split, which the network was
  # trained on: a check that the subset runs score in the same feature space,
  # not a measure of accuracy.
  network = features.load("mnist")
  test = data.load("mnist", "test", idx_dir=str(mnist_idx_dir), data_dir=str(tfds_dir),
                   download=False)
  logits, _ = network(test.images)
  assert np.mean(logits.argmax(1) == test.labels) >= 0.99


@pytest.fixture(scope="module")
def mnist_sets(mnist_idx_dir, tfds_dir):
  kw = dict(idx_dir=str(mnist_idx_dir), data_dir=str(tfds_dir), download=False)
  return data.load("mnist", "train", **kw), data.load("mnist", "test", **kw)


def test_scores_rank_real_above_corrupted_digits(mnist_sets):
  train, test = mnist_sets
  scorer = scores.Scorer("mnist", test.images, kid_subsets=20)
  rng = np.random.default_rng(0)
  images = train.images[rng.permutation(len(train))[:2000]]  # the split is sorted by class
  real = scorer(images)
  noisy = scorer(np.clip(images + rng.normal(0, 60, images.shape), 0, 255).astype(np.uint8))
  only_ones = scorer(train.images[train.labels == 1][:500])
  assert real["fid"] < 0.2 * noisy["fid"], (real["fid"], noisy["fid"])
  assert real["kid"] < 0.2 * noisy["kid"] and real["recall"] > noisy["recall"]
  assert real["classifier_score"] > 8.5  # 10 balanced, confidently classified classes
  # One class only: precision stays near that of a real sample, recall and the score collapse.
  assert only_ones["precision"] > 0.85 * real["precision"] and only_ones["recall"] < 0.3
  assert only_ones["classifier_score"] < 1.5 and only_ones["class_shares"][1] > 0.95
  assert real["coverage"] > only_ones["coverage"]
  # The test split against itself.
  assert abs(scorer(test.images)["fid"]) < 1e-3  # of a trace in the thousands


def test_scores_do_not_depend_on_sample_order(mnist_sets):
  train, test = mnist_sets
  scorer = scores.Scorer("mnist", test.images, kid_subsets=5)
  images = train.images[::7][:600]
  a = scorer(images)
  b = scorer(images[np.random.default_rng(1).permutation(600)])
  for name in ("fid", "precision", "recall", "density", "coverage", "classifier_score"):
    np.testing.assert_allclose(a[name], b[name], rtol=1e-6, err_msg=name)


def test_loop_logs_fid_and_keeps_best_checkpoint(tiny_gan_config, tmp_path):
  config = tiny_gan_config
  config.num_steps, config.eval_every, config.checkpoint_every = 30, 10, 30
  config.keep_checkpoints = 1
  config.metrics_num_samples = 200
  loop.train_and_evaluate(config, tmp_path)
  events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  events.Reload()
  fids = {e.step: e.value for e in events.Scalars("eval/fid")}
  assert sorted(fids) == [10, 20, 30] and set(events.Tags()["scalars"]) >= {"eval/kid"}
  best_step = min(fids, key=fids.get)
  best = checkpoint.Checkpointer(tmp_path / "best_checkpoint", 1, best_metric="fid")
  assert best.best()[0] == best_step
  np.testing.assert_allclose(best.best()[1], fids[best_step], rtol=1e-5)
  best.close()
  _, _, state = rundir.restore(tmp_path, "best")
  assert int(state.step) == best_step


def test_evaluate_cli_scores_a_gan_run(tiny_gan_config, tmp_path, monkeypatch):
  loop.train_and_evaluate(tiny_gan_config, tmp_path)
  no_inception = dict(os.environ, PYTHONPATH=str(ROOT), TORCH_HOME=str(tmp_path / "torch"),
                      GENJAX_INCEPTION_WEIGHTS="")
  proc = subprocess.run(
      [sys.executable, "-m", "genjax.evaluate", f"--workdir={tmp_path}", "--num=300"],
      capture_output=True, text=True, cwd=ROOT, timeout=300, env=no_inception)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout)
  # No Inception weights on disk: said so, with where to put them; no number.
  assert result["inception"].startswith("unavailable: no Inception weights at ")
  assert "pt_inception-2015-12-05-6726825d.pth" in result["inception"]
  assert "inception_fid" not in result["samples"]
  samples, floor = result["samples"], result["floor_train_vs_test"]
  assert result["step"] == 20 and samples["num_samples"] == 300 and floor["num_samples"] == 300
  assert result["feature_network"]["sha256"] == features.KNOWN_WEIGHTS["mnist"]
  # 20 steps of a tiny GAN are far from real digits.
  assert floor["fid"] < 0.2 * samples["fid"] and floor["recall"] > samples["recall"]
  assert len(samples["class_shares"]) == 10 and abs(sum(samples["class_shares"]) - 1) < 1e-4
  # A step that does not exist is named.
  proc = subprocess.run(
      [sys.executable, "-m", "genjax.evaluate", f"--workdir={tmp_path}", "--checkpoint=7"],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 1 and "No checkpoint for step 7" in proc.stderr, proc.stderr[-2000:]
  # A weights file the user names must exist and be pytorch-fid's, and is
  # checked before the checkpoint is even restored.
  with pytest.raises(ValueError, match=f"--inception_weights: no Inception weights at {tmp_path}/missing.pth"):
    evaluate.evaluate(tmp_path, num=50, floor=False, inception_weights=tmp_path / "missing.pth")
  (tmp_path / "other.pth").write_bytes(b"not the weights")
  with monkeypatch.context() as m:
    m.setattr(rundir, "restore", lambda *a: pytest.fail("restored before checking the weights"))
    with pytest.raises(ValueError, match=f"--inception_weights: {tmp_path}/other.pth has sha256 "
                                         f"[0-9a-f]{{64}}, not {inception.SHA256}"):
      evaluate.evaluate(tmp_path, num=50, inception_weights=tmp_path / "other.pth")

  # With a network (here a stand-in: pixels as features, since the real weights
  # are not in the repository), the Inception FID of samples and floor is reported.
  class PixelFeatures:
    path, sha256 = "stand-in", "-"

    def __call__(self, images, progress=None):
      progress(len(images))
      return images.reshape(len(images), -1)[:, ::4].astype(np.float64)

  monkeypatch.setattr(inception, "check_weights_file", lambda path=None: Path("stand-in"))
  monkeypatch.setattr(inception, "load", lambda path=None: PixelFeatures())
  result = evaluate.evaluate(tmp_path, num=300)
  assert result["inception"] == {"weights": "stand-in", "sha256": "-"}
  assert 0 < result["floor_train_vs_test"]["inception_fid"] < result["samples"]["inception_fid"]


def test_affine_augmentation_moves_digits_and_is_identity_at_zero(mnist_sets):
  import jax
  import jax.numpy as jnp

  from genjax.metrics import train_classifier

  train, _ = mnist_sets
  x = jnp.asarray(train.images[::450]).astype(jnp.float32) / 127.5 - 1
  key = jax.random.key(0)
  still = train_classifier.augment_affine(key, x, max_degrees=0.0, max_scale=0.0, max_shift=0.0)
  np.testing.assert_allclose(still, x, atol=1e-6)
  moved = np.asarray(train_classifier.augment_affine(key, x))
  assert moved.min() >= -1.0 and moved.max() <= 1.0
  changed = np.mean(np.abs(moved - np.asarray(x)) > 0.1, axis=(1, 2, 3))
  assert np.all(changed > 0.02), changed  # every digit moved
  # Ink is kept: a 12-degree turn and a 10% scaling do not erase the digit.
  ink = lambda im: (im > 0).sum(axis=(1, 2, 3))
  assert np.all(np.abs(ink(moved) / ink(np.asarray(x)) - 1) < 0.35)


def test_elastic_field_is_smooth_and_of_the_stated_size():
  import jax

  from genjax.metrics import train_classifier

  field = np.asarray(train_classifier.elastic_field(jax.random.key(0), (64, 28, 28), 34.0, 4.0))
  assert field.shape == (64, 28, 28, 2)
  rms = np.sqrt(np.mean(field ** 2))
  assert 0.8 < rms < 2.0, rms  # a pixel or so, as in Simard et al. (alpha 34, sigma 4)
  # Smooth: neighbouring pixels move almost together (white noise would not).
  step = np.sqrt(np.mean(np.diff(field, axis=1) ** 2))
  assert step < 0.3 * rms, (step, rms)
  still = train_classifier.elastic_field(jax.random.key(0), (2, 28, 28), 0.0, 4.0)
  np.testing.assert_allclose(still, 0.0)


def test_elastic_augmentation_moves_every_digit_and_keeps_its_ink(mnist_sets):
  import jax
  import jax.numpy as jnp

  from genjax.metrics import train_classifier

  train, _ = mnist_sets
  x = jnp.asarray(train.images[::450]).astype(jnp.float32) / 127.5 - 1
  key = jax.random.key(1)
  still = dict(max_degrees=0.0, max_scale=0.0, max_shift=0.0)
  bent = np.asarray(train_classifier.augment_affine(key, x, elastic_alpha=34.0, **still))
  changed = np.mean(np.abs(bent - np.asarray(x)) > 0.1, axis=(1, 2, 3))
  assert np.all(changed > 0.02), changed  # the distortion alone moves every digit
  # Strokes are stretched and squeezed (ink changes by up to a third or so),
  # not erased or smeared over the image.
  ink = lambda im: (im > 0).sum(axis=(1, 2, 3))
  ratio = ink(bent) / ink(np.asarray(x))
  assert np.all((0.5 < ratio) & (ratio < 1.6)), ratio


def test_folds_keep_a_part_out_of_training_and_never_read_the_test_split(mnist_idx_dir, tfds_dir):
  from genjax.metrics import train_classifier

  _, record = train_classifier.train("mnist", 1, 128, 1e-3, 0, str(tfds_dir), str(mnist_idx_dir),
                                     log=lambda m: None, folds=9, fold=8, dropout=0.5,
                                     augmentation="elastic")
  assert record["train_images"] == 4000 and record["validation_images"] == 500
  assert 0.7 < record["validation_accuracy"] <= 1.0  # one epoch already learns digits
  assert "test_accuracy" not in record  # recipes are chosen without the test split
  with pytest.raises(ValueError, match="folds=3, fold=3: need 1 < folds <= 4500"):
    train_classifier.train("mnist", 1, 128, 1e-3, 0, str(tfds_dir), str(mnist_idx_dir),
                           folds=3, fold=3)
  with pytest.raises(ValueError, match="augmentation='elastc': choose from"):
    train_classifier.train("mnist", 1, 128, 1e-3, 0, str(tfds_dir), str(mnist_idx_dir),
                           augmentation="elastc")


def test_folds_partition_the_training_split(monkeypatch):
  """Every training image is left out exactly once over the folds."""
  from genjax import data
  from genjax.metrics import train_classifier

  n = 1000
  images = np.zeros((n, 28, 28, 1), np.uint8)  # image i carries i in its first two pixels
  images[:, 0, 0, 0], images[:, 0, 1, 0] = np.arange(n) // 256, np.arange(n) % 256
  tagged = data.ArrayDataset(images, np.arange(n) % 10, 10, "tagged")
  monkeypatch.setattr(data, "load", lambda *a, **k: tagged)
  held_out = []
  real_accuracy = train_classifier.accuracy

  def note_validation(network, dataset):
    if len(dataset) < n // 2:
      held_out.extend(dataset.images[:, 0, 0, 0].astype(int) * 256 + dataset.images[:, 0, 1, 0])
    return real_accuracy(network, dataset)

  monkeypatch.setattr(train_classifier, "accuracy", note_validation)
  result = train_classifier.cross_validate("mnist", 3, log=lambda m: None, epochs=1,
                                           batch_size=128, lr=1e-3, seed=0)
  assert result["validation_images"] == n and len(result["fold_accuracies"]) == 3
  assert sorted(held_out) == list(range(n))


def test_feature_network_for_32x32_rgb_trains_saves_and_loads_checked(tmp_path, monkeypatch):
  # CIFAR-10 cannot be had offline, so its weights are not committed; the path
  # that would make them (32x32 RGB, flips for such classes) runs on
  # synthetic images whose class is a colour and a stripe direction.
  from genjax.metrics import train_classifier

  def synthetic(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]] * 2, np.float32)
    stripes = np.sin(np.arange(32) / 2.0)
    images = np.empty((n, 32, 32, 3), np.float32)
    for i, c in enumerate(labels):
      pattern = stripes[:, None] if c < 5 else stripes[None, :]  # rows or columns
      images[i] = (0.5 + 0.25 * pattern)[..., None] * colours[c]
    images += rng.normal(0, 0.05, images.shape)
    return data.ArrayDataset(np.clip(images * 255, 0, 255).astype(np.uint8), labels, 10, "synthetic")

  splits = {"train": synthetic(1280, 0), "test": synthetic(320, 1)}
  monkeypatch.setattr(train_classifier.data, "load", lambda name, split, **_: splits[split])
  params, record = train_classifier.train("cifar10", 2, 64, 3e-3, 0)
  assert record["image_shape"] == [32, 32, 3] and "horizontal flip" in record["augmentation"]
  assert record["test_accuracy"] > 0.9, record
  saved = features.save("cifar10", params, record, tmp_path)
  network = features.load("cifar10", tmp_path, expected_sha256=saved["sha256"])
  logits, feats = network(splits["test"].images)
  assert feats.shape == (320, 128)
  assert np.mean(logits.argmax(1) == splits["test"].labels) == pytest.approx(record["test_accuracy"])
  with pytest.raises(features.FeatureNetworkError, match="sha256"):
    features.load("cifar10", tmp_path, expected_sha256="0" * 64)
