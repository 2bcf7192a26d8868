"""CycleGAN: unpaired translation between two image sets (genjax.data.unpaired)."""

import numpy as np
from PIL import Image, ImageOps

from genjax.data import paired, unpaired
from genjax.models import Family, Translator, register
from genjax.models.cyclegan import evaluate, step


def translator(config, image_shape) -> Translator:
  """Inputs fitted to the stored size as the run's images were (a folder's:
  shorter side resized and centre-cropped; a dataset's: resized), then
  resized to the crop (or load) size the networks trained at."""
  data, stored = config.data, image_shape[0]
  size = data.crop_size or data.load_size or stored
  if unpaired.folder_domains(data) is not None:
    how = f"shorter side resized to {stored} and centre-cropped (bicubic), as the folders were"

    def fit(image):
      pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
      out = np.asarray(ImageOps.fit(pil, (stored, stored), Image.Resampling.BICUBIC), np.uint8)
      return out[..., None] if out.ndim == 2 else out
  else:
    how = f"resized to {stored}x{stored} (bicubic), the dataset's size"
    fit = lambda image: paired.resize(image, stored)
  if size != stored:
    how += f", then to {size}x{size}, the networks' size"
  return Translator(directions=("ab", "ba"), size=size, how=how,
                    prepare=lambda image: paired.resize(fit(image), size),
                    apply=lambda state, x, direction, key: step.translate(state, x, direction))


FAMILY = register(Family(
    name="cyclegan",
    create_state=step.create_state,
    make_train_step=step.make_train_step,
    validate_config=step.validate_config,
    make_evaluator=evaluate.make_evaluator,
    evaluate_metrics=evaluate.evaluate_metrics,
    load_split=lambda config, split: unpaired.load(config.data, split),
    to_device=unpaired.to_device,
    make_draw_batch=lambda config: unpaired.make_draw_batch(
        config.data.load_size, config.data.crop_size, config.data.flip),
    streams=False,
    translator=translator,
))
