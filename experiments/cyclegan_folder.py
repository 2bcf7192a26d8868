"""CycleGAN between two folders of your own images: `python -m experiments.cyclegan_folder`.

  python -m experiments.cyclegan_folder --config.data.path=~/data/horse2zebra
  python -m experiments.cyclegan_folder --config.data.path_a=~/summer --config.data.path_b=~/winter

`data.path` is a folder laid out as the authors' datasets are (trainA,
trainB, and optionally testA, testB); `data.path_a` and `data.path_b` are
two folders of any layout. Every JPEG/PNG/WebP (any size or mode) is read
once, resized to `data.image_size`, and held on the devices; batches are
resized to `load_size`, randomly cropped to `image_size` and flipped in the
compiled step, as the authors do at 286 -> 256. Without test folders, 5% of
each domain's images (picked by a hash of the path) are held out for the
translation grids and `genjax.evaluate`. The networks are the paper's at
width 32 with 6 residual blocks, a size a CPU trains at 64 px; on a GPU use
`:paper` (width 64, 9 blocks, 70x70 PatchGAN, batch 1, 256 px).
"""

from experiments import cyclegan_edges2fashion
from genjax import configs

PRESETS = {
    **cyclegan_edges2fashion.PRESETS,
    "paper": ({"model.g_width": 64, "model.g_blocks": 9, "model.d_width": 64,
               "model.d_layers": 3, "batch_size": 1, "data.image_size": 256,
               "data.load_size": 286, "data.crop_size": 256},
              "the authors' 256 px setting (a GPU's work)"),
}


def get_config(preset: str | None = None):
  config = cyclegan_edges2fashion.get_config()
  config.batch_size = 4
  config.num_steps = 20000
  config.decay_start = 10000
  config.model.g_width, config.model.g_blocks = 32, 6
  config.model.d_width, config.model.d_layers = 64, 3
  data = config.data
  data.name = "folder"  # a label for logs; the images come from data.path or path_a/path_b
  data.path = ""  # a folder with trainA/ and trainB/ (and optionally testA/, testB/)
  data.path_a = ""  # or: domain A's folder
  data.path_b = ""  # and domain B's folder
  data.image_size = 64  # images are stored at this size; crops are crop_size
  data.channels = 3
  data.labels = "none"
  data.test_percent = 5  # held out per domain when there are no test folders
  data.threads = 4  # decoding threads
  data.load_size, data.crop_size, data.flip = 72, 64, True
  config.eval_every = config.checkpoint_every = 1000
  config.grid_scale = 1
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/cyclegan_folder")
