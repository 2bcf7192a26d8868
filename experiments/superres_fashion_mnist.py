"""x4 super-resolution of garments, 7 -> 28 px: `python -m experiments.superres_fashion_mnist`.

The pix2pix family with `task=superres` (genjax.models.pix2pix.step): each
garment's input is itself box-downsampled to 7x7 (and bicubic-upsampled
back to 28x28: the baseline), made per batch in the compiled step. SRGAN's
residual generator (SRResNet: 16 residual blocks of width 64 at 7x7, two
x2 sub-pixel upsamplings) maps it to 28x28 under 100 x L1, a content loss
(10 x the mean squared difference of the MNIST classifier's conv features:
a fixed network that is not the Fashion-MNIST one FID is measured in) and
an adversarial term of weight 0.1 (SRGAN's 1e-3 of the content loss) from
a 2-layer PatchGAN on (input, image) pairs. `--config.model.generator=unet`
refines the bicubic image with a 2-level U-Net instead.

  python -m experiments.superres_fashion_mnist
  python -m genjax.evaluate --workdir runs/superres_fashion_mnist --num 0
  python -m genjax.translate --workdir runs/superres_fashion_mnist --input SMALL/ --out OUT/
  python -m experiments.superres_fashion_mnist --config=experiments/superres_fashion_mnist.py:tiny

The evaluation reports the test garments' L1, PSNR and SSIM against the
originals and the FID in Fashion-MNIST's feature network, beside the same
for `bicubic` (the input itself).
"""

import ml_collections

from experiments import pix2pix_edges2fashion
from genjax import configs

PRESETS = {
    "tiny": ({"batch_size": 16, "num_steps": 30, "decay_start": 30, "model.g_width": 8,
              "model.res_blocks": 2, "model.d_width": 4, "opt.lr": 2e-3, "eval_every": 30,
              "checkpoint_every": 30},
             "small networks trained for seconds, for tests"),
}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """The default config, or presets of PRESETS."""
  config = pix2pix_edges2fashion.get_config()
  config.task = "superres"  # inputs: the targets downsampled by data.scale, bicubic-upsampled
  config.batch_size = 32
  config.num_steps = 3000
  config.decay_start = 1500
  config.adv_weight = 0.1  # beside l1_weight 100: SRGAN's 1e-3
  config.content_weight = 10.0  # feature MSE ~0.38 for bicubic: ~4 beside 100 x L1's ~21
  config.content_network = "mnist"  # not fashion_mnist, whose features FID is measured in
  config.model.generator = "srresnet"
  config.model.g_width, config.model.res_blocks = 64, 16  # SRGAN's
  config.model.g_down = 2  # generator=unet: 28 px halves twice
  config.model.dropout, config.model.dropout_layers = 0.0, 0
  config.data.name = "fashion_mnist"  # the garments are the targets
  config.data.image_size = 28
  config.data.scale = 4  # 28 -> 7 -> 28
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/superres_fashion_mnist")
