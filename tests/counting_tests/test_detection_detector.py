"""Tests of detect_shapes(), which runs every method (Counting.detection.detector)."""

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)

from Counting.detection import detect_shapes


def test_bad_arguments(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    with pytest.raises(ValueError, match='unknown method'):
        detect_shapes(model, x, method='third')
    with pytest.raises(ValueError, match='threshold'):
        detect_shapes(model, x, threshold=-1)
    with pytest.raises(ValueError, match='batch'):
        detect_shapes(model, x, batch=0, count=1)
    with pytest.raises(ValueError, match='lower'):
        detect_shapes(model, x, method='upper', lower=0.6, upper=0.5, count=1)


@pytest.mark.gpu
def test_detect_on_gpu_runs_and_matches_cpu_saliency(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    threshold = helpers.middle_threshold(model, x)
    cpu = detect_shapes(model, x, threshold=threshold, count=4)
    model.to_device('@cupy:0')
    gpu = detect_shapes(model, x, threshold=threshold, count=4, batch=3)
    numpy.testing.assert_allclose(gpu.saliency, cpu.saliency, rtol=1e-5)
    assert len(gpu) == 4 and gpu[0].seed == cpu[0].seed
