"""Converts an image folder once into a TFDS dataset in ArrayRecord format.

  python -m genjax.data.prepare --path ~/photos --image_size 64 --name my_photos
  python -m experiments.gan_folder --config.data.name=my_photos --config.data.path=

The folder is read as `genjax.data.folder` reads it (the same conversion,
resizing, crop, labels and train/test split, unreadable files skipped and
counted), and written to `<data_dir>/<name>/1.0.0/` (data_dir: --data_dir,
else $TFDS_DATA_DIR, else ~/tensorflow_datasets) as decoded uint8 images in
ArrayRecord files: random access by index, read with `tfds.data_source`
without TensorFlow, so training reads no JPEG and resizes nothing. A run
names the dataset by `config.data.name` (with `data.path` empty) and reads it
with `tfds.builder_from_directory`, on the devices or streamed.
"""

import sys
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from genjax import runtime


def _builder_class(name: str):
  """A TFDS builder class named `name` for an image folder (not registered)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Prepared from an image folder by genjax.data.prepare."}

    def __init__(self, *, splits=None, image_shape=(0, 0, 0), class_names=(), source="",
                 **kwargs):
      self._splits, self._image_shape = splits, tuple(image_shape)
      self._class_names, self._source = tuple(class_names), source
      super().__init__(**kwargs)

    def _info(self):
      return self.dataset_info_from_configs(
          description=f"Images of {self._source}, prepared by genjax.data.prepare.",
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Tensor(shape=self._image_shape, dtype=np.uint8),
              "label": tfds.features.ClassLabel(
                  names=list(self._class_names) or ["image"]),
          }),
          supervised_keys=("image", "label"),
          disable_shuffling=True)  # the folder's order, as genjax.data.folder reads it

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate_examples(examples)
              for split, examples in self._splits.items()}

    def _generate_examples(self, examples):
      for i in range(len(examples)):
        image, label = examples[i]
        yield i, {"image": image, "label": label}

  Builder.name = name
  return Builder


def prepare(path: str, image_size: int, name: str, channels: int = 3, labels: str = "none",
            test_percent: int = 5, data_dir: str | None = None, threads: int = 8) -> Path:
  """Writes the folder's train and test splits as TFDS `name`; returns its folder."""
  import ml_collections  # pylint: disable=g-import-not-at-top

  from genjax.data.sources import folder, tfds as tfds_source  # pylint: disable=g-import-not-at-top

  if not name.isidentifier() or name != name.lower():
    raise ValueError(f"--name={name!r}: use a lower-case Python identifier, e.g. my_photos.")
  data_dir = data_dir or tfds_source.DEFAULT_DATA_DIR
  target = Path(data_dir) / name / "1.0.0"
  if target.exists():
    raise ValueError(f"{target} exists: a dataset of that name is already prepared. Choose "
                     "another --name, or delete that folder to prepare it again.")
  config = ml_collections.ConfigDict(dict(
      path=path, image_size=image_size, channels=channels, labels=labels,
      test_percent=test_percent, threads=threads, pipeline="stream"))
  splits = {split: folder.folder_split(config, split) for split in ("train", "test")}
  train = splits["train"].examples
  tfds_source.import_tfds()  # TensorFlow kept quiet and off GPUs
  builder = _builder_class(name)(
      splits={s: d.examples for s, d in splits.items()}, image_shape=train.image_shape,
      class_names=train.class_names, source=train.source, data_dir=data_dir)
  builder.download_and_prepare(file_format="array_record")
  return Path(builder.data_dir)


def define_flags():
  flags.DEFINE_string("path", None, "A folder of images (searched recursively).", required=True)
  flags.DEFINE_integer("image_size", None, "Side of the square images.", required=True)
  flags.DEFINE_string("name", None, "Name of the TFDS dataset to write.", required=True)
  flags.DEFINE_integer("channels", 3, "1 (greyscale) or 3 (RGB).")
  flags.DEFINE_enum("labels", "none", ["none", "folders"], "Classes from first-level subfolders.")
  flags.DEFINE_integer("test_percent", 5, "Images held out as the test split.")
  flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR or "
                      "~/tensorflow_datasets).")


def main(argv):
  del argv
  runtime.configure()
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  try:
    written = prepare(f.path, f.image_size, f.name, f.channels, f.labels, f.test_percent,
                      f.data_dir)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"Prepared {f.name} in {written}; train on it with --config.data.name={f.name} "
        "(and an empty --config.data.path).")


if __name__ == "__main__":
  # Run as `python -m genjax.data.prepare`, this file is `__main__`, a module
  # TFDS cannot name a builder class after: the module imported by its
  # package name defines the builder and the flags instead.
  from genjax.data import prepare as _prepare  # pylint: disable=g-import-not-at-top

  _prepare.define_flags()
  app.run(_prepare.main)
