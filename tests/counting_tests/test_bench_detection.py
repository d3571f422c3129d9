"""Tests of the detection benchmark (Counting.bench.detection)."""

import pytest

from lenses_common import compat  # noqa: F401  (before chainer)


@pytest.mark.slow
def test_detection_benchmark_runs_and_finds_the_same_groups():
    from Counting.bench import detection_timing as bench_detection
    text = bench_detection.run(archs=('convolutional',), groups=3, batches=(2,), progress=False)
    rows = [line for line in text.splitlines() if line.startswith('| convolutional |')]
    assert len(rows) == 6  # one step, thesis loop, kept graph, sparse, packed, K = 2
    assert all(row.rstrip().endswith('| yes |') for row in rows[1:])
