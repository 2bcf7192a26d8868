"""Speed and quality tooling, run from the repository root; not installed.

  python -m benchmarks.benchmark    train-step speed of each family, against PyTorch twins
  python -m benchmarks.population   a population of M models against one
  python -m benchmarks.progan       the progressive GAN's 32x32-phase step against PyTorch
  python -m benchmarks.report       trains the standard configurations, writes the results table

common.py holds what they share (timed windows, synthetic data, child
processes, the JSON report); twins.py the PyTorch twins of every family, one
registry; results/ the JSON of the measurements the docs quote.
"""
