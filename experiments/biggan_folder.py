"""BigGAN on a folder of RGB images: `python -m experiments.biggan_folder --config.data.path=DIR`.

Brock et al. 2019 at 32-256 px (genjax/models/biggan): residual G and D with
self-attention, spectral norm in both, the hinge loss, orthogonal
regularisation of G, an EMA of G for sampling, Adam(b1=0, b2=0.999) with
separate learning rates, and `d_steps` D updates per G update. With
`data.labels=folders` and `conditional=True` the first-level subfolders are
classes: class-conditional batch norm from a shared embedding and
hierarchical latents in G, a projection discriminator.

  python -m experiments.biggan_folder --config.data.path=~/photos --config.data.image_size=64
  python -m experiments.biggan_folder --config.data.path=~/photos --config.data.image_size=128 \\
      --config.data.labels=folders --config.conditional=True
  python -m experiments.biggan_folder --config=experiments/biggan_folder.py:paper \\
      --config.data.path=~/photos      # on an accelerator, 128 px
  python -m genjax.sample --workdir runs/biggan_folder --truncation 0.5 --labels city,sea

The default is sized for a 2-core CPU at 64 px (docs/models.md has its step
time); `paper` has BigGAN's 128 px widths, batch and learning rates; `ada`
turns on adaptive augmentation; `tiny` shrinks a run to seconds for tests.
As for gan_folder, the `metrics_num_samples` samples of each evaluation are
scored in Inception-v3's features when its weights are on disk, else in a
network trained on the folder's own classes (docs/evaluation.md).
"""

import ml_collections

from genjax import configs

PRESETS = {
    "paper": ({"data.image_size": 128, "batch_size": 256, "model.ch": 96, "model.attention": 64,
               "opt.g_lr": 1e-4, "opt.d_lr": 4e-4, "d_steps": 2, "ema_decay": 0.9999,
               "num_steps": 100000, "eval_every": 2000, "checkpoint_every": 2000},
              "Brock et al. 2019 at 128 px: ch 96, batch 256, Adam(1e-4 G, 4e-4 D, 0, 0.999), "
              "2 D steps (at 64 px: add --config.data.image_size=64 --config.model.ch=64 "
              "--config.model.attention=32)"),
    "ada": ({"augment": "ada"}, "Karras et al. 2020: adaptive augmentation (bgc) of what D sees"),
    "tiny": ({"batch_size": 8, "num_steps": 4, "steps_per_call": 1, "eval_every": 4,
              "checkpoint_every": 2, "num_eval_samples": 8, "metrics_num_samples": 0,
              "data.image_size": 32, "model.ch": 4, "model.attention": 16,
              "model.latent_dim": 16, "model.shared_dim": 8, "ema_decay": 0.9},
             "32 px, ch 4 and a run of seconds, for tests"),
}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """The default config, or presets of PRESETS ('paper', 'ada', 'tiny')."""
  return configs.with_presets(_base_config(), PRESETS, preset)


def _base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.family = "biggan"
  config.seed = 0
  config.batch_size = 16  # global batch, split over all devices
  config.num_steps = 6000  # generator updates
  config.d_steps = 1  # discriminator updates per generator update (BigGAN: 2)
  config.conditional = False  # class-conditional G and projection D (needs data.labels=folders)
  config.ortho_weight = 1e-4  # BigGAN's orthogonal regularisation of G; 0 = off
  config.ema_decay = 0.999  # samples and evaluations from an EMA of G's weights; 0 = off
  # What every image D sees, real or generated, passes through: none |
  # diffaugment (Zhao et al. 2020, the `diffaug` policy) | ada (Karras et al.
  # 2020: the bgc pipeline with probability p, raised while more than
  # ada_target of D's real outputs are positive, else lowered).
  config.augment = "none"
  config.diffaug = ""  # augment=diffaugment: DiffAugment's policy, e.g. color,translation,cutout
  config.ada_target = 0.6  # the target of r_t = E[sign(D(x_real))]
  config.ada_kimg = 100.0  # thousands of images for p to go from 0 to 1 (500 in ADA)
  config.ada_p_init = 0.0  # p at step 0
  config.lecam_weight = 0.0  # LeCam regularisation of D (Tseng et al. 2021; 0.3 with BigGAN); 0 = off

  config.model = ml_collections.ConfigDict()
  config.model.ch = 8  # channel multiplier: widths are ch x BigGAN's per-resolution multipliers
  config.model.attention = 32  # resolution of the self-attention block in G and D; 0 = none
  config.model.latent_dim = 120  # z ~ N(0, I), split into one chunk per G block when conditional
  config.model.shared_dim = 128  # the shared class embedding (conditional)

  config.opt = ml_collections.ConfigDict()
  config.opt.g_lr = 2e-4  # Adam, generator
  config.opt.d_lr = 4e-4  # Adam, discriminator: two time-scale learning rates
  config.opt.b1 = 0.0  # BigGAN's Adam: no momentum
  config.opt.b2 = 0.999  # Adam's second-moment decay

  config.data = ml_collections.ConfigDict()
  config.data.name = "folder"
  config.data.data_dir = ""  # TFDS data_dir of a prepared folder; "" = the default
  config.data.idx_dir = ""  # unused for folders; kept for the shared data keys
  config.data.download = False  # a folder is never downloaded
  config.data.threads = 4  # reader threads
  config.data.limit = 0  # train on the first `limit` training images only; 0 = all
  configs.use_image_folder(config, image_size=64)

  config.steps_per_call = 10  # train steps per compiled call (lax.scan)
  config.eval_every = 500  # sample grids to samples/ and TensorBoard
  config.checkpoint_every = 500
  config.keep_checkpoints = 3
  config.num_eval_samples = 64
  config.grid_scale = 1  # PNG grids upscaled (nearest neighbour) by this factor
  return config


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/biggan_folder")
