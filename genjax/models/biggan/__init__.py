"""BigGAN (Brock et al. 2019): residual G and D with self-attention, spectral
norm, class-conditional batch norm and a projection discriminator."""

from genjax.models import Family, register
from genjax.models.biggan import evaluate, step

FAMILY = register(Family(
    name="biggan",
    create_state=step.create_state,
    make_train_step=step.make_train_step,
    validate_config=step.validate_config,
    make_evaluator=evaluate.make_evaluator,
    sample=step.sample,
    batches_per_step=step.batches_per_step,
))
