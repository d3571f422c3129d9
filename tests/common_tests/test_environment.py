import json
import os
import platform
import subprocess
import sys

import numpy
import pytest

from lenses_common import environment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _record(threads):
    """environment() in a fresh process whose OpenBLAS was started with ``threads`` threads."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), PYTHONPATH=REPO)
    env.pop('OMP_NUM_THREADS', None)
    out = subprocess.run([sys.executable, '-c', 'import json; from lenses_common.environment '
                          'import environment; print(json.dumps(environment()))'],
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_record_names_versions_and_cpu():
    record = environment.environment()
    assert record['python'] == platform.python_version()
    assert record['numpy'] == numpy.__version__
    assert record['cpu_count'] == os.cpu_count()
    json.dumps(record)   # JSON-ready
    if os.path.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            assert record['cpu_model'] in f.read()


def test_blas_threads_are_asked_of_the_loaded_library():
    one = _record(1)
    assert one['blas_thread_env']['OPENBLAS_NUM_THREADS'] == '1'
    if one['blas_threads'] is None:   # not OpenBLAS, or not Linux: only the variables are known
        return
    assert one['blas_threads'] == 1
    if (os.cpu_count() or 1) >= 2:
        # OpenBLAS caps the request at its build's MAX_THREADS and the CPUs it sees
        assert _record(2)['blas_threads'] == 2


@pytest.mark.skipif(not platform.libc_ver()[0] == 'glibc', reason='mallopt is glibc')
def test_large_allocations_come_from_the_kept_heap_after_reuse_large_allocations():
    # In a fresh process (the setting is process-wide). Before: a 100 MB array is mapped apart,
    # the program break does not move. After: it is served from the heap (the break grows by
    # its size) and, once freed, the heap is kept for the next one (the break stays).
    code = (
        'import ctypes, numpy\n'
        'from lenses_common import environment\n'
        'libc = ctypes.CDLL(None)\n'
        'libc.sbrk.restype = ctypes.c_void_p\n'
        'libc.sbrk.argtypes = (ctypes.c_long,)\n'
        'def brk():\n'
        '    return libc.sbrk(0)\n'
        'def grow():\n'
        '    start = brk(); a = numpy.ones(12_500_000); mid = brk(); del a\n'
        '    return mid - start, brk() - mid\n'
        'print(*grow())\n'
        'print(int(environment.reuse_large_allocations()))\n'
        'print(*grow())\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=REPO))
    lines = [list(map(int, line.split())) for line in out.stdout.splitlines()]
    (grown_before, _), (accepted,), (grown_after, shrunk_after) = lines
    assert grown_before < 2 ** 20              # mapped apart from the heap
    assert accepted == 1
    assert grown_after >= 100_000_000          # from the heap
    assert shrunk_after == 0                   # kept after free
