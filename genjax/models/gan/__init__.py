"""GANs: the DCGAN family of losses, conditional, EMA, augmentation (DiffAugment,
ADA), LeCam and virtual batch norm options."""

from genjax.models import Family, register
from genjax.models.gan import evaluate, step

FAMILY = register(Family(
    name="gan",
    create_state=step.create_state,
    make_train_step=step.make_train_step,
    validate_config=step.validate_config,
    make_evaluator=evaluate.make_evaluator,
    sample=step.sample,
    batches_per_step=step.batches_per_step,
))
