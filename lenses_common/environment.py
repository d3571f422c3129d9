"""What a run's numbers depend on beyond its options: CPU, BLAS and its threads, library versions.

:func:`environment` is recorded under ``"environment"`` in every run's ``settings.json``
(:class:`lenses_common.runfolder.RunFolder`). Two runs of the same command and seed give the same
numbers when these agree (docs/run-folders.md).

How each entry is found (threadpoolctl is not a dependency):

* ``cpu_model``: the first ``model name`` of ``/proc/cpuinfo`` (Linux), else
  ``platform.processor()``; ``cpu_count``: ``os.cpu_count()`` (logical CPUs of the machine).
* ``blas``: NumPy's build record (``numpy.show_config(mode='dicts')``, NumPy >= 1.25): library
  name, version and, for OpenBLAS, its build configuration.
* ``blas_threads``: asked of the OpenBLAS that this process has loaded (its
  ``openblas_get_num_threads``, found through ``/proc/self/maps`` and ``ctypes``), with the kernel
  it chose for this CPU (``blas_core``); where that cannot be asked (another BLAS, not Linux) it is
  ``None`` and only the thread variables of the environment (``blas_thread_env``) are recorded.
"""
import ctypes
import importlib
import os
import platform
import sys

THREAD_VARIABLES = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def blas_build():
    """NumPy's BLAS as built: ``{'name', 'version', 'config'}`` (``None`` values where unknown)."""
    import numpy
    try:
        blas = numpy.show_config(mode='dicts')['Build Dependencies']['blas']
    except Exception:   # NumPy < 1.25 has no mode='dicts'; any failure means unknown
        return {'name': None, 'version': None, 'config': None}
    return {'name': blas.get('name'), 'version': blas.get('version'),
            'config': blas.get('openblas configuration')}


def _loaded_openblas():
    """The ``ctypes`` handle and symbol suffix of the OpenBLAS in this process, or None."""
    try:
        with open('/proc/self/maps') as f:
            paths = sorted({line.split()[-1] for line in f
                            if 'openblas' in line.lower() and '/' in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ('', '64_'):
            if hasattr(lib, 'openblas_get_num_threads' + suffix):
                return lib, suffix
    return None


def blas_runtime():
    """``(threads, core)`` of the loaded OpenBLAS, or ``(None, None)`` where it cannot be asked."""
    importlib.import_module('numpy')   # loads NumPy's BLAS
    found = _loaded_openblas()
    if found is None:
        return None, None
    lib, suffix = found
    threads = int(getattr(lib, 'openblas_get_num_threads' + suffix)())
    core = None
    if hasattr(lib, 'openblas_get_corename' + suffix):
        get_core = getattr(lib, 'openblas_get_corename' + suffix)
        get_core.restype = ctypes.c_char_p
        core = get_core().decode('ascii', 'replace')
    return threads, core


def _version(module):
    try:
        return __import__(module).__version__
    except Exception:   # absent, or present but unusable (CuPy without CUDA): not used here
        return None


def environment():
    """The record described in the module's docstring (a JSON-ready dict)."""
    threads, core = blas_runtime()
    return {
        'cpu_model': cpu_model(),
        'cpu_count': os.cpu_count(),
        'platform': platform.platform(),
        'blas': blas_build(),
        'blas_threads': threads,
        'blas_core': core,
        'blas_thread_env': {k: os.environ.get(k) for k in THREAD_VARIABLES},
        'python': platform.python_version(),
        'numpy': _version('numpy'),
        'chainer': _version('chainer'),
        'cupy': _version('cupy') if 'cupy' in sys.modules or _cupy_installed() else None,
    }


def _cupy_installed():
    import importlib.util
    return importlib.util.find_spec('cupy') is not None


# mallopt parameters of glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def reuse_large_allocations():
    """Serve every allocation from the heap and keep freed memory for reuse (glibc only).

    By default glibc maps each allocation above a threshold (at most 32 MB) afresh and unmaps it
    when freed, so a loop that makes a new 100 MB NumPy temporary per step pays the page faults
    of 100 MB each time, as system time. ``mallopt(M_MMAP_MAX, 0)`` serves them from the heap and
    a large ``M_TRIM_THRESHOLD`` keeps freed heap memory, so the next temporary reuses it. The
    numbers computed are the same; the process keeps its peak memory until it exits. Returns
    True when both settings were accepted, False elsewhere (another C library, not Linux).
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
