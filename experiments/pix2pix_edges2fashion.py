"""pix2pix from edge maps to garments, offline: `python -m experiments.pix2pix_edges2fashion`.

Pairs: each Fashion-MNIST garment and its own edge map (the maps the CycleGAN
experiment makes, genjax.data.unpaired.edge_map), padded to 32x32 so that the
U-Net halves them down to 1x1. The networks are the paper's shrunk for
32 px (a U-Net of width 16 with 5 downsamplings, dropout on the three
decoder layers outside the innermost, a 2-layer PatchGAN on (edges, garment)
pairs); losses and optimiser are the paper's (a conditional GAN plus 100 x
L1, Adam(2e-4, 0.5), batch norm by the batch's statistics).

  python -m experiments.pix2pix_edges2fashion
  python -m genjax.evaluate --workdir runs/pix2pix_edges2fashion --num 0
  python -m genjax.translate --workdir runs/pix2pix_edges2fashion --input EDGES/ --out OUT/
  python -m experiments.pix2pix_edges2fashion --config=experiments/pix2pix_edges2fashion.py:paper
  python -m experiments.pix2pix_edges2fashion --config=experiments/pix2pix_edges2fashion.py:tiny
"""

import ml_collections

from genjax import configs

PRESETS = {
    "tiny": ({"batch_size": 8, "num_steps": 20, "decay_start": 10, "model.g_width": 4,
              "model.d_width": 4, "eval_every": 10, "checkpoint_every": 10},
             "small networks trained for seconds, for tests"),
    "paper": ({"batch_size": 1, "model.g_width": 64, "model.g_down": 8, "model.d_width": 64,
               "model.d_layers": 3, "data.load_size": 286, "data.crop_size": 256,
               "data.flip": True, "num_steps": 200000, "decay_start": 100000,
               "eval_every": 5000, "checkpoint_every": 5000},
              "the paper's U-Net-256 and 70x70 PatchGAN, batch 1, resized to 286 and "
              "cropped to 256 (a GPU's work)"),
}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """The default config, or presets of PRESETS."""
  return configs.with_presets(_base_config(), PRESETS, preset)


def _base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.family = "pix2pix"
  config.task = "paired"  # paired (aligned inputs and targets) | superres | inpaint
  config.seed = 0
  config.batch_size = 16  # the paper uses 1 at 256 px; 16 keeps a CPU busy at 32 px
  config.num_steps = 1000
  config.decay_start = 500  # constant lr until here, then linear to 0 at num_steps
  config.l1_weight = 100.0  # lambda of |G(x) - y|_1 beside the conditional GAN loss
  config.adv_weight = 1.0  # weight of G's adversarial loss (1: the paper's)
  config.known_weight = 0.1  # inpaint: the L1 outside the hole, relative to that inside
  config.content_weight = 0.0  # SRGAN's content loss: MSE of conv features
  config.content_network = ""  # whose conv features (genjax.metrics.features); '': none

  config.model = ml_collections.ConfigDict()
  config.model.generator = "unet"  # unet | srresnet (SRGAN's; task=superres only)
  config.model.g_width = 16  # channels of the U-Net's first layer; x2 per level up to 8x (64)
  config.model.g_down = 5  # U-Net levels: the image side must divide by 2**g_down (8 at 256 px)
  config.model.res_blocks = 16  # srresnet: residual blocks (SRGAN's 16)
  config.model.dropout = 0.5  # dropout of the decoder layers below, in training and at test
  config.model.dropout_layers = 3  # decoder layers with dropout, outside the innermost
  config.model.norm = "batch"  # batch (the paper's, by the batch's statistics) | instance
  config.model.d_width = 16
  config.model.d_layers = 2  # stride-2 convs of the PatchGAN (3: 70x70 patches)

  config.opt = ml_collections.ConfigDict()
  config.opt.lr = 2e-4
  config.opt.b1 = 0.5
  config.opt.b2 = 0.999

  config.data = ml_collections.ConfigDict()
  config.data.name = "edges2fashion"  # Fashion-MNIST garments and their edge maps
  config.data.data_dir = ""
  config.data.idx_dir = ""  # Fashion-MNIST IDX folder; Debian's is found by itself
  config.data.download = True
  config.data.image_size = 32  # 28: as stored; 32: padded by 2; other sizes resized
  config.data.limit = 0  # training pairs used (the first N); 0 = all 60,000
  config.data.load_size = 0  # resize to this in the step before cropping; 0 = keep the size
  config.data.crop_size = 0  # random crop (the same for input and target); 0 = none
  config.data.flip = False  # random left-right flips of both (edges2fashion: off)
  config.data.scale = 4  # superres: the downsampling factor of the inputs
  config.data.mask = "centre"  # inpaint: centre (a square of half the side) | free_form

  config.steps_per_call = 1
  config.eval_every = 500
  config.checkpoint_every = 500
  config.keep_checkpoints = 3
  config.num_eval_samples = 8  # test pairs per grid (rows: input, output, target)
  config.grid_scale = 2  # PNG grids upscaled (nearest neighbour) to a size one can look at
  return config


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/pix2pix_edges2fashion")
