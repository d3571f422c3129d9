"""Tests of Counting.functions.sparse_tangent_convolution (detection's sparse tangents)."""
import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F

from Counting.functions import sparse_tangent_convolution as stc


@pytest.mark.parametrize('ksize,stride,pad,dilate', [(3, 1, 0, 1), (7, 5, 0, 1), (5, 2, 2, 1),
                                                    (3, 3, 1, 2), (1, 1, 0, 1)])
def test_sparse_convolution_equals_the_dense_one(ksize, stride, pad, dilate):
    rng = numpy.random.RandomState(ksize + stride)
    W = rng.normal(size=(4, 3, ksize, ksize)).astype(numpy.float32)
    b = rng.normal(size=4).astype(numpy.float32)
    args = ((stride, stride), (pad, pad), (dilate, dilate))
    for y, x in [(0, 0), (20, 31), (47, 47), (10, 46)]:  # corners and edges meet the padding
        image = numpy.zeros((2, 3, 48, 48), numpy.float32)
        image[:, :, y:y + 2, x:x + 2] = rng.normal(size=(2, 3, 2, 2))[:, :, :48 - y, :48 - x]
        dense = F.convolution_2d(image, W, b, stride=stride, pad=pad, dilate=dilate).array
        sparse = stc.sparse_forward(image, W, b, *args)
        assert sparse is not None  # took the sparse path
        numpy.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-5)
        node = stc.SparseInputConvolution2D(stride=stride, pad=pad, dilate=dilate)
        with chainer.using_config('sparse_tangents', True):
            out, = node.apply((image, W, b))
        numpy.testing.assert_allclose(out.array, dense, rtol=1e-5, atol=1e-5)
    zero = numpy.zeros((1, 3, 48, 48), numpy.float32)
    out = stc.sparse_forward(zero, W, b, *args)
    numpy.testing.assert_array_equal(out, numpy.broadcast_to(b[None, :, None, None], out.shape))
    # A dense input is left to the library's own path.
    dense_input = rng.normal(size=(1, 3, 48, 48)).astype(numpy.float32)
    assert stc.sparse_forward(dense_input, W, None, *args) is None


def _second_row(conv, x, W, b, pixel):
    """d (d sum(softplus(conv(x))^2) / dx)[pixel] / dx: one row of a second derivative."""
    x = chainer.Variable(x)
    y = F.softplus(conv(x, W, b, stride=2, pad=1))
    g, = chainer.grad([F.sum(y * y)], [x], enable_double_backprop=True)
    seed = numpy.zeros_like(x.array)
    seed[pixel] = 1
    h, = chainer.grad([g], [x], grad_outputs=[seed])
    return y.array, g.array, h.array


@pytest.mark.parametrize('sparse', [False, True])
def test_tangent_sparse_convolution_has_the_derivatives_of_chainers(sparse, monkeypatch):
    rng = numpy.random.RandomState(3)
    x = rng.uniform(0, 1, (1, 2, 40, 40)).astype(numpy.float32)
    W = rng.normal(0, 0.3, (3, 2, 3, 3)).astype(numpy.float32)
    b = rng.normal(size=3).astype(numpy.float32)
    calls = []
    real = stc.sparse_forward
    monkeypatch.setattr(stc, 'sparse_forward', lambda *a: calls.append(1) or real(*a))
    expected = _second_row(F.convolution_2d, x, W, b, (0, 1, 20, 7))
    with chainer.using_config('sparse_tangents', sparse):
        got = _second_row(stc.tangent_sparse_convolution_2d, x, W, b, (0, 1, 20, 7))
    for e, a in zip(expected, got):
        numpy.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-6 * float(numpy.abs(e).max()))
    assert bool(calls) == sparse  # the tangent's convolution went the sparse way only when asked
    assert numpy.abs(expected[2]).max() > 0
