"""pix2pix on your own aligned pairs: `python -m experiments.pix2pix_folder --config.data.path=DIR`.

  python -m experiments.pix2pix_folder --config.data.path=~/data/facades
  python -m experiments.pix2pix_folder --config.data.path=~/pairs --config.data.layout=folders
  python -m experiments.pix2pix_folder --config.data.path=~/data/facades --config.data.direction=BtoA
  python -m experiments.pix2pix_folder --config=experiments/pix2pix_folder.py:paper --config.data.path=DIR

`data.layout=aligned` reads pix2pix's datasets as they ship: train/ and
test/ (or val/) of images holding A|B side by side; `folders` reads A/ and
B/ subfolders whose files share names (genjax.data.paired). Every pair is
read once, each side resized to `data.image_size` (aspect ratio not kept,
as pix2pix does), and held on the devices; batches are resized to
`load_size`, cropped to `crop_size` and flipped in the compiled step, the
same way for input and target. Pairs that do not match, side-by-side images
of odd width and an empty folder are one-line errors before anything is
written. The networks are the paper's at width 32 with 6 levels, a size a
CPU trains at 64 px; on a GPU use `:paper` (U-Net-256, 70x70 PatchGAN,
batch 1, 286 -> 256 px crops and flips).
"""

from experiments import pix2pix_edges2fashion
from genjax import configs

PRESETS = {
    **pix2pix_edges2fashion.PRESETS,
    "paper": ({**pix2pix_edges2fashion.PRESETS["paper"][0], "data.image_size": 256},
              "the paper's 256 px setting (a GPU's work)"),
}


def get_config(preset: str | None = None):
  config = pix2pix_edges2fashion.get_config()
  config.batch_size = 4
  config.num_steps = 20000
  config.decay_start = 10000
  config.model.g_width, config.model.g_down = 32, 6
  config.model.d_width, config.model.d_layers = 64, 3
  data = config.data
  data.name = "folder"  # a label for logs; the pairs come from data.path
  data.path = ""  # the folder of pairs (required)
  data.layout = "aligned"  # aligned: train/, test/ (or val/) of A|B images | folders: A/ and B/
  data.direction = "AtoB"  # AtoB: A is the input, B the target | BtoA
  data.image_size = 64  # each side is resized to this square (crops are crop_size)
  data.channels = 3  # 1 (greyscale) or 3 (RGB), for both sides
  data.test_percent = 5  # pairs held out (by a hash of the name) when there is no test/ or val/
  data.threads = 4  # decoding threads
  data.load_size, data.crop_size, data.flip = 72, 64, True
  config.eval_every = config.checkpoint_every = 1000
  config.grid_scale = 1
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/pix2pix_folder")
