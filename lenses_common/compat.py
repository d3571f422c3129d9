"""Let Chainer 7.8.1 import under NumPy 2 and on Python 3.12.

The pinned environment uses NumPy < 2 on Python 3.11, where this module does nothing. Two things
that Chainer reads at import time can be missing on a newer stack (the GPU machines: Python 3.12,
NumPy 2, CuPy 14):

- ``numpy.sctypes``, removed by NumPy 2. It is restored with the content NumPy 1.26 had.
- ``numpy.distutils`` (gone from NumPy 2 on Python >= 3.12) and ``pkg_resources`` (gone from
  setuptools >= 81), both imported by ``chainer._environment_check``. That module only warns (about
  Python 3.5.0, macOS Accelerate, and CuPy versions newer than Chainer knows); when either import is
  missing, a stand-in whose ``check()`` does nothing is registered under its name, so Chainer
  imports without those warnings. Where both imports exist the real check runs.

Nothing else is patched.
"""
import importlib.util
import sys
import types

import numpy

ENVIRONMENT_CHECK = 'chainer._environment_check'


def _sctypes():
    def present(*names):
        return [getattr(numpy, n) for n in names if hasattr(numpy, n)]
    return {
        'int': present('int8', 'int16', 'int32', 'int64'),
        'uint': present('uint8', 'uint16', 'uint32', 'uint64'),
        'float': present('float16', 'float32', 'float64', 'longdouble'),
        'complex': present('complex64', 'complex128', 'clongdouble'),
        'others': [bool, object, bytes, str, numpy.void],
    }


def restore_numpy_names():
    """Put back ``numpy.sctypes`` when it is missing; return True when something was restored."""
    if hasattr(numpy, 'sctypes'):
        return False
    numpy.sctypes = _sctypes()
    return True


def _importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def stand_in_environment_check():
    """Register a no-op ``chainer._environment_check`` when its imports are missing.

    Return True when the stand-in is (now) registered. Must run before Chainer is imported.
    """
    if ENVIRONMENT_CHECK in sys.modules:
        return getattr(sys.modules[ENVIRONMENT_CHECK], 'LENSES_STAND_IN', False)
    if _importable('numpy.distutils') and _importable('pkg_resources'):
        return False
    module = types.ModuleType(ENVIRONMENT_CHECK, 'Stand-in from lenses_common.compat: no checks.')
    module.check = lambda: None
    module.LENSES_STAND_IN = True
    sys.modules[ENVIRONMENT_CHECK] = module
    return True


restore_numpy_names()
stand_in_environment_check()
