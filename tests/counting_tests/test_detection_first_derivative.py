"""Tests of the first-derivative methods upper and kmeans (Counting.detection.first_derivative)."""

import numpy
import pytest
from scipy.cluster.vq import kmeans2

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F

from Counting import detection
from Counting.detection import detect_shapes


def test_kmeans_keeps_the_middle_cluster():
    rng = numpy.random.RandomState(0)
    low = rng.normal(0, 0.1, 100)
    mid = rng.normal(10, 0.1, 40)
    high = rng.normal(100, 0.1, 15)
    values = numpy.concatenate([low, mid, high])
    order = rng.permutation(len(values))
    centres, labels = detection.kmeans(values[order], k=3, seed=0)
    numpy.testing.assert_allclose(centres[:, 0], [low.mean(), mid.mean(), high.mean()])
    truth = numpy.repeat([0, 1, 2], [100, 40, 15])[order]
    numpy.testing.assert_array_equal(labels, truth)
    sal = numpy.abs(values[order]).reshape(5, 31)
    numpy.testing.assert_array_equal(detection.kmeans_middle(sal, seed=3),
                                     (truth == 1).reshape(5, 31))


def test_kmeans_is_deterministic_and_spaces_differ():
    rng = numpy.random.RandomState(2)
    sal = rng.exponential(1.0, (20, 20)) ** 4
    a = detection.kmeans_middle(sal, seed=7)
    numpy.testing.assert_array_equal(a, detection.kmeans_middle(sal, seed=7))
    # In the tenth-root space the clusters split the heavy tail differently.
    assert detection.kmeans_middle(sal, 'root').sum() > a.sum()
    with pytest.raises(ValueError, match='distinct'):
        detection.kmeans(numpy.array([1.0, 1.0, 2.0]), k=3)
    with pytest.raises(ValueError, match='space'):
        detection.kmeans_middle(sal, 'cube')


def _is_fixed_point(values, centres, labels):
    """Every centre is the mean of its members and every value is nearest to its own centre:
    one more Lloyd step would change nothing."""
    means = [values[labels == j].mean() for j in range(len(centres))]
    nearest = numpy.abs(values[:, None] - centres[None, :]).argmin(axis=1)
    return (numpy.allclose(centres, means, rtol=1e-12, atol=0)
            and numpy.array_equal(nearest, labels))


def test_kmeans_runs_to_a_fixed_point():
    # Evenly spaced values: Lloyd's steps move the boundaries slowly, and kmeans2's default ten
    # steps stop before they settle (checked below), so this needs the run to convergence.
    values = numpy.arange(3000.0)
    short_centres, short_labels = kmeans2(values[:, None], 3, minit='++', seed=0)
    assert not _is_fixed_point(values, short_centres[:, 0], short_labels)
    centres, labels = detection.kmeans(values, k=3, seed=0)
    assert list(centres[:, 0]) == sorted(centres[:, 0])
    assert _is_fixed_point(values, centres[:, 0], labels)


class Fixed(chainer.Chain):
    """out = sum(w * x) with a hand-chosen w, so the saliency map is |w|."""

    def __init__(self, w, bias):
        super().__init__()
        self.bias = bias
        with self.init_scope():
            self.w = chainer.Parameter(numpy.asarray(w, numpy.float32))

    def forward(self, x):
        return F.sum(x * F.broadcast_to(self.w, x.shape), axis=(1, 2, 3))[:, None] + self.bias


def test_upper_keeps_blobs_between_the_bounds():
    w = numpy.zeros((1, 3, 8, 10), numpy.float32)
    w[0, 0, 1:3, 1:4] = 0.3      # blob A, 6 pixels, kept
    w[0, 0, 5:7, 5:9] = 0.2      # blob B, 8 pixels, kept
    w[0, 1, 0, 9] = 1.0          # the maximum: above the upper bound
    w[0, 2, 7, 0] = 0.01         # below the lower bound
    model = Fixed(w, bias=0.0)
    x = numpy.zeros((3, 8, 10), numpy.float32)
    found = detect_shapes(model, x, method='upper', upper=0.5, lower=0.05, count=5)
    assert [g.box for g in found] == [[5, 5, 8, 6], [1, 1, 3, 2]]  # largest blob first
    assert found[0].seed == (5, 5) and found[1].seed == (1, 1)
    numpy.testing.assert_allclose(found[1].importance[1:3, 1:4], 0.3)
    assert found[1].importance.sum() == pytest.approx(6 * 0.3)
    only_one = detect_shapes(model, x, method='upper', upper=0.5, lower=0.05, count=1)
    assert [g.box for g in only_one] == [[5, 5, 8, 6]]
    assert detect_shapes(model, x, method='upper', count=5, min_size=7).boxes == [[5, 5, 8, 6]]


@pytest.mark.gpu
def test_upper_on_gpu_labels_on_the_device_and_matches_cpu():
    w = numpy.zeros((1, 3, 8, 10), numpy.float32)
    w[0, 0, 1:3, 1:4] = 0.3
    w[0, 0, 5:7, 5:9] = 0.2
    w[0, 1, 0, 9] = 1.0
    model = Fixed(w, bias=0.0)
    x = numpy.zeros((3, 8, 10), numpy.float32)
    cpu = detect_shapes(model, x, method='upper', count=5)
    model.to_device('@cupy:0')
    gpu = detect_shapes(model, model.device.send(x), method='upper', count=5)
    assert gpu.boxes == cpu.boxes == [[5, 5, 8, 6], [1, 1, 3, 2]]


def test_kmeans_on_a_flat_saliency_finds_nothing():
    # An image that the counter does not react to (saliency zero everywhere) has nothing to
    # cluster: no groups, instead of an error that would stop the whole run.
    class Flat(chainer.Chain):
        def forward(self, x):
            return F.relu(F.sum(x * 0, axis=(2, 3))[:, :2] + 1)

    found = detect_shapes(Flat(), numpy.zeros((3, 8, 8), numpy.float32), method='kmeans')
    assert found.count == 2 and len(found) == 0
