"""Inpainting Fashion-MNIST garments: `python -m experiments.inpaint_fashion_mnist`.

The pix2pix family with `task=inpaint` (genjax.models.pix2pix.step): each
garment (padded to 32x32) loses a hole, the centre 16x16 square
(`data.mask=centre`) or free-form brush strokes (`data.mask=free_form`),
drawn per image in the compiled step from the step's key; the input is the
garment with the hole filled with its known pixels' mean, plus the mask as
a second channel. The U-Net (width 16, 5 levels, no dropout) fills the
hole; its known pixels are the input's, exactly. Loss: 100 x (L1 in the
hole + 0.1 x L1 outside it) and the conditional PatchGAN's, on the
composited image.

  python -m experiments.inpaint_fashion_mnist
  python -m experiments.inpaint_fashion_mnist --config.data.mask=free_form
  python -m genjax.evaluate --workdir runs/inpaint_fashion_mnist --num 0
  python -m genjax.translate --workdir runs/inpaint_fashion_mnist --input IMG/ --masks M/ --out OUT/
  python -m experiments.inpaint_fashion_mnist --config=experiments/inpaint_fashion_mnist.py:tiny

The evaluation reports L1, PSNR and SSIM inside the hole and the FID in
Fashion-MNIST's feature network, beside the same for `mean_fill` (the
masked input).
"""

import ml_collections

from experiments import pix2pix_edges2fashion
from genjax import configs

PRESETS = {
    "tiny": ({"batch_size": 16, "num_steps": 30, "decay_start": 30, "model.g_width": 8,
              "model.d_width": 4, "opt.lr": 2e-3, "eval_every": 30, "checkpoint_every": 30},
             "small networks trained for seconds, for tests"),
}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  """The default config, or presets of PRESETS."""
  config = pix2pix_edges2fashion.get_config()
  config.task = "inpaint"  # inputs: the targets with a data.mask hole, and the mask
  config.batch_size = 32
  config.num_steps = 3000
  config.decay_start = 1500
  config.model.dropout, config.model.dropout_layers = 0.0, 0
  config.data.name = "fashion_mnist"  # the garments are the targets
  config.data.image_size = 32  # padded by 2, so that the U-Net halves it to 1x1
  config.data.mask = "centre"  # centre | free_form
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/inpaint_fashion_mnist")
