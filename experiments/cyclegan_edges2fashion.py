"""CycleGAN between garments and edge maps, offline: `python -m experiments.cyclegan_edges2fashion`.

Domain A: Fashion-MNIST garments; domain B: edge maps of a disjoint half of
the training images (genjax.data.unpaired), so the two are unpaired. The
networks are the paper's, shrunk for 28x28 (a ResNet generator of width 16
with 6 blocks, a 2-layer PatchGAN); losses, weights, pool and learning-rate
policy are the authors' (least squares, lambda=10, identity 0.5, a pool of
50, Adam(2e-4, 0.5), linear decay over the second half).

  python -m experiments.cyclegan_edges2fashion
  python -m genjax.evaluate --workdir runs/cyclegan_edges2fashion
  python -m experiments.cyclegan_edges2fashion --config=experiments/cyclegan_edges2fashion.py:tiny
"""

import ml_collections

from genjax import configs

PRESETS = {
    "tiny": ({"batch_size": 8, "num_steps": 20, "decay_start": 10, "model.g_width": 8,
              "model.g_blocks": 2, "model.d_width": 8, "eval_every": 10,
              "checkpoint_every": 10},
             "small networks trained for seconds, for tests"),
    "small": ({"model.g_width": 8, "model.g_blocks": 3, "num_steps": 400, "decay_start": 200,
               "eval_every": 200, "checkpoint_every": 200},
              "narrow networks trained for a few minutes (notebooks/cyclegan_translation)"),
}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """The default config, or presets of PRESETS."""
  return configs.with_presets(_base_config(), PRESETS, preset)


def _base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.family = "cyclegan"
  config.seed = 0
  config.batch_size = 16  # the authors use 1 at 256 px; 16 keeps a CPU busy at 28 px
  config.num_steps = 2000
  config.decay_start = 1000  # constant lr until here, then linear to 0 at num_steps
  config.cycle_weight = 10.0  # lambda of |G_BA(G_AB(a)) - a| and |G_AB(G_BA(b)) - b|
  config.identity_weight = 0.5  # identity losses weighted identity_weight * lambda; 0 = off
  config.pool_size = 50  # generated images kept for the discriminators; 0 = no pool

  config.model = ml_collections.ConfigDict()
  config.model.g_width = 16  # channels of the first conv; x2 per downsampling (64 in the paper)
  config.model.g_blocks = 6  # residual blocks
  config.model.g_down = 2  # stride-2 downsamplings (and upsamplings)
  config.model.upsample = "subpixel"  # subpixel | transpose (the authors') | resize
  config.model.d_width = 64
  config.model.d_layers = 2  # stride-2 convs of the PatchGAN (3: 70x70 patches)

  config.opt = ml_collections.ConfigDict()
  config.opt.lr = 2e-4
  config.opt.b1 = 0.5
  config.opt.b2 = 0.999

  config.data = ml_collections.ConfigDict()
  config.data.name = "edges2fashion"  # or a TFDS cycle_gan/<name>
  config.data.data_dir = ""
  config.data.idx_dir = ""  # Fashion-MNIST IDX folder; Debian's is found by itself
  config.data.download = True
  config.data.load_size = 0  # resize to this before cropping; 0 = keep the size
  config.data.crop_size = 0  # random crop; 0 = none
  config.data.flip = False  # random left-right flips (edges2fashion: off)

  # One step per call: on CPU, 5 unrolled steps compile in 57 s against 10 s and
  # train no faster (47 images/s either way; `python -m benchmarks.benchmark`).
  config.steps_per_call = 1
  config.eval_every = 500
  config.checkpoint_every = 500
  config.keep_checkpoints = 3
  config.num_eval_samples = 8  # test images per translation grid
  config.grid_scale = 2  # PNG grids upscaled (nearest neighbour) to a size one can look at
  return config


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/cyclegan_edges2fashion")
