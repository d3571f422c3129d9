"""Tests of the memory benchmark's measures (Counting.bench.memory_cases)."""
import os
import subprocess
import sys

from Counting.bench import memory_cases

# A child that touches 64 MiB when told to, then waits: its PSS must grow by about that much.
CHILD = ('import sys, numpy\n'
         'sys.stdin.readline()\n'
         'block = numpy.ones(64 * 2 ** 20 // 8)\n'
         'print(block[-1], flush=True)\n'
         'sys.stdin.read()\n')


def test_descendants_and_pss_follow_a_child_process():
    # Measured on a fresh child, not on the test process, whose allocator may hold freed pages.
    child = subprocess.Popen([sys.executable, '-c', CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        tree = memory_cases._descendants(os.getpid())
        assert tree[0] == os.getpid() and child.pid in tree
        before = memory_cases._pss_kb(child.pid)
        child.stdin.write('go\n')
        child.stdin.flush()
        assert child.stdout.readline().strip() == '1.0'
        after = memory_cases._pss_kb(child.pid)
        assert 0 < before and after - before > 48 * 1024
    finally:
        child.communicate('')
    assert memory_cases._pss_kb(child.pid) == 0   # gone: counted as nothing
    assert child.pid not in memory_cases._descendants(os.getpid())
