"""Let Chainer 7.8.1 import under NumPy 2.

The pinned environment uses NumPy < 2, where this module does nothing. NumPy 2 removed
``numpy.sctypes``, which ``chainer/_environment_check.py`` reads at import time; a GPU machine whose
Python carries NumPy 2 and CuPy 14 can still run the project once that dictionary is restored with
the same content NumPy 1.26 had. Nothing else is patched.
"""
import numpy


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


restore_numpy_names()
