import tracemalloc

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
from chainer import gradient_check
from chainer import testing
from chainer.utils import type_check

from Friendly.functions import pairwise_difference
from Friendly.functions import PairwiseDifferenceGrad


def _reference(x, W):
    """Independent forward: explicit loops over samples and outputs, in float64."""
    x = numpy.asarray(x, dtype=numpy.float64)
    B = x.shape[0]
    v = x.reshape(B, -1)
    P = v.shape[1]
    y = numpy.zeros((B, W.shape[0]))
    for b in range(B):
        for k in range(W.shape[0]):
            total = 0.0
            for i in range(P):
                for j in range(P):
                    total += W[k, i * P + j] / (1.0 + numpy.exp(-(v[b, i] - v[b, j])))
            y[b, k] = total
    return y


@testing.parameterize(*testing.product({
    'x_shape': [(2, 1, 3, 3), (3, 4)],
    'out_size': [1, 3],
    'chunk_size': [2, 64],
    'dtype': [numpy.float32, numpy.float64],
}))
@testing.fix_random()
@testing.inject_backend_tests(None, [{}, {'use_cuda': True}])
class TestPairwiseDifference(testing.FunctionTestCase):

    def setUp(self):
        if self.dtype == numpy.float32:
            self.check_forward_options = {'atol': 1e-5, 'rtol': 1e-4}
            self.check_backward_options = {'atol': 5e-3, 'rtol': 5e-3}
            self.check_double_backward_options = {'atol': 5e-3, 'rtol': 5e-3}
        else:
            self.check_backward_options = {'atol': 1e-7, 'rtol': 1e-6}
            self.check_double_backward_options = {'atol': 1e-7, 'rtol': 1e-6}

    def generate_inputs(self):
        x = numpy.random.uniform(-3, 3, self.x_shape).astype(self.dtype)
        P = x.size // x.shape[0]
        W = numpy.random.uniform(-1, 1, (self.out_size, P * P)).astype(self.dtype)
        return x, W

    def forward(self, inputs, device):
        x, W = inputs
        return pairwise_difference(x, W, self.chunk_size),

    def forward_expected(self, inputs):
        x, W = inputs
        return _reference(x, W).astype(self.dtype),


def test_gradients_match_closed_form():
    rng = numpy.random.RandomState(1)
    B, P, N = 2, 5, 3
    x = rng.uniform(-2, 2, (B, P))
    W = rng.uniform(-1, 1, (N, P * P))
    gy = rng.randn(B, N)
    xv, Wv = chainer.Variable(x), chainer.Variable(W)
    y = pairwise_difference(xv, Wv, chunk_size=2)
    y.grad = gy
    y.backward()
    s = 1 / (1 + numpy.exp(-(x[:, :, None] - x[:, None, :])))
    ds = s * (1 - s)
    gW = numpy.einsum('bk,bij->kij', gy, s).reshape(N, P * P)
    G = numpy.einsum('bk,kij->bij', gy, W.reshape(N, P, P))
    gx = numpy.zeros((B, P))
    for b in range(B):
        for r in range(P):
            gx[b, r] = sum(ds[b, r, j] * (G[b, r, j] - G[b, j, r]) for j in range(P))
    numpy.testing.assert_allclose(Wv.grad, gW, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(xv.grad, gx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_chunk_size_does_not_change_results(dtype):
    rng = numpy.random.RandomState(2)
    x = rng.uniform(0, 255, (3, 1, 5, 5)).astype(dtype)  # P = 25
    W = rng.uniform(-1, 1, (4, 625)).astype(dtype)
    gy = rng.randn(3, 4).astype(dtype)
    results = []
    for chunk in (1, 4, 7, 25, 64):  # 4 and 7 do not divide 25
        xv, Wv = chainer.Variable(x), chainer.Variable(W)
        y = pairwise_difference(xv, Wv, chunk_size=chunk)
        y.grad = gy
        y.backward()
        results.append((y.array, xv.grad, Wv.grad))
    tol = {'rtol': 1e-5, 'atol': 1e-4} if dtype == numpy.float32 else {'rtol': 1e-12,
                                                                        'atol': 1e-10}
    for y, gx, gW in results[1:]:
        numpy.testing.assert_allclose(y, results[0][0], **tol)
        numpy.testing.assert_allclose(gx, results[0][1], **tol)
        numpy.testing.assert_array_equal(gW, results[0][2])  # computed row block by row block


def test_grad_node_computes_only_the_requested_gradients():
    rng = numpy.random.RandomState(6)
    x = rng.uniform(-2, 2, (2, 1, 2, 3))
    W = rng.uniform(-1, 1, (3, 36))
    gy = rng.randn(2, 3)
    gx, gW = PairwiseDifferenceGrad(4, (0, 1)).apply((x, W, gy))
    only_gx = PairwiseDifferenceGrad(4, (0,)).apply((x, W, gy))
    only_gW = PairwiseDifferenceGrad(4, (1,)).apply((x, W, gy))
    assert len(only_gx) == len(only_gW) == 1
    assert only_gx[0].shape == x.shape and only_gW[0].shape == W.shape
    numpy.testing.assert_array_equal(only_gx[0].array, gx.array)
    numpy.testing.assert_array_equal(only_gW[0].array, gW.array)
    with pytest.raises(ValueError, match='outputs'):
        PairwiseDifferenceGrad(4, ())


def test_double_backward_through_x_only():
    rng = numpy.random.RandomState(3)
    x = rng.uniform(-2, 2, (2, 4))
    W = rng.uniform(-1, 1, (3, 16))
    gy = rng.randn(2, 3)
    ggx = rng.randn(2, 4)
    gradient_check.check_double_backward(
        lambda x: pairwise_difference(x, W, 3), x, gy, ggx, atol=1e-7, rtol=1e-6)


def test_double_backward_through_W_only():
    rng = numpy.random.RandomState(4)
    x = rng.uniform(-2, 2, (2, 4))
    W = rng.uniform(-1, 1, (3, 16))
    gy = rng.randn(2, 3)
    ggW = rng.randn(3, 16)
    gradient_check.check_double_backward(
        lambda W: pairwise_difference(x, W, 3), W, gy, ggW, atol=1e-7, rtol=1e-6)


def test_memory_stays_bounded_by_the_chunk():
    # B x P x P float32 would be 4 * 400 * 400 * 4 bytes = 2.56 MB; one chunk of 8 rows is 51 kB.
    rng = numpy.random.RandomState(5)
    B, P, N, chunk = 4, 400, 2, 8
    x = chainer.Variable(rng.uniform(0, 255, (B, P)).astype(numpy.float32))
    W = chainer.Variable(rng.uniform(-1, 1, (N, P * P)).astype(numpy.float32))
    full = B * P * P * 4
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = pairwise_difference(x, W, chunk)
        held, peak_forward = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        y.grad = numpy.ones_like(y.array)
        y.backward()
        after_backward, peak_backward = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Between forward and backward the graph keeps x and W (referenced, not copied) and y.
    assert held - before < full / 20
    assert peak_forward - before < full / 4
    # Backward allocates gW (N P^2 values) and x.grad plus two chunk buffers, never B P^2.
    grads = W.array.nbytes + x.array.nbytes
    assert peak_backward - before >= W.array.nbytes  # NumPy does report to tracemalloc
    assert peak_backward - before < grads + full / 4
    assert after_backward - before < grads + full / 20


class TestFailures:

    def test_integer_input(self):
        x = numpy.zeros((2, 4), dtype=numpy.int32)
        W = numpy.zeros((3, 16), dtype=numpy.float32)
        with pytest.raises(type_check.InvalidType, match='dtype'):
            pairwise_difference(x, W)

    def test_mixed_float_dtypes(self):
        x = numpy.zeros((2, 4), dtype=numpy.float32)
        W = numpy.zeros((3, 16), dtype=numpy.float64)
        with pytest.raises(type_check.InvalidType, match='dtype'):
            pairwise_difference(x, W)

    def test_W_not_P_squared_columns(self):
        x = numpy.zeros((2, 1, 2, 2), dtype=numpy.float32)
        W = numpy.zeros((3, 4), dtype=numpy.float32)  # a Linear's W, not (N, P * P)
        with pytest.raises(type_check.InvalidType, match='W.shape'):
            pairwise_difference(x, W)

    def test_W_not_2d(self):
        x = numpy.zeros((2, 4), dtype=numpy.float32)
        W = numpy.zeros((16,), dtype=numpy.float32)
        with pytest.raises(type_check.InvalidType, match='W.ndim'):
            pairwise_difference(x, W)

    def test_unbatched_input(self):
        x = numpy.zeros((4,), dtype=numpy.float32)
        W = numpy.zeros((3, 16), dtype=numpy.float32)
        with pytest.raises(type_check.InvalidType, match='x.ndim'):
            pairwise_difference(x, W)

    @pytest.mark.parametrize('chunk', [0, -1, 2.5, True])
    def test_bad_chunk_size(self, chunk):
        x = numpy.zeros((2, 4), dtype=numpy.float32)
        W = numpy.zeros((3, 16), dtype=numpy.float32)
        with pytest.raises(ValueError, match='chunk_size'):
            pairwise_difference(x, W, chunk)


testing.run_module(__name__, __file__)
