"""MNIST-format IDX folders, prepared once per content by genjax's own TFDS builder `local_idx`.

TFDS's `mnist` and `fashion_mnist` builders download from the internet; the
`local_idx/<name>` builder reads the same four files from a local folder
(Debian's `dataset-fashion-mnist` in /usr/share/datasets/fashion-mnist, the
folder `python -m genjax.data.fetch mnist` writes, or `data.idx_dir`) and
writes an ordinary TFDS dataset that loads like any other.
"""

import functools
import hashlib
import sys
from pathlib import Path
from typing import Optional

from genjax.data import idx
from genjax.data.sources import tfds as tfds_source
from genjax.data.types import ArrayDataset, NotHere, Request

# MNIST-format datasets: TFDS name -> known folders that may hold their IDX files.
IDX_DATASETS = {
    "mnist": [str(idx.default_folder("mnist"))],
    "fashion_mnist": ["/usr/share/datasets/fashion-mnist"],
}
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}


@functools.cache
def _local_idx_builder():
  """The `local_idx` TFDS builder class, defined on first use: TFDS (and with
  it TensorFlow) is imported only when a dataset is prepared or read."""
  tfds = tfds_source.import_tfds()

  class LocalIdx(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """MNIST-format IDX files from a local folder (`manual_dir`), as a TFDS dataset."""

    name = "local_idx"
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name=config, description=f"{config} from local IDX files")
        for config in CLASS_NAMES
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass the folder holding train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
        "t10k-labels-idx1-ubyte.gz as manual_dir."
    )

    def _info(self):
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

    def _generate_examples(self, images, labels):
      for i, (image, label) in enumerate(zip(images, labels)):
        yield i, {"image": image, "label": int(label)}

  return LocalIdx


def _digest(folder: Path) -> str:
  """sha256 over the bytes of the folder's four IDX files, as stored."""
  digest = hashlib.sha256()
  for split, part in sorted(idx.IDX_FILES):
    digest.update(idx.find_idx_file(folder, split, part).read_bytes())
  return digest.hexdigest()


def load_folder(name: str, folder: Path, req: Request) -> ArrayDataset:
  """`req.split` of the IDX files in `folder`, through the `local_idx/<name>`
  builder prepared once per content of the files: another folder (the
  embedded subset as IDX files, full MNIST) never reads what an earlier one
  prepared in the same data_dir."""
  tfds = tfds_source.import_tfds()
  content_dir = Path(req.data_dir) / "local_idx_files" / _digest(folder)[:16]
  builder = _local_idx_builder()(config=name, data_dir=str(content_dir))
  if not builder.is_prepared():
    print(f"Preparing {name} from the IDX files in {folder} into {builder.data_dir} (once).",
          file=sys.stderr)
    # Validate the files before TFDS creates anything in data_dir.
    for split in ("train", "test"):
      idx.load_idx_split(folder, split)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(folder))
    )
  return tfds_source.from_builder(builder, req.split,
                                  f"IDX files in {folder} (TFDS local_idx/{name})")


def _folder(name: str, idx_dir: Optional[str]) -> Optional[Path]:
  if idx_dir:
    if not Path(idx_dir).is_dir():
      raise FileNotFoundError(f"data.idx_dir={idx_dir!r} is not a folder.")
    return Path(idx_dir)
  for folder in IDX_DATASETS[name]:
    if Path(folder).is_dir():
      return Path(folder)
  return None


def source(req: Request) -> ArrayDataset:
  """MNIST-format IDX files in idx_dir or a known folder."""
  if req.name not in IDX_DATASETS:
    raise NotHere("")
  folder = _folder(req.name, req.idx_dir)
  if folder is None:
    raise NotHere("no IDX folder (" + (", ".join(IDX_DATASETS[req.name]) or "none known")
                  + "; set data.idx_dir)")
  return load_folder(req.name, folder, req)
