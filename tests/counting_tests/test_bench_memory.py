"""Tests of the memory benchmark's measures (Counting.bench.memory)."""
import os
import subprocess
import sys

import numpy

from Counting.bench import memory


def test_descendants_and_pss_follow_a_child_process():
    child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                             stdin=subprocess.PIPE)
    try:
        tree = memory._descendants(os.getpid())
        assert tree[0] == os.getpid() and child.pid in tree
        before = memory._pss_kb(os.getpid())
        block = numpy.ones(64 * 2 ** 20 // 8)   # 64 MiB, touched
        after = memory._pss_kb(os.getpid())
        assert block[-1] == 1 and 0 < before and after - before > 48 * 1024
    finally:
        child.communicate(b'')
    assert memory._pss_kb(child.pid) == 0   # gone: counted as nothing
    assert child.pid not in memory._descendants(os.getpid())
