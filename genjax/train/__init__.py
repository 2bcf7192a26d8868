"""Training: the loop of one model (`loop`), its compiled calls (`calls`),
evaluation during training (`evaluation`), the run directory and resume
checks (`workdir`), and populations as a wrapped family (`population`)."""

from genjax.train.loop import TrainingDiverged, train_and_evaluate  # noqa: F401
