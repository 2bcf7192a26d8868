"""CycleGAN: unpaired translation between two image sets (genjax.data.unpaired)."""

from genjax.data import unpaired
from genjax.models import Family, register
from genjax.models.cyclegan import evaluate, step

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
))
