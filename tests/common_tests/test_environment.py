import json
import os
import platform
import subprocess
import sys

import numpy

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
