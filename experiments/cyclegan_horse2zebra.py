"""CycleGAN at 256x256 as in the paper: `python -m experiments.cyclegan_horse2zebra`.

The authors' configuration: a ResNet generator with 9 blocks, a 70x70
PatchGAN, batch 1, images resized to 286 and randomly cropped to 256 and
flipped, Adam(2e-4, 0.5), 100 epochs at a constant learning rate and 100
decaying linearly to zero (an epoch here: 1,334 steps, the size of the
larger domain). Data from TFDS `cycle_gan/horse2zebra`; any other
`cycle_gan/*` set by --config.data.name. TFDS needs a download the first
time; offline the run stops at once and says so.

  python -m experiments.cyclegan_horse2zebra
  python -m experiments.cyclegan_horse2zebra --config.data.name=cycle_gan/monet2photo
"""

from experiments import cyclegan_edges2fashion
from genjax import configs

PRESETS = cyclegan_edges2fashion.PRESETS

EPOCH = 1334  # images in horse2zebra's larger domain (trainB)


def get_config(preset: str | None = None):
  config = cyclegan_edges2fashion.get_config()
  config.batch_size = 1
  config.num_steps = 200 * EPOCH
  config.decay_start = 100 * EPOCH
  config.model.g_width, config.model.g_blocks, config.model.g_down = 64, 9, 2
  config.model.upsample = "transpose"
  config.model.d_width, config.model.d_layers = 64, 3
  config.data.name = "cycle_gan/horse2zebra"
  config.data.load_size, config.data.crop_size, config.data.flip = 286, 256, True
  config.steps_per_call = 100
  config.eval_every = 5 * EPOCH
  config.checkpoint_every = 5 * EPOCH
  config.grid_scale = 1  # 256 px images need no enlarging
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/cyclegan_horse2zebra")
