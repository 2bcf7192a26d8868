"""Trains the feature network of a dataset; writes genjax/metrics/weights/<dataset>.*

  python -m genjax.metrics.train_classifier --dataset fashion_mnist
  python -m genjax.metrics.train_classifier --dataset mnist --epochs 60 --augment elastic
  python -m genjax.metrics.train_classifier --dataset mnist --folds 3   # choose a recipe
  python -m genjax.metrics.train_classifier --workdir runs/gan_folder   # a run's folder
  python -m genjax.metrics.train_classifier --folder ~/photos --image_size 64 --labels folders

`--workdir` or `--folder` trains the feature network of a user's image
folder instead (genjax.metrics.folder_features): a classifier of its
classes, or without classes a rotation predictor, on the folder's training
split as the run reads it, scored on its test split, and kept in
~/.cache/genjax/features/<key of the folder's content>/.

Adam with cosine decay, a fixed seed and random 2-pixel shifts (and
horizontal flips for datasets whose classes allow them) or, with
`--augment affine`, random rotations, scalings and shifts, and with
`--augment elastic` elastic distortions on top (Simard et al. 2003).
`--dropout` drops feature units before the classifier layer while training.
Prints the test accuracy and the sha256 to put in
genjax.metrics.features.KNOWN_WEIGHTS.

`--folds K` cross-validates the recipe instead: K runs, each trained on all
but one K-th of the training split and scored on that K-th, and prints the
accuracy on all the training images so predicted. It writes no weights and
never looks at the test split: recipes are chosen by it, so that the test
accuracy stays an honest figure.
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags, logging

from genjax import data
from genjax import images as images_lib
from genjax import runtime
from genjax.metrics import features, folder_features

FLIP_DATASETS = {"fashion_mnist", "cifar10"}  # classes unchanged by a horizontal flip


def augment(key, images, flip: bool):
  """Random shifts of up to 2 pixels (zero padding at -1) and optional flips."""
  padded = jnp.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
  return images_lib.random_crop_flip(padded, key, images.shape[1], flip)


def elastic_field(key, shape, alpha: float, sigma: float):
  """Smooth random displacements [B, H, W, 2] in pixels: uniform noise in
  [-1, 1] blurred by a Gaussian of width `sigma`, times `alpha` (Simard et
  al. 2003)."""
  b, h, w = shape
  noise = jax.random.uniform(key, (b, h, w, 2), minval=-1.0, maxval=1.0)

  def blur_matrix(n):  # [n, n]: a 'same' Gaussian convolution with zero padding
    offsets = jnp.arange(n)[:, None] - jnp.arange(n)[None, :]
    kernel = jnp.exp(-0.5 * (jnp.arange(-3 * sigma, 3 * sigma + 1) / sigma) ** 2)
    return jnp.where(jnp.abs(offsets) <= 3 * sigma, jnp.exp(-0.5 * (offsets / sigma) ** 2),
                     0.0) / kernel.sum()

  return alpha * jnp.einsum("yi,xj,bijc->byxc", blur_matrix(h), blur_matrix(w), noise)


def augment_affine(key, images, max_degrees: float = 12.0, max_scale: float = 0.1,
                   max_shift: float = 2.0, elastic_alpha: float = 0.0,
                   elastic_sigma: float = 4.0):
  """Random rotation, scaling and shift of each image about its centre,
  plus elastic distortion where `elastic_alpha` > 0 (bilinear, -1 outside
  the image)."""
  b, h, w, c = images.shape
  k_rot, k_scale, k_shift = jax.random.split(key, 3)
  if elastic_alpha > 0:
    field = elastic_field(jax.random.fold_in(key, 3), (b, h, w), elastic_alpha, elastic_sigma)
  else:
    field = jnp.zeros((b, h, w, 2))
  angle = jnp.deg2rad(jax.random.uniform(k_rot, (b,), minval=-max_degrees, maxval=max_degrees))
  scale = jax.random.uniform(k_scale, (b,), minval=1 - max_scale, maxval=1 + max_scale)
  shift = jax.random.uniform(k_shift, (b, 2), minval=-max_shift, maxval=max_shift)
  cy, cx = (h - 1) / 2, (w - 1) / 2
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")

  def one(image, angle, scale, shift, field):
    y, x = yy - cy - shift[0], xx - cx - shift[1]  # output pixel -> source pixel
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src_y = (cos * y + sin * x) / scale + cy + field[..., 0]
    src_x = (-sin * y + cos * x) / scale + cx + field[..., 1]
    warp = lambda channel: jax.scipy.ndimage.map_coordinates(
        channel, [src_y, src_x], order=1, mode="constant", cval=-1.0)
    return jax.vmap(warp, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(one)(images, angle, scale, shift, field)


def accuracy(network: features.FeatureNetwork, dataset: data.ArrayDataset) -> float:
  logits, _ = network(dataset.images)
  return float(np.mean(logits.argmax(-1) == dataset.labels))


AUGMENTATIONS = {
    "shift": "shift<=2px",
    "affine": "affine: rotation<=12deg, scale 0.9-1.1, shift<=2px",
    "elastic": "affine: rotation<=12deg, scale 0.9-1.1, shift<=2px; elastic: alpha 34, sigma 4",
}


def fit(train_data: data.ArrayDataset, epochs: int, batch_size: int, lr: float, seed: int,
        augmentation: str = "shift", widths: tuple[int, ...] = (32, 64), dropout: float = 0.0,
        flip: bool = False, log=print):
  """(params, seconds) of a Classifier trained on `train_data`'s images and labels:
  Adam with cosine decay, `augmentation` of each batch, a fixed seed."""
  model = features.Classifier(num_classes=train_data.num_classes, widths=widths, dropout=dropout)
  init_key, data_key, aug_key = jax.random.split(jax.random.key(seed), 3)
  params = model.init(init_key, jnp.zeros((1, *train_data.images.shape[1:])))["params"]
  steps_per_epoch = len(train_data) // batch_size
  num_steps = epochs * steps_per_epoch
  tx = optax.adam(optax.cosine_decay_schedule(lr, num_steps))
  opt_state = tx.init(params)
  images = jnp.asarray(train_data.images)
  labels = jnp.asarray(train_data.labels)

  @jax.jit
  def step(params, opt_state, i):
    epoch, position = jnp.divmod(i, steps_per_epoch)
    order = jax.random.permutation(jax.random.fold_in(data_key, epoch), len(images))
    idx = jax.lax.dynamic_slice_in_dim(order, position * batch_size, batch_size)
    x = images_lib.to_float(images[idx])
    step_key = jax.random.fold_in(aug_key, i)
    if augmentation == "shift":
      x = augment(step_key, x, flip)
    else:
      x = augment_affine(step_key, x, elastic_alpha=34.0 if augmentation == "elastic" else 0.0)

    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x, train=True,
                              rngs={"dropout": jax.random.fold_in(step_key, 7)})
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  start = time.perf_counter()
  losses = []
  for i in range(num_steps):
    params, opt_state, loss = step(params, opt_state, i)
    losses.append(loss)
    if (i + 1) % steps_per_epoch == 0:
      log(f"epoch {(i + 1) // steps_per_epoch}/{epochs}: loss "
          f"{float(np.mean(jax.device_get(losses))):.4f} ({time.perf_counter() - start:.0f} s)")
      losses = []
  return params, round(time.perf_counter() - start, 1)


def train(name: str, epochs: int, batch_size: int, lr: float, seed: int,
          data_dir=None, idx_dir=None, log=print, augmentation: str = "shift",
          widths: tuple[int, ...] = (32, 64), dropout: float = 0.0, folds: int = 0,
          fold: int = 0):
  """(params, record) of a classifier trained on `name`'s training split.

  folds > 1 trains on all but the `fold`-th of `folds` parts of the training
  split (a fixed random partition) and reports the accuracy on that part as
  `validation_accuracy`, leaving the test split unread: the number to choose
  a recipe by (see `cross_validate`).
  """
  if augmentation not in AUGMENTATIONS:
    raise ValueError(f"augmentation={augmentation!r}: choose from {sorted(AUGMENTATIONS)}.")
  train_data = data.load(name, "train", data_dir=data_dir, idx_dir=idx_dir, download=False)
  validation = None
  if folds:
    if not 1 < folds <= len(train_data) or not 0 <= fold < folds:
      raise ValueError(f"folds={folds}, fold={fold}: need 1 < folds <= {len(train_data)} "
                       "(the training images) and 0 <= fold < folds.")
    order = np.random.default_rng(1234).permutation(len(train_data))
    held = np.zeros(len(train_data), bool)
    held[order[fold::folds]] = True
    part = lambda mask: data.ArrayDataset(train_data.images[mask], train_data.labels[mask],
                                          train_data.num_classes, train_data.source)
    train_data, validation = part(~held), part(held)
  widths = tuple(widths)
  flip = name in FLIP_DATASETS
  params, seconds = fit(train_data, epochs, batch_size, lr, seed, augmentation, widths, dropout,
                        flip, log)
  record = {
      "dataset": name, "data_source": train_data.source, "num_classes": train_data.num_classes,
      "image_shape": list(train_data.images.shape[1:]), "train_images": len(train_data),
      "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
      "augmentation": AUGMENTATIONS[augmentation] + (", horizontal flip"
                                                     if flip and augmentation == "shift" else ""),
      "architecture": f"Classifier(widths={widths}, feature_dim=128, dropout={dropout})",
      "widths": list(widths), "dropout": dropout,
      "train_seconds": seconds,
  }
  network = features.FeatureNetwork(name, params, record)
  record["train_accuracy"] = round(accuracy(network, train_data), 5)
  if validation is not None:
    record.update(folds=folds, fold=fold, validation_images=len(validation),
                  validation_accuracy=round(accuracy(network, validation), 5))
  else:
    test_data = data.load(name, "test", data_dir=data_dir, idx_dir=idx_dir, download=False)
    record["test_images"] = len(test_data)
    record["test_accuracy"] = round(accuracy(network, test_data), 5)
  return params, record


def rotations(dataset: data.ArrayDataset) -> data.ArrayDataset:
  """Each image turned by 0, 90, 180 and 270 degrees, labelled 0 to 3."""
  turned = [np.rot90(dataset.images, k, axes=(1, 2)) for k in range(4)]
  labels = np.repeat(np.arange(4, dtype=np.int32), len(dataset))
  return data.ArrayDataset(np.concatenate(turned), labels, 4, dataset.source)


def folder_widths(image_size: int) -> tuple[int, ...]:
  """Conv stages for a folder's images: a stage of 64 more per doubling above 32
  px, so that the feature layer sees 7x7 or 8x8 maps at every size."""
  return (32, 64) + (64,) * max(0, int(np.log2(image_size // 32)))


def train_folder(data_config, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3,
                 seed: int = 0, log=print):
  """(params, record) of the feature network of a user's folder
  (genjax.metrics.folder_features): a classifier of its classes, or of the
  rotation of its images where it has fewer than two."""
  options = folder_features.reading(data_config)
  train_data = data.load_from_config(options, "train")
  test_data = data.load_from_config(options, "test")
  classes = options.labels == "folders" and train_data.num_classes >= 2
  if classes:
    name = f"classifier of the {train_data.num_classes} classes of the folder {options.path}"
  else:
    name = f"rotation predictor (0/90/180/270 degrees) on the folder {options.path}"
    train_data, test_data = rotations(train_data), rotations(test_data)
  widths = folder_widths(options.image_size)
  params, seconds = fit(train_data, epochs, min(batch_size, len(train_data)), lr, seed, "shift",
                        widths, 0.0, classes, log)
  shares = np.bincount(test_data.labels, minlength=train_data.num_classes) / len(test_data)
  record = {
      "name": name, "dataset": folder_features.NAME, "task": "classes" if classes else "rotation",
      "folder": options.path, "key": folder_features.folder_key(options),
      "reading": options.to_dict(), "data_source": train_data.source,
      "num_classes": train_data.num_classes, "image_shape": list(train_data.images.shape[1:]),
      "train_images": len(train_data), "epochs": epochs, "batch_size": batch_size, "lr": lr,
      "seed": seed, "augmentation": AUGMENTATIONS["shift"] + (", horizontal flip" if classes
                                                              else ""),
      "architecture": f"Classifier(widths={widths}, feature_dim=128, dropout=0.0)",
      "widths": list(widths), "dropout": 0.0, "train_seconds": seconds,
  }
  network = features.FeatureNetwork(folder_features.NAME, params, record)
  record["train_accuracy"] = round(accuracy(network, train_data), 5)
  record["test_images"] = len(test_data)
  record["test_accuracy"] = round(accuracy(network, test_data), 5)
  record["chance"] = round(float(shares.max()), 5)  # always answering the commonest label
  return params, record


def cross_validate(name: str, folds: int, log=print, **recipe) -> dict:
  """Trains `folds` classifiers, each without one part of the training split,
  and returns the accuracy on the parts left out: every training image
  predicted once, by a network that did not see it."""
  runs = []
  for fold in range(folds):
    _, record = train(name, folds=folds, fold=fold, log=log, **recipe)
    log(f"fold {fold + 1}/{folds}: validation accuracy {record['validation_accuracy']:.4f} "
        f"on {record['validation_images']} images")
    runs.append(record)
  images = sum(r["validation_images"] for r in runs)
  correct = sum(round(r["validation_accuracy"] * r["validation_images"]) for r in runs)
  return {"dataset": name, "folds": folds, "recipe": {k: v for k, v in recipe.items()
                                                      if k not in ("data_dir", "idx_dir")},
          "fold_accuracies": [r["validation_accuracy"] for r in runs],
          "validation_images": images, "validation_errors": images - correct,
          "validation_accuracy": round(correct / images, 5)}


def define_flags():
  """The command-line flags; defined only when run as a program, so that
  importing this module leaves the importer's flags alone."""
  flags.DEFINE_string("dataset", "fashion_mnist", "TFDS name of the dataset.")
  flags.DEFINE_integer("epochs", 10, "Passes over the training split.")
  flags.DEFINE_integer("batch_size", 128, "Batch size.")
  flags.DEFINE_float("lr", 1e-3, "Peak Adam learning rate.")
  flags.DEFINE_integer("seed", 0, "Seed of initialisation, shuffling and augmentation.")
  flags.DEFINE_string("out", str(features.WEIGHTS_DIR), "Folder for <dataset>.msgpack/.json.")
  flags.DEFINE_string("data_dir", "", "TFDS data_dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).")
  flags.DEFINE_string("idx_dir", "", "Folder of MNIST-format IDX files.")
  flags.DEFINE_list("widths", ["32", "64"], "Channels of the two conv stages.")
  flags.DEFINE_float("dropout", 0.0, "Dropout on the features before the last layer.")
  flags.DEFINE_integer("folds", 0, "K > 1: cross-validate the recipe over K parts of the "
                       "training split instead of training the weights (0: train them).")
  flags.DEFINE_string("workdir", "", "A run on a user's folder: train that folder's feature "
                      "network as the run reads it.")
  flags.DEFINE_string("folder", "", "A folder of images: train its feature network.")
  flags.DEFINE_integer("image_size", 64, "--folder: side of the square images.")
  flags.DEFINE_integer("channels", 3, "--folder: 1 (greyscale) or 3 (RGB).")
  flags.DEFINE_enum("labels", "none", ["none", "folders"], "--folder: folders: subfolders are "
                    "classes (a classifier of them); none: a rotation predictor.")
  flags.DEFINE_string("background", "white", "--folder: what transparent pixels are "
                      "composited on (white, black, #rrggbb, none).")
  flags.DEFINE_integer("test_percent", 5, "--folder: images held out (by path hash).")
  flags.DEFINE_enum("augment", "shift", sorted(AUGMENTATIONS),
                    "shift: up to 2 pixels; affine: rotation <= 12 degrees, scale 0.9-1.1, "
                    "shift <= 2 pixels (bilinear); elastic: affine and elastic distortion.")


def folder_data_config(FLAGS):  # pylint: disable=invalid-name
  """The `config.data` of --workdir's run, or of --folder and its options."""
  if FLAGS.workdir and FLAGS.folder:
    raise app.UsageError("--workdir and --folder: give one (a run reads its folder as its "
                         "config says; --folder takes the reading options as flags).")
  if FLAGS.workdir:
    from genjax.train import workdir as rundir  # pylint: disable=import-outside-toplevel
    config, _ = rundir.read(FLAGS.workdir)
    if not folder_features.is_folder(config.data):
      raise app.UsageError(f"--workdir={FLAGS.workdir} trains on {config.data.name!r}, not a "
                           "folder (data.path is empty); its feature network is "
                           f"`--dataset {config.data.name}`.")
    return config.data
  return folder_features.reading(ml_collections.ConfigDict(
      {"path": FLAGS.folder, "image_size": FLAGS.image_size, "channels": FLAGS.channels,
       "labels": FLAGS.labels, "background": FLAGS.background,
       "test_percent": FLAGS.test_percent}))


def train_for_folder(FLAGS, log) -> None:  # pylint: disable=invalid-name
  data_config = folder_data_config(FLAGS)
  try:
    params, record = train_folder(data_config, FLAGS.epochs, FLAGS.batch_size, FLAGS.lr,
                                  FLAGS.seed, log)
  except ValueError as e:  # a folder that cannot be read: the loader's one line
    raise app.UsageError(str(e)) from None
  directory = folder_features.network_dir(data_config)
  record = features.save(folder_features.NAME, params, record, directory)
  print(json.dumps(record, indent=2))
  log(f"Saved in {directory}: test accuracy {record['test_accuracy']:.4f} on "
      f"{record['test_images']} held-out images (chance {record['chance']:.4f}). genjax.evaluate "
      "and the loop's FID of runs that read this folder so use it, unless Inception weights "
      "are given.")


def main(argv):
  del argv
  runtime.configure()
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  recipe = dict(epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, lr=FLAGS.lr, seed=FLAGS.seed,
                data_dir=FLAGS.data_dir or None, idx_dir=FLAGS.idx_dir or None,
                augmentation=FLAGS.augment, widths=tuple(int(w) for w in FLAGS.widths),
                dropout=FLAGS.dropout)
  log = lambda m: print(m, file=sys.stderr)
  if FLAGS.workdir or FLAGS.folder:
    train_for_folder(FLAGS, log)
    return
  if FLAGS.folds:
    if FLAGS.folds < 2:
      raise app.UsageError(f"--folds={FLAGS.folds}: cross-validation needs at least 2 folds.")
    print(json.dumps(cross_validate(FLAGS.dataset, FLAGS.folds, log=log, **recipe), indent=2))
    return
  params, record = train(FLAGS.dataset, log=log, **recipe)
  record = features.save(FLAGS.dataset, params, record, FLAGS.out)
  print(json.dumps(record, indent=2))
  print(f"Set KNOWN_WEIGHTS[{FLAGS.dataset!r}] = {record['sha256']!r} in "
        "genjax.metrics.features to use these weights.", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  app.run(main)
