"""Counting: shape-counting CNNs, saliency and second-derivative detection of thesis chapter 2."""
from lenses_common import compat  # noqa: F401  (before chainer, for NumPy 2)
