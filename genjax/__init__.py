"""genjax: GANs, VAEs and CycleGAN in functional JAX.

See README.md; the library is pure functions and Flax modules, the command
lines live in `experiments/` and `genjax.sample`.
"""

import os as _os

# TensorFlow is only used by TFDS to read files; keep its start-up chatter out.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _prefer_xla_convolutions_on_cpu() -> None:
  """Keeps XLA:CPU's convolutions on its own (Eigen) kernels.

  jaxlib 0.10 hands convolutions and matmuls to YNNPACK by default. On the
  2-core x86 machine measured (`python -m experiments.benchmark`) that runs the
  DCGAN's 3x3 and 4x4 convolutions and their gradients at about half the
  speed of XLA's own kernels (a 3x3 64->128 convolution at 14x14, batch 64:
  19 ms against 10 ms), and a 4096^3 matmul at 171 against 205 GFLOP/s; the
  gan_mnist step goes from ~390 to ~440 images/s. Must run before JAX starts
  its CPU backend; XLA_FLAGS that already name the option win, and other
  jaxlib versions (where the option may not exist) are left alone.
  """
  option = "--xla_cpu_experimental_ynn_fusion_type"
  flags = _os.environ.get("XLA_FLAGS", "")
  if option in flags or _os.environ.get("GENJAX_KEEP_XLA_FLAGS") == "1":
    return
  try:
    from jaxlib import version as _jaxlib_version
  except ImportError:
    return
  if not _jaxlib_version.__version__.startswith("0.10."):
    return
  _os.environ["XLA_FLAGS"] = f"{flags} {option}=".strip()


_prefer_xla_convolutions_on_cpu()
