"""Trains the feature network of a dataset; writes genjax/metrics/weights/<dataset>.*

  python -m genjax.metrics.train_classifier --dataset fashion_mnist
  python -m genjax.metrics.train_classifier --dataset mnist --epochs 40

Adam with cosine decay, a fixed seed and random 2-pixel shifts (and
horizontal flips for datasets whose classes allow them) or, with
`--augment affine`, random rotations, scalings and shifts. Prints the test accuracy
and the sha256 to put in genjax.metrics.features.KNOWN_WEIGHTS.
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags, logging

from genjax import data
from genjax.metrics import features

FLIP_DATASETS = {"fashion_mnist", "cifar10"}  # classes unchanged by a horizontal flip


def augment(key, images, flip: bool):
  """Random shifts of up to 2 pixels (zero padding at -1) and optional flips."""
  b, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
  shift_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(shift_key, (b, 2), 0, 5)
  crop = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, im.shape[-1])))
  images = crop(padded, offsets)
  if flip:
    do_flip = jax.random.bernoulli(flip_key, 0.5, (b, 1, 1, 1))
    images = jnp.where(do_flip, images[:, :, ::-1], images)
  return images


def augment_affine(key, images, max_degrees: float = 12.0, max_scale: float = 0.1,
                   max_shift: float = 2.0):
  """Random rotation, scaling and shift of each image about its centre (bilinear,
  -1 outside the image)."""
  b, h, w, c = images.shape
  k_rot, k_scale, k_shift = jax.random.split(key, 3)
  angle = jnp.deg2rad(jax.random.uniform(k_rot, (b,), minval=-max_degrees, maxval=max_degrees))
  scale = jax.random.uniform(k_scale, (b,), minval=1 - max_scale, maxval=1 + max_scale)
  shift = jax.random.uniform(k_shift, (b, 2), minval=-max_shift, maxval=max_shift)
  cy, cx = (h - 1) / 2, (w - 1) / 2
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")

  def one(image, angle, scale, shift):
    y, x = yy - cy - shift[0], xx - cx - shift[1]  # output pixel -> source pixel
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src_y = (cos * y + sin * x) / scale + cy
    src_x = (-sin * y + cos * x) / scale + cx
    warp = lambda channel: jax.scipy.ndimage.map_coordinates(
        channel, [src_y, src_x], order=1, mode="constant", cval=-1.0)
    return jax.vmap(warp, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(one)(images, angle, scale, shift)


def accuracy(network: features.FeatureNetwork, dataset: data.ArrayDataset) -> float:
  logits, _ = network(dataset.images)
  return float(np.mean(logits.argmax(-1) == dataset.labels))


def train(name: str, epochs: int, batch_size: int, lr: float, seed: int,
          data_dir=None, idx_dir=None, log=print, augmentation: str = "shift",
          widths: tuple[int, ...] = (32, 64), holdout: int = 0):
  """(params, record) of a classifier trained on `name`'s training split.

  holdout > 0 keeps that many training images (a fixed random choice) out of
  training and reports the accuracy on them as `validation_accuracy`: the
  number to choose a recipe by, leaving the test split for the final figure.
  """
  train_data = data.load(name, "train", data_dir=data_dir, idx_dir=idx_dir, download=False)
  test_data = data.load(name, "test", data_dir=data_dir, idx_dir=idx_dir, download=False)
  validation = None
  if holdout:
    if not 0 < holdout < len(train_data):
      raise ValueError(f"holdout={holdout} must be between 1 and {len(train_data) - 1}.")
    order = np.random.default_rng(1234).permutation(len(train_data))
    part = lambda ix: data.ArrayDataset(train_data.images[ix], train_data.labels[ix],
                                        train_data.num_classes, train_data.source)
    train_data, validation = part(np.sort(order[holdout:])), part(np.sort(order[:holdout]))
  widths = tuple(widths)
  model = features.Classifier(num_classes=train_data.num_classes, widths=widths)
  init_key, data_key, aug_key = jax.random.split(jax.random.key(seed), 3)
  params = model.init(init_key, jnp.zeros((1, *train_data.images.shape[1:])))["params"]
  steps_per_epoch = len(train_data) // batch_size
  num_steps = epochs * steps_per_epoch
  tx = optax.adam(optax.cosine_decay_schedule(lr, num_steps))
  opt_state = tx.init(params)
  images = jnp.asarray(train_data.images)
  labels = jnp.asarray(train_data.labels)
  flip = name in FLIP_DATASETS

  @jax.jit
  def step(params, opt_state, i):
    epoch, position = jnp.divmod(i, steps_per_epoch)
    order = jax.random.permutation(jax.random.fold_in(data_key, epoch), len(images))
    idx = jax.lax.dynamic_slice_in_dim(order, position * batch_size, batch_size)
    x = images[idx].astype(jnp.float32) / 127.5 - 1
    step_key = jax.random.fold_in(aug_key, i)
    x = augment_affine(step_key, x) if augmentation == "affine" else augment(step_key, x, flip)

    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x)
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
  record = {
      "dataset": name, "data_source": train_data.source, "num_classes": train_data.num_classes,
      "image_shape": list(train_data.images.shape[1:]), "train_images": len(train_data),
      "test_images": len(test_data), "epochs": epochs, "batch_size": batch_size, "lr": lr,
      "seed": seed, "augmentation": ("shift<=2px" + (", horizontal flip" if flip else "")
                       if augmentation == "shift" else "affine: rotation<=12deg, scale 0.9-1.1, "
                       "shift<=2px"),
      "architecture": f"Classifier(widths={widths}, feature_dim=128)", "widths": list(widths),
      "train_seconds": round(time.perf_counter() - start, 1),
  }
  network = features.FeatureNetwork(name, params, record)
  record["train_accuracy"] = round(accuracy(network, train_data), 5)
  if validation is not None:
    record["holdout"] = holdout
    record["validation_accuracy"] = round(accuracy(network, validation), 5)
  record["test_accuracy"] = round(accuracy(network, test_data), 5)
  return params, record


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
  flags.DEFINE_integer("holdout", 0, "Training images kept out to choose a recipe by (0: none).")
  flags.DEFINE_enum("augment", "shift", ["shift", "affine"],
                    "shift: up to 2 pixels; affine: rotation <= 12 degrees, scale 0.9-1.1, "
                    "shift <= 2 pixels (bilinear).")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  params, record = train(FLAGS.dataset, FLAGS.epochs, FLAGS.batch_size, FLAGS.lr, FLAGS.seed,
                         FLAGS.data_dir or None, FLAGS.idx_dir or None,
                         log=lambda m: print(m, file=sys.stderr), augmentation=FLAGS.augment,
                         widths=tuple(int(w) for w in FLAGS.widths), holdout=FLAGS.holdout)
  record = features.save(FLAGS.dataset, params, record, FLAGS.out)
  print(json.dumps(record, indent=2))
  print(f"Set KNOWN_WEIGHTS[{FLAGS.dataset!r}] = {record['sha256']!r} in "
        "genjax/metrics/features.py to use these weights.", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  app.run(main)
