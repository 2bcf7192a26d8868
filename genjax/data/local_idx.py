"""A TFDS builder that prepares MNIST-format IDX files from a local folder.

This is the offline path for MNIST-like datasets: TFDS's own `mnist` and
`fashion_mnist` builders download from the internet, this one reads the same
four files from `manual_dir` (e.g. Debian's `dataset-fashion-mnist` package,
/usr/share/datasets/fashion-mnist) and writes an ordinary TFDS dataset
`local_idx/<config>` that loads like any other.
"""

import numpy as np
import tensorflow_datasets as tfds

from genjax.data import idx

CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}


class LocalIdx(tfds.core.GeneratorBasedBuilder):
  """MNIST-format IDX files from a local folder, as a TFDS dataset."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=name, description=f"{name} from local IDX files")
      for name in CLASS_NAMES
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Pass the folder holding train-images-idx3-ubyte.gz, "
      "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
      "t10k-labels-idx1-ubyte.gz as manual_dir."
  )

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(*idx.IMAGE_SHAPE, 1)),
            "label": tfds.features.ClassLabel(names=CLASS_NAMES[self.builder_config.name]),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    folder = dl_manager.manual_dir
    # Read (and validate) everything before writing anything.
    data = {split: idx.load_idx_split(folder, split) for split in ("train", "test")}
    return {split: self._generate_examples(*arrays) for split, arrays in data.items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image, "label": int(label)}
