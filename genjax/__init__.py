"""genjax: GANs, VAEs and CycleGAN in functional JAX.

See README.md; the library is pure functions and Flax modules, the command
lines live in `experiments/` and `genjax.sample`.
"""

import os as _os

# TensorFlow is only used by TFDS to read files; keep its start-up chatter out.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
