"""Datasets for the experiments: `load_from_config(config.data, split)`, or `load` by TFDS name.

Where a split comes from, in order, is `genjax.data.sources` (one module per
source); the split types are in `genjax.data.types`; file formats are read by
`genjax.data.idx` (MNIST's IDX files) and `genjax.data.folder` (a folder of
images); `device` and `stream` are the two input pipelines.
"""

from genjax.data.sources import (AUTO_DEVICE_BYTES, PIPELINES, SOURCES, check_config,
                                 check_limit, choose_pipeline, load, load_from_config)
from genjax.data.sources.folder import folder_split
from genjax.data.sources.idx import IDX_DATASETS
from genjax.data.sources.tfds import DEFAULT_DATA_DIR
from genjax.data.types import (ArrayDataset, DatasetUnavailableError, StreamedDataset,
                               materialize)

__all__ = [
    "ArrayDataset", "AUTO_DEVICE_BYTES", "check_config", "check_limit", "choose_pipeline",
    "DatasetUnavailableError", "DEFAULT_DATA_DIR", "folder_split", "IDX_DATASETS", "load",
    "load_from_config", "materialize", "PIPELINES", "SOURCES", "StreamedDataset",
]
