"""pix2pix: paired image-to-image translation, super-resolution and inpainting
(genjax.data.paired, genjax.nn.degrade)."""

import jax
import jax.numpy as jnp

from genjax.data import paired, unpaired
from genjax.nn import degrade
from genjax.models import Family, Translator, register
from genjax.models.pix2pix import evaluate, step


def validate_config(config) -> None:
  step.validate_config(config)
  evaluate.check_content_network(config)
  paired.check_config(config.data, config.task)


def translator(config, image_shape) -> Translator:
  size = paired.model_size(config.data)
  if config.task == "superres":
    low = size // config.data.scale
    prepare = lambda im: im if im.shape[:2] == (low, low) else paired.resize(im, low)
    how = (f"taken as the low-resolution image at {low}x{low} (others resized, bicubic), "
           f"upsampled x{config.data.scale} (bicubic) and refined at {size}x{size}")
    apply = lambda state, x, direction, key: step.translate(
        state, jnp.clip(jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "bicubic"),
                        -1, 1), key)
    return Translator(directions=("ab",), size=size, prepare=prepare, how=how, apply=apply)
  prepare, how = paired.translation_input(config.data, image_shape)
  if config.task == "inpaint":
    how += "; the hole (white in its mask) filled in, the known pixels kept"
    apply = lambda state, x, direction, key: step.translate(
        state, degrade.inpaint_input(x[..., :-1], (x[..., -1:] > 0).astype(x.dtype)), key,
        "inpaint")
    return Translator(directions=("ab",), size=size, prepare=prepare, how=how, apply=apply,
                      needs_masks=True)
  return Translator(directions=("ab",), size=size, prepare=prepare,
                    how=how, apply=lambda state, x, direction, key: step.translate(state, x, key))


FAMILY = register(Family(
    name="pix2pix",
    create_state=step.create_state,
    make_train_step=lambda config: step.make_train_step(config,
                                                        evaluate.content_features(config)),
    validate_config=validate_config,
    make_evaluator=evaluate.make_evaluator,
    evaluate_metrics=evaluate.evaluate_metrics,
    load_split=lambda config, split: paired.load(config.data, split, config.task),
    to_device=unpaired.to_device,
    make_draw_batch=lambda config: paired.make_draw_batch(
        config.data.load_size, config.data.crop_size, config.data.flip, config.task,
        config.data.scale, config.data.mask),
    streams=False,
    translator=translator,
))
