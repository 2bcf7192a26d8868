"""pix2pix: paired image-to-image translation (genjax.data.paired)."""

from genjax.data import paired, unpaired
from genjax.models import Family, Translator, register
from genjax.models.pix2pix import evaluate, step


def validate_config(config) -> None:
  paired.check_config(config.data)
  step.validate_config(config)


def translator(config, image_shape) -> Translator:
  prepare, how = paired.translation_input(config.data, image_shape)
  return Translator(directions=("ab",), size=paired.model_size(config.data), prepare=prepare,
                    how=how, apply=lambda state, x, direction, key: step.translate(state, x, key))


FAMILY = register(Family(
    name="pix2pix",
    create_state=step.create_state,
    make_train_step=step.make_train_step,
    validate_config=validate_config,
    make_evaluator=evaluate.make_evaluator,
    evaluate_metrics=evaluate.evaluate_metrics,
    load_split=lambda config, split: paired.load(config.data, split),
    to_device=unpaired.to_device,
    make_draw_batch=lambda config: paired.make_draw_batch(
        config.data.load_size, config.data.crop_size, config.data.flip),
    streams=False,
    translator=translator,
))
