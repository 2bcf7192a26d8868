"""A VAE on a folder of your own images: `python -m experiments.vae_folder --config.data.path=DIR`.

The folder is read as experiments.gan_folder reads it (genjax.data.folder:
any size and mode in, `data.image_size` and `data.channels` out, five
percent held out as the test split, unreadable files skipped and counted).
The model is vae_mnist's, with a Gaussian decoder on dequantised pixels
(photographs are not binary images); `genjax.evaluate` reports the test
ELBO and the IWAE-k bound as densities in nats on [0, 1]^D.

  python -m experiments.vae_folder --config.data.path=~/photos --config.data.image_size=32
"""

import ml_collections

from experiments import vae_mnist
from genjax import configs

PRESETS = vae_mnist.PRESETS


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """vae_mnist's config on an image folder, or presets of PRESETS."""
  config = configs.use_image_folder(vae_mnist.get_config(), image_size=32)
  config.model.likelihood = "gaussian"
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/vae_folder")
