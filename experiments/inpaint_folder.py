"""Inpainting your own images: `python -m experiments.inpaint_folder --config.data.path=DIR`.

  python -m experiments.inpaint_folder --config.data.path=~/photos
  python -m experiments.inpaint_folder --config.data.path=~/photos --config.data.mask=free_form
  python -m genjax.translate --workdir runs/inpaint_folder --input IMAGES/ --masks MASKS/ --out OUT/

Every image under `data.path` (recursively) is read once, resized to
`data.image_size` (bicubic, aspect ratio not kept) and held on the
devices; `data.test_percent` of them (by a hash of the relative name) are
held out. Batches are cropped to `crop_size` and flipped, then each image
loses a hole (`data.mask`: the centre square or free-form strokes, drawn
from the step's key in the compiled step, genjax.nn.degrade). The U-Net
(width 32, 6 levels, no dropout) fills it; the known pixels are kept
exactly. The evaluation reports L1, PSNR and SSIM inside the hole beside
`mean_fill` (the masked input).
"""

from experiments import inpaint_fashion_mnist, superres_folder
from genjax import configs

PRESETS = {
    "tiny": ({**inpaint_fashion_mnist.PRESETS["tiny"][0], "batch_size": 4, "num_steps": 10,
              "decay_start": 10, "eval_every": 10, "checkpoint_every": 10,
              "data.image_size": 32, "model.g_down": 5},
             "small networks trained for seconds, for tests"),
}


def get_config(preset: str | None = None):
  config = superres_folder.use_target_folder(inpaint_fashion_mnist.get_config())
  config.model.g_width, config.model.g_down = 32, 6
  return configs.with_presets(config, PRESETS, preset)


if __name__ == "__main__":
  from genjax import cli
  cli.main(get_config, default_workdir="runs/inpaint_folder")
