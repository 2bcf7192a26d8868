"""VAE on Fashion-MNIST: `python -m experiments.vae_fashion_mnist`.

The configuration of experiments.vae_mnist (Burda et al. 2016's
architecture, Bernoulli decoder, dynamic binarisation) on Fashion-MNIST, which
installs offline from Debian (`apt-get install dataset-fashion-mnist`).

  python -m experiments.vae_fashion_mnist
  python -m genjax.evaluate --workdir runs/vae_fashion_mnist
"""

from experiments import vae_mnist
from genjax import configs

PRESETS = vae_mnist.PRESETS


def get_config(preset: str | None = None):
  config = vae_mnist.get_config()
  config.data.name = "fashion_mnist"
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/vae_fashion_mnist")
