"""The progressive GAN: one state holds every resolution's blocks."""

from genjax.models import Family, register
from genjax.models.progan import evaluate, step

FAMILY = register(Family(
    name="progan",
    create_state=step.create_state,
    make_train_step=step.make_train_step,
    validate_config=step.validate_config,
    make_evaluator=evaluate.make_evaluator,
    sample=step.sample,
))
