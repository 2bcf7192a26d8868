"""A user's folder scored in its own features: a network trained on the
folder's images, chosen by genjax.evaluate and the loop, named in results,
and never compared with numbers in other features."""

import json

import ml_collections
import numpy as np
import pytest
from PIL import Image, ImageDraw

from experiments import gan_folder
from genjax import data, evaluate
from genjax.metrics import features, folder_features, inception, scores, train_classifier
from genjax.train import loop

SHAPES = ("circle", "square", "triangle")


def write_shapes(root, per_class: int = 100, size: int = 32, seed: int = 0) -> None:
  """3 classes of coloured shapes at random places and sizes on grey: circles
  mostly red, squares mostly green, triangles mostly blue."""
  rng = np.random.default_rng(seed)
  for c, label in enumerate(SHAPES):
    (root / label).mkdir(parents=True)
    for i in range(per_class):
      fore = [int(v) for v in rng.integers(0, 120, 3)]
      fore[c] = int(rng.integers(180, 256))
      image = Image.new("RGB", (size, size), (int(rng.integers(0, 100)),) * 3)
      draw = ImageDraw.Draw(image)
      r = rng.uniform(0.22, 0.4) * size
      x, y = rng.uniform(r, size - r, 2)
      box = (x - r, y - r, x + r, y + r)
      if label == "circle":
        draw.ellipse(box, fill=tuple(fore))
      elif label == "square":
        draw.rectangle(box, fill=tuple(fore))
      else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=tuple(fore))
      image.save(root / label / f"{i:03d}.png")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
  """(data config, saved record) of a 300-image shapes folder and its trained network."""
  root = tmp_path_factory.mktemp("shapes")
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("GENJAX_CACHE", str(root / "cache"))
    patch.setenv("TORCH_HOME", str(root / "torch"))  # no Inception weights here
    patch.delenv(inception.ENV_VAR, raising=False)
    write_shapes(root / "images")
    config = ml_collections.ConfigDict({
        "path": str(root / "images"), "image_size": 32, "channels": 3, "labels": "folders",
        "test_percent": 20, "background": "white"})
    params, record = train_classifier.train_folder(config, epochs=6, batch_size=32, lr=3e-3,
                                                   log=lambda m: None)
    record = features.save(folder_features.NAME, params, record,
                           folder_features.network_dir(config))
    yield config, record, root


@pytest.fixture
def env(shapes, monkeypatch):
  monkeypatch.setenv("GENJAX_CACHE", str(shapes[2] / "cache"))
  monkeypatch.setenv("TORCH_HOME", str(shapes[2] / "torch"))
  monkeypatch.delenv(inception.ENV_VAR, raising=False)
  return shapes


def test_the_folders_network_learns_its_classes_and_ranks_real_above_noise(env):
  config, record, _ = env
  assert record["task"] == "classes" and record["num_classes"] == 3
  assert record["test_images"] >= 40 and record["chance"] < 0.5
  assert record["test_accuracy"] >= 0.9, record  # clearly better than chance (about 1/3)
  assert record["train_seconds"] < 60
  network = folder_features.choose(config)  # no Inception weights: the folder's own
  assert network.identity["sha256"] == record["sha256"]
  assert network.identity["file"].endswith("folder.msgpack")
  test = data.load_from_config(folder_features.reading(config), "test")
  train = data.load_from_config(folder_features.reading(config), "train")
  scorer = scores.Scorer("folder", test.images, kid_subsets=10, network=network)
  noise = np.random.default_rng(0).integers(0, 256, train.images.shape, np.uint8)
  real, fake = scorer(train.images), scorer(noise)
  assert real["fid"] < fake["fid"] / 5 and real["kid"] < fake["kid"], (real, fake)
  assert real["recall"] > fake["recall"] + 0.5, (real, fake)  # noise covers few real images


def test_a_changed_folder_has_no_network_and_says_which_command_trains_one(env, tmp_path):
  config, _, root = env
  changed = ml_collections.ConfigDict(config.to_dict())
  changed.background = "black"  # the same files read otherwise: another key
  assert folder_features.folder_key(changed) != folder_features.folder_key(config)
  with pytest.raises(features.FeatureNetworkError,
                     match=r"No feature network for the folder .*train_classifier --folder "
                           r".*--background black"):
    folder_features.choose(changed)


def test_inception_weights_when_given_are_the_features_instead(env, monkeypatch, tmp_path):
  config, _, _ = env
  weights = tmp_path / inception.FILE_NAME

  class Fake:
    path, sha256 = weights, "ab" * 32

    def __call__(self, images, progress=None):
      return np.asarray(images, np.float64).reshape(len(images), -1)[:, :8]

  monkeypatch.setattr(inception, "check_weights_file", lambda path=None: weights)
  monkeypatch.setattr(inception, "load", lambda path=None: Fake())
  network = folder_features.choose(config, weights)
  assert network.identity == {"name": network.identity["name"], "file": str(weights),
                              "sha256": "ab" * 32} and "Inception" in network.identity["name"]
  assert isinstance(folder_features.choose(config, use_inception=False), features.FeatureNetwork)


def test_evaluate_and_the_loop_score_a_folder_run_in_its_features_and_never_mix(env, tmp_path):
  config, record, root = env
  run = gan_folder.get_config("tiny")
  run.data.update({k: config[k] for k in ("path", "image_size", "labels", "test_percent",
                                          "background")})
  run.num_steps, run.metrics_num_samples = 10, 64
  workdir = tmp_path / "run"
  loop.train_and_evaluate(run, workdir)
  used = json.loads((workdir / "features.json").read_text())  # the loop's FIDs were in them
  assert used["sha256"] == record["sha256"]

  result = evaluate.evaluate(workdir, num=64, floor=False)
  assert result["features"] == used and "fid" in result["samples"]
  assert result["feature_network"]["task"] == "classes"
  assert result["inception"].startswith("unavailable")  # why the folder's own were used

  (workdir / "features.json").write_text(json.dumps({**used, "sha256": "0" * 64,
                                                     "name": "other features"}))
  run.num_steps = 20
  with pytest.raises(scores.FeatureMismatch, match=r"records FIDs in other features.*not "
                                                   r"comparable"):
    loop.train_and_evaluate(run, workdir)


def test_without_classes_the_network_learns_rotations_of_each_image():
  images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), np.uint8)
  turned = train_classifier.rotations(data.ArrayDataset(images, np.zeros(5, np.int32), 1, "x"))
  assert turned.num_classes == 4 and len(turned) == 20
  assert list(turned.labels) == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
  assert (turned.images[:5] == images).all()
  assert (turned.images[7] == np.rot90(images[2], 1)).all()  # 90 degrees, anticlockwise
  assert (np.rot90(turned.images[17], 1) == images[2]).all()  # 270 and 90 more: upright
  assert train_classifier.folder_widths(32) == (32, 64)
  assert train_classifier.folder_widths(128) == (32, 64, 64, 64)  # 8x8 maps at the features
