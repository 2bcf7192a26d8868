"""VAEs: VAE, beta-VAE and IWAE, with likelihoods in nats."""

from genjax.models import Family, register
from genjax.models.vae import evaluate, step

FAMILY = register(Family(
    name="vae",
    create_state=step.create_state,
    make_train_step=step.make_train_step,
    validate_config=step.validate_config,
    make_evaluator=evaluate.make_evaluator,
    sample=step.sample,
    evaluate_metrics=evaluate.evaluate_metrics,
    metric_options=("iwae_k", "chunk"),
    convolutional=lambda config: config.model.arch != "mlp",
))
