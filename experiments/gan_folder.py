"""A GAN on a folder of your own images: `python -m experiments.gan_folder --config.data.path=DIR`.

Every JPEG, PNG and WebP file under `data.path` (recursively), converted to
`data.channels`, resized and centre-cropped to `data.image_size`
(genjax.data.folder). Five percent of the images (chosen by a hash of their
path) are held out as the test split. `data.pipeline=auto` keeps up to 1 GiB
of images on the devices and streams larger folders from the host
(genjax.data.stream); `stream` or `device` force one. The models, losses and
presets are gan_mnist's, at the folder's size, with DCGAN's widths, batch
and Adam(2e-4).

  python -m experiments.gan_folder --config.data.path=~/photos --config.data.image_size=64
  python -m experiments.gan_folder --config=experiments/gan_folder.py:hinge_sn \\
      --config.data.path=~/photos --config.data.labels=folders --config.conditional=True

FID/KID (of `genjax.evaluate`, and of the loop with metrics_num_samples > 0)
are in Inception-v3 features where pytorch-fid's weights are on disk, else in
a network trained on the folder's own images by
`python -m genjax.metrics.train_classifier --workdir RUN`, else off
(docs/evaluation.md); the grids are written as usual.
"""

import ml_collections

from experiments import gan_mnist
from genjax import configs

PRESETS = gan_mnist.PRESETS


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """gan_mnist's config on an image folder, or presets of PRESETS."""
  config = configs.use_image_folder(gan_mnist.get_config(), image_size=64)
  config.grid_scale = 1
  # DCGAN's widths, batch and Adam(2e-4, 0.5, 0.999): gan_mnist's default is
  # tuned for 28x28 digits on a CPU, not for photos at 64x64.
  config.batch_size = 64
  config.model.g_width, config.model.d_width = 32, 64
  configs.apply_overrides(config, gan_mnist.PAPER_ADAM)
  config.num_steps = 20000
  config.eval_every = 1000
  config.checkpoint_every = 1000
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/gan_folder")
