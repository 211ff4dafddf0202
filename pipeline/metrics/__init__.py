"""Sample-quality metrics computed in the evaluator's feature space (REFERENCE.md)."""

from pipeline.metrics.fid import feature_stats, fid, frechet_distance
from pipeline.metrics.kid import kid, polynomial_mmd2_unbiased

__all__ = ["feature_stats", "fid", "frechet_distance", "kid", "polynomial_mmd2_unbiased"]
