"""The full form of Pairwise Difference against its definition, and the checks that the pair form
(test_pairwise_pairs.py) runs on its own layer too: the FunctionTestCase mixin, the gradient
nodes, double backward, memory and bad input."""
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
from tests.conftest import FLOAT_DTYPES, DtypeTolerances, function_tests

# gradient_check's random directions (the FunctionTestCase has fix_random through function_tests).
pytestmark = pytest.mark.usefixtures('fixed_random')


def flat64(x):
    """``x`` flattened per sample, in float64: the ``(B, P)`` vectors ``v`` of the layer."""
    x = numpy.asarray(x, dtype=numpy.float64)
    return x.reshape(x.shape[0], -1)


def _reference(v, W):
    """Independent forward: explicit loops over samples and outputs, in float64."""
    B, P = v.shape
    y = numpy.zeros((B, W.shape[0]))
    for b in range(B):
        for k in range(W.shape[0]):
            total = 0.0
            for i in range(P):
                for j in range(P):
                    total += W[k, i * P + j] / (1.0 + numpy.exp(-(v[b, i] - v[b, j])))
            y[b, k] = total
    return y


def chunked_layer_cases(chunk_sizes):
    """The cases of :class:`ChunkedLayerCase`: two input shapes, one and three outputs, the
    chunk sizes given, both float dtypes."""
    return testing.product({
        'x_shape': [(2, 1, 3, 3), (3, 4)],
        'out_size': [1, 3],
        'chunk_size': chunk_sizes,
        'dtype': FLOAT_DTYPES,
    })


class ChunkedLayerCase(DtypeTolerances):
    """Mixin of the FunctionTestCase of a chunked Pairwise Difference form ``layer(x, W,
    chunk_size)``: ``x`` uniform in [-3, 3], weights ``(out_size, weight_columns(P))`` uniform in
    ``[-weight_scale, weight_scale]``, checked against ``reference(v, W)`` (float64)."""

    tolerances = 'pairwise'

    def generate_inputs(self):
        x = numpy.random.uniform(-3, 3, self.x_shape).astype(self.dtype)
        P = x.size // x.shape[0]
        W = numpy.random.uniform(-self.weight_scale, self.weight_scale,
                                 (self.out_size, self.weight_columns(P))).astype(self.dtype)
        return x, W

    def forward(self, inputs, device):
        x, W = inputs
        return self.layer(x, W, self.chunk_size),

    def forward_expected(self, inputs):
        x, W = inputs
        return self.reference(flat64(x), W).astype(self.dtype),


@function_tests(*chunked_layer_cases([2, 64]))
class TestPairwiseDifference(ChunkedLayerCase, testing.FunctionTestCase):

    layer = staticmethod(pairwise_difference)
    reference = staticmethod(_reference)
    weight_scale = 1

    @staticmethod
    def weight_columns(P):
        return P * P


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


def check_grad_node_outputs(Grad, weight_columns):
    """``Grad(chunk_size, outputs)``, a node ``(x, W, gy) -> (gx, gW)``, computes only the
    gradients named in ``outputs``, each as when both are asked for."""
    rng = numpy.random.RandomState(6)
    x = rng.uniform(-2, 2, (2, 1, 2, 3))
    W = rng.uniform(-1, 1, (3, weight_columns))
    gy = rng.randn(2, 3)
    gx, gW = Grad(4, (0, 1)).apply((x, W, gy))
    only_gx = Grad(4, (0,)).apply((x, W, gy))
    only_gW = Grad(4, (1,)).apply((x, W, gy))
    assert len(only_gx) == len(only_gW) == 1
    assert only_gx[0].shape == x.shape and only_gW[0].shape == W.shape
    numpy.testing.assert_array_equal(only_gx[0].array, gx.array)
    numpy.testing.assert_array_equal(only_gW[0].array, gW.array)
    with pytest.raises(ValueError, match='outputs'):
        Grad(4, ())


def test_grad_node_computes_only_the_requested_gradients():
    check_grad_node_outputs(PairwiseDifferenceGrad, 36)


def check_double_backward_through(layer, wrt, seed, P, weight_columns, chunk_size):
    """Double backprop of ``layer(x, W, chunk_size)`` through ``x`` or ``W`` alone (``wrt``)
    against finite differences, in float64: 2 samples of ``P`` entries, 3 outputs."""
    rng = numpy.random.RandomState(seed)
    x = rng.uniform(-2, 2, (2, P))
    W = rng.uniform(-1, 1, (3, weight_columns))
    gy = rng.randn(2, 3)
    if wrt == 'x':
        gradient_check.check_double_backward(
            lambda x: layer(x, W, chunk_size), x, gy, rng.randn(*x.shape), atol=1e-7, rtol=1e-6)
    else:
        gradient_check.check_double_backward(
            lambda W: layer(x, W, chunk_size), W, gy, rng.randn(*W.shape), atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize('wrt,seed', [('x', 3), ('W', 4)])
def test_double_backward_through_one_input(wrt, seed):
    check_double_backward_through(pairwise_difference, wrt, seed, 4, 16, 3)


#: Samples, inputs, outputs and chunk size of the memory tests: the whole B x P x P float32
#: tensor would be 4 * 400 * 400 * 4 bytes = 2.56 MB; one chunk of 8 rows is 51 kB.
MEMORY_B, MEMORY_P, MEMORY_N, MEMORY_CHUNK = 4, 400, 2, 8


def memory_inputs(weight_columns):
    """``(x, W, full)`` of the memory tests: float32 Variables ``x`` (B x P, in [0, 255]) and
    ``W`` (N x weight_columns, in [-1, 1]), and the bytes of a whole B x P x P float32 tensor."""
    B, P, N = MEMORY_B, MEMORY_P, MEMORY_N
    rng = numpy.random.RandomState(5)
    x = chainer.Variable(rng.uniform(0, 255, (B, P)).astype(numpy.float32))
    W = chainer.Variable(rng.uniform(-1, 1, (N, weight_columns)).astype(numpy.float32))
    return x, W, B * P * P * 4


class TracedMemory(object):
    """``with TracedMemory() as memory:`` traces allocations (tracemalloc); ``memory.mark()``
    returns ``(held, peak)``, the bytes held now and at the peak since the previous mark, both
    counted from the start, and starts a new peak."""

    def __enter__(self):
        tracemalloc.start()
        self.start = tracemalloc.get_traced_memory()[0]
        return self

    def mark(self):
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        return held - self.start, peak - self.start

    def __exit__(self, *exc_info):
        tracemalloc.stop()


def test_memory_stays_bounded_by_the_chunk():
    x, W, full = memory_inputs(MEMORY_P * MEMORY_P)
    with TracedMemory() as memory:
        y = pairwise_difference(x, W, MEMORY_CHUNK)
        held, peak_forward = memory.mark()
        y.grad = numpy.ones_like(y.array)
        y.backward()
        after_backward, peak_backward = memory.mark()
    # Between forward and backward the graph keeps x and W (referenced, not copied) and y.
    assert held < full / 20
    assert peak_forward < full / 4
    # Backward allocates gW (N P^2 values) and x.grad plus two chunk buffers, never B P^2.
    grads = W.array.nbytes + x.array.nbytes
    assert peak_backward >= W.array.nbytes  # NumPy does report to tracemalloc
    assert peak_backward < grads + full / 4
    assert after_backward < grads + full / 20


#: Chunk sizes every chunked layer refuses.
BAD_CHUNK_SIZES = [0, -1, 2.5, True]


def check_refused_types(layer, x_shape, x_dtype, w_shape, w_dtype, match):
    """``layer(x, W)`` on zero arrays of these shapes and dtypes fails its type check with a
    message matching ``match``."""
    with pytest.raises(type_check.InvalidType, match=match):
        layer(numpy.zeros(x_shape, dtype=x_dtype), numpy.zeros(w_shape, dtype=w_dtype))


F32, F64 = numpy.float32, numpy.float64


class TestFailures:

    @pytest.mark.parametrize('x_shape,x_dtype,w_shape,w_dtype,match', [
        pytest.param((2, 4), numpy.int32, (3, 16), F32, 'dtype', id='integer_input'),
        pytest.param((2, 4), F32, (3, 16), F64, 'dtype', id='mixed_float_dtypes'),
        # A Linear's W, not (N, P * P).
        pytest.param((2, 1, 2, 2), F32, (3, 4), F32, 'W.shape', id='W_not_P_squared_columns'),
        pytest.param((2, 4), F32, (16,), F32, 'W.ndim', id='W_not_2d'),
        pytest.param((4,), F32, (3, 16), F32, 'x.ndim', id='unbatched_input'),
    ])
    def test_bad_input(self, x_shape, x_dtype, w_shape, w_dtype, match):
        check_refused_types(pairwise_difference, x_shape, x_dtype, w_shape, w_dtype, match)

    @pytest.mark.parametrize('chunk', BAD_CHUNK_SIZES)
    def test_bad_chunk_size(self, chunk):
        x = numpy.zeros((2, 4), dtype=numpy.float32)
        W = numpy.zeros((3, 16), dtype=numpy.float32)
        with pytest.raises(ValueError, match='chunk_size'):
            pairwise_difference(x, W, chunk)


testing.run_module(__name__, __file__)
