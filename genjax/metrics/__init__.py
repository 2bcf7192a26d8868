"""Sample-quality metrics as pure functions over feature arrays [N, D].

Fréchet distance (Heusel et al. 2017), unbiased KID (Bińkowski et al. 2018),
k-NN precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem
et al. 2020). They are computed on host in float64 with numpy, in blocks, so
50,000 samples of a few hundred features fit in memory.
"""

from genjax.metrics.distances import (
    density_coverage,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)

__all__ = ["density_coverage", "feature_statistics", "frechet_distance",
           "kernel_inception_distance", "precision_recall"]
