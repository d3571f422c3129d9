"""Friendly: adversarially "friendly" MNIST networks of thesis chapter 3."""
from lenses_common import compat  # noqa: F401  (before chainer, for NumPy 2)
