"""GANs on CIFAR-10 (32x32 RGB): `python -m experiments.gan_cifar10`.

The configs of experiments.gan_mnist (same presets: dcgan, wgan_gp,
hinge_sn, ...) with the DCGAN widths used for CIFAR-10: three 2x
upsamplings from 4x4 with 512-256-128 channels in G and 64-128-256 in D.
The data come from TFDS `cifar10`, which needs a download on first use (or
a prepared copy in the TFDS data dir); offline, the run stops at once and
says so. No feature network for CIFAR-10 is committed, so FID needs
`python -m genjax.metrics.train_classifier --dataset cifar10` first (see the
README); training and sample grids work without it.

  python -m experiments.gan_cifar10
  python -m experiments.gan_cifar10 --config=experiments/gan_cifar10.py:hinge_sn
"""

import ml_collections

from experiments import gan_mnist
from genjax import configs

PRESETS = gan_mnist.PRESETS


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  config = gan_mnist.get_config()
  config.data.name = "cifar10"
  config.num_steps = 50000
  config.batch_size = 64
  config.model.g_width = 128  # 512 -> 256 -> 128 channels over the three upsamplings
  config.model.d_width = 64  # 64 -> 128 -> 256
  configs.apply_overrides(config, gan_mnist.PAPER_ADAM)  # DCGAN's Adam(2e-4, 0.5, 0.999)
  config.eval_every = 2500
  config.checkpoint_every = 5000
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/gan_cifar10")
