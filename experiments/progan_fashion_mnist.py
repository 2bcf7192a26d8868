"""Progressive GAN on Fashion-MNIST: `python -m experiments.progan_fashion_mnist`.

Karras et al. 2018: the networks grow 4x4 -> 8x8 -> 16x16 -> 32x32 (the
28x28 garments padded to 32 with the black background inside the step);
each new resolution fades in linearly over `phase.fade_images` images, then
trains alone for `phase.stable_images`; the last until `num_steps`.
WGAN-GP with the drift term, Adam(1e-3, 0, 0.99), equalised learning rate,
pixel norm in G, minibatch stddev in D, samples from G's EMA. docs/progan.md
gives the method, the phase design, the time the default takes and its FID.

  python -m experiments.progan_fashion_mnist
  python -m experiments.progan_fashion_mnist --config=experiments/progan_fashion_mnist.py:tiny
  python -m experiments.progan_fashion_mnist --config=experiments/progan_fashion_mnist.py:folder \\
      --config.data.path=~/photos --config.data.image_size=64     # your images, to 64x64

The default shows recognisable garments at the end; docs/progan.md gives
its time and FID against the DCGAN's at the same wall time. On a GPU add
--config.steps_per_call=10.

Samples are drawn at the resolution the run is at, upsampled (nearest) to
the final size and cropped back to the data's (28x28 here), so grids line
up and the Fashion-MNIST feature network scores them as they are.
"""

import ml_collections

from genjax import configs

# name -> (overrides of the default config, description)
PRESETS = {
    "paper": ({"phase.fade_images": 800_000, "phase.stable_images": 800_000,
               "num_steps": 350_000, "ema_decay": 0.999, "steps_per_call": 10,
               "model.latent_dim": 512, "model.g_width": 128, "model.d_width": 128,
               "model.max_width": 512},
              "the paper's phase lengths (800k images), EMA and widths: an accelerator run"),
    "tiny": ({"batch_size": 16, "num_steps": 40, "steps_per_call": 1, "eval_every": 10,
              "checkpoint_every": 10, "num_eval_samples": 16, "metrics_num_samples": 0,
              "phase.fade_images": 80, "phase.stable_images": 80, "model.latent_dim": 16,
              "model.g_width": 4, "model.d_width": 4, "model.max_width": 8},
             "every phase in 40 steps of tiny networks, for tests"),
    "folder": ({"num_steps": 12_000, "grid_scale": 1},
               "a folder of images (`--config.data.path=...`, `--config.data.image_size=64`): "
               "grows to 64x64, which is stable from step 8,000"),
}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """The default config, or presets of PRESETS ('tiny', 'folder', 'folder,tiny')."""
  config = _base_config()
  if preset and "folder" in [p.strip() for p in preset.split(",")]:
    configs.use_image_folder(config, image_size=64)
  return configs.with_presets(config, PRESETS, preset)


def _base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.family = "progan"
  config.seed = 0
  config.batch_size = 16  # global batch (the paper's up to 128x128), a multiple of model.mbstd_group
  # Generator updates over all phases; the last resolution trains from the
  # end of its fade-in until here.
  config.num_steps = 9000
  config.gp_weight = 10.0  # WGAN-GP's lambda
  config.drift = 0.001  # epsilon * E[D(x)^2] on real scores keeps D's output near 0
  config.ema_decay = 0.99  # samples and metrics from an EMA of G's weights (about 100 steps); 0 = off

  config.phase = ml_collections.ConfigDict()
  config.phase.fade_images = 16_000  # real images shown while a new resolution fades in
  config.phase.stable_images = 16_000  # then shown to it alone (4x4: the whole first phase)

  config.model = ml_collections.ConfigDict()
  config.model.latent_dim = 128  # z ~ N(0, I), pixel-normalised
  config.model.g_width = 16  # generator channels at the final resolution; x2 per lower one
  config.model.d_width = 16  # discriminator channels at the final resolution; x2 per lower one
  config.model.max_width = 32  # at most this many channels at any resolution
  config.model.mbstd_group = 4  # minibatch standard deviation over groups of this many

  config.opt = ml_collections.ConfigDict()
  config.opt.g_lr = 1e-3  # Adam(1e-3, 0, 0.99, 1e-8), as the paper
  config.opt.d_lr = 1e-3
  config.opt.b1 = 0.0
  config.opt.b2 = 0.99
  config.opt.eps = 1e-8
  config.opt.reset_each_phase = True  # zero both Adam states when a fade-in begins (docs/progan.md)

  config.data = ml_collections.ConfigDict()
  config.data.name = "fashion_mnist"  # any MNIST-format or small TFDS image dataset
  config.data.data_dir = ""  # TFDS data_dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.idx_dir = ""  # folder of MNIST-format IDX files (offline path)
  config.data.download = True  # try a TFDS download when nothing is local
  config.data.pipeline = "device"  # device (held on the devices) | stream (read by the host) | auto
  config.data.threads = 4  # stream: reader threads per process

  config.steps_per_call = 1  # train steps per compiled call (see docs/progan.md: 10 on a GPU)
  config.eval_every = 1000  # = a phase's steps: a grid at the end of each phase  # sample grids to samples/ and TensorBoard
  config.checkpoint_every = 1000
  config.keep_checkpoints = 3
  config.num_eval_samples = 64
  config.grid_scale = 2  # PNG grids upscaled (nearest neighbour) to a size one can look at
  # FID, KID and classifier score of this many samples against the test split
  # at every evaluation, in the dataset's feature network; the state with the
  # lowest FID is kept in best_checkpoint/. 0 turns this off.
  config.metrics_num_samples = 2000
  return config


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/progan_fashion_mnist")
