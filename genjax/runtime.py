"""Process-wide settings, made by the entry points (never by `import genjax`).

`configure()` is called first thing by every command line (the experiments
through `genjax.cli`, `genjax.sample`, `genjax.evaluate`, the benchmark, the
report, the classifier script), by the notebooks' first cell and by the
test suite's conftest. It must run before JAX starts its CPU backend (the
first computation or `jax.devices()`); importing jax before it is fine.
"""

import os

_YNN_OPTION = "--xla_cpu_experimental_ynn_fusion_type"


def configure() -> None:
  """Keeps XLA:CPU's convolutions on XLA's own kernels.

  jaxlib 0.10 hands convolutions and matmuls to
  YNNPACK by default, which runs the DCGAN's convolutions and their
  gradients at about half the speed of XLA's own kernels on the x86 CPUs
  measured (docs/performance.md), so the option is set to empty. XLA_FLAGS
  that already name the option win, `GENJAX_KEEP_XLA_FLAGS=1` leaves the
  flags alone, and other jaxlib versions (where the option may not exist)
  are not touched.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if _YNN_OPTION in flags or os.environ.get("GENJAX_KEEP_XLA_FLAGS") == "1":
    return
  try:
    from jaxlib import version as jaxlib_version  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  if jaxlib_version.__version__.startswith("0.10."):
    os.environ["XLA_FLAGS"] = f"{flags} {_YNN_OPTION}=".strip()
