"""Helpers shared by the two experiments: device choice, seeding, run folders, progress.

Import this package (or any module in it) before Chainer: it first restores the NumPy names that
Chainer 7.8.1 still looks up when it is run under NumPy 2 (see :mod:`lenses_common.compat`).
"""
from lenses_common import compat  # noqa: F401  (must run before chainer is imported)
