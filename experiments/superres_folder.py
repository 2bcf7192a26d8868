"""x4 super-resolution of your images: `python -m experiments.superres_folder --config.data.path=D`.

  python -m experiments.superres_folder --config.data.path=~/photos --config.data.image_size=256
  python -m experiments.superres_folder --config.data.path=~/photos --config.data.scale=2

Every image under `data.path` (recursively) is read once, resized to
`data.image_size` (bicubic, aspect ratio not kept) and held on the
devices; `data.test_percent` of them (by a hash of the relative name) are
held out for the evaluation. Each target's input is its copy downsampled by
`data.scale` (box filter) and bicubic-upsampled back, made in the compiled
step (genjax.nn.degrade); batches are cropped to `crop_size` and flipped
first. SRGAN's residual generator (16 blocks of width 64 at the low
resolution, sub-pixel upsamplings) learns under 100 x L1, the content loss
(10 x the MSE of the MNIST classifier's conv features, per channel) and an
adversarial weight of 0.1 (`model.generator=unet`: a 4-level U-Net refines
the bicubic image instead). The default trains
64 px crops of 64 px images on a CPU; at 256 px set crop_size (e.g. 128) or
train on a GPU. The evaluation reports PSNR, SSIM and L1 beside `bicubic`.
"""

from experiments import superres_fashion_mnist
from genjax import configs

PRESETS = {
    "tiny": ({**superres_fashion_mnist.PRESETS["tiny"][0], "batch_size": 4, "num_steps": 10,
              "decay_start": 10, "eval_every": 10, "checkpoint_every": 10,
              "data.image_size": 32},
             "small networks trained for seconds, for tests"),
}


def get_config(preset: str | None = None):
  config = use_target_folder(superres_fashion_mnist.get_config())
  config.model.g_down = 4  # generator=unet
  return configs.with_presets(config, PRESETS, preset)


def use_target_folder(config):
  """A task's Fashion-MNIST config on a folder of target images (its
  inputs made from them): the batch, schedule, discriminator and data keys
  that superres_folder and inpaint_folder share."""
  config.batch_size = 8
  config.num_steps = 20000
  config.decay_start = 10000
  config.model.d_width, config.model.d_layers = 32, 3
  data = config.data
  data.name = "folder"  # a label for logs; the images come from data.path
  data.path = ""  # the folder of images (required)
  data.image_size = 64  # each image is resized to this square
  data.channels = 3  # 1 (greyscale) or 3 (RGB)
  data.test_percent = 5  # images held out (by a hash of the name)
  data.threads = 4  # decoding threads
  data.load_size, data.crop_size, data.flip = 0, 0, True
  config.eval_every = config.checkpoint_every = 1000
  config.grid_scale = 1
  return config


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/superres_folder")
