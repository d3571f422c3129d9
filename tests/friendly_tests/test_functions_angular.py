import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
from chainer import gradient_check
from chainer import testing
from chainer.utils import type_check

from Friendly.functions import angular
from tests.conftest import FLOAT_DTYPES, DtypeTolerances, function_tests

# gradient_check's random directions (the FunctionTestCase has fix_random through function_tests).
pytestmark = pytest.mark.usefixtures('fixed_random')


def _reference(x, W, b, c):
    """Independent forward: per sample and output, in float64."""
    a = numpy.asarray(x, dtype=numpy.float64).reshape(len(x), -1)
    y = numpy.zeros((len(a), len(W)))
    for n in range(len(a)):
        for k in range(len(W)):
            w = W[k].astype(numpy.float64)
            y[n, k] = (w @ a[n]) / (numpy.sqrt(w @ w) * numpy.sqrt(a[n] @ a[n]) + c)
            if b is not None:
                y[n, k] += b[k]
    return y


@function_tests(*testing.product({
    'x_shape': [(3, 4), (2, 1, 2, 3)],
    'nobias': [False, True],
    'c': [0.2, 1.5],
    'zero_row': [False, True],
    'dtype': FLOAT_DTYPES,
}))
class TestAngular(DtypeTolerances, testing.FunctionTestCase):

    tolerances = 'smooth'

    def setUp(self):
        super().setUp()
        # At w = 0 the second derivative does not exist (the ||w|| (w . a) term is not twice
        # differentiable there), so finite differences cannot check it; finiteness is tested below.
        self.skip_double_backward_test = self.zero_row
        if self.zero_row:
            # Near w = 0 the layer has the odd term -||w|| (w . a) ||a|| / c^2, which makes the
            # central-difference error O(eps) instead of O(eps^2): use a small step (the numerical
            # gradient is computed in float64).
            self.check_backward_options = {'eps': 1e-6, 'atol': 1e-4, 'rtol': 1e-4}

    def generate_inputs(self):
        x = numpy.random.uniform(-1, 1, self.x_shape).astype(self.dtype)
        P = x.size // x.shape[0]
        W = numpy.random.uniform(-1, 1, (3, P)).astype(self.dtype)
        if self.zero_row:
            # A zero weight row: value and gradient (the layer is differentiable there).
            W[1] = 0
        if self.nobias:
            return x, W
        return x, W, numpy.random.uniform(-1, 1, 3).astype(self.dtype)

    def forward(self, inputs, device):
        return angular(*inputs, c=self.c),

    def forward_expected(self, inputs):
        x, W = inputs[:2]
        b = None if self.nobias else inputs[2]
        return _reference(x, W, b, self.c).astype(self.dtype),


def test_gradient_closed_form_with_corrected_sign():
    rng = numpy.random.RandomState(0)
    a = rng.randn(1, 5)
    W = rng.randn(2, 5)
    c = 0.2
    av, Wv = chainer.Variable(a), chainer.Variable(W)
    y = angular(av, Wv, c=c)
    y.grad = numpy.array([[1.0, 0.0]])
    y.backward()
    w, x = W[0], a[0]
    d, nw, na = w @ x, numpy.linalg.norm(w), numpy.linalg.norm(x)
    den = nw * na + c
    expected_ga = w / den - d * nw * x / (na * den ** 2)
    expected_gw = x / den - d * na * w / (nw * den ** 2)
    numpy.testing.assert_allclose(av.grad[0], expected_ga, rtol=1e-12)
    numpy.testing.assert_allclose(Wv.grad[0], expected_gw, rtol=1e-12)
    numpy.testing.assert_array_equal(Wv.grad[1], 0)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_zero_input_and_zero_weight_row_are_finite(dtype):
    rng = numpy.random.RandomState(1)
    c = 0.2
    a = rng.uniform(-1, 1, (3, 4)).astype(dtype)
    a[0] = 0  # an all-black image
    W = rng.uniform(-1, 1, (2, 4)).astype(dtype)
    W[1] = 0
    b = rng.uniform(-1, 1, 2).astype(dtype)
    gy = rng.randn(3, 2).astype(dtype)
    av, Wv, bv = (chainer.Variable(t) for t in (a, W, b))
    y = angular(av, Wv, bv, c=c)
    numpy.testing.assert_allclose(y.array[0], b, rtol=1e-6)  # cosine part is 0 at a = 0
    numpy.testing.assert_allclose(y.array[:, 1], numpy.full(3, b[1]), rtol=1e-6)
    ga, gW, gb = chainer.grad([y], [av, Wv, bv], [chainer.Variable(gy)],
                              enable_double_backprop=True)
    # The layer is differentiable at a = 0 with derivative w / c (the radial term vanishes).
    numpy.testing.assert_allclose(ga.array[0], gy[0] @ W / c, rtol=1e-5, atol=1e-6)
    # Likewise at w = 0: derivative a / c.
    numpy.testing.assert_allclose(gW.array[1], gy[:, 1] @ a / c, rtol=1e-5, atol=1e-6)
    # Double backprop (as GMR does): the squared norm of the input gradient.
    penalty = chainer.functions.sum(ga * ga) + chainer.functions.sum(gW * gW)
    gga, ggW = chainer.grad([penalty], [av, Wv])
    for g in (y.array, ga.array, gW.array, gb.array, gga.array, ggW.array):
        assert numpy.isfinite(g).all()


def test_gradient_at_zero_input_matches_finite_differences():
    rng = numpy.random.RandomState(2)
    a = rng.uniform(-1, 1, (2, 3))
    a[1] = 0
    W = rng.uniform(-1, 1, (2, 3))
    gy = rng.randn(2, 2)
    # The non-smooth term -||a|| (w . a) ||w|| / c^2 is O(|a|^2), so the derivative exists at
    # a = 0, but it gives central differences an O(eps) error there: use a small step.
    gradient_check.check_backward(
        lambda a, W: angular(a, W), (a, W), gy, eps=1e-7, atol=1e-6, rtol=1e-5)


class TestFailures:

    def test_integer_input(self):
        with pytest.raises(type_check.InvalidType, match='dtype'):
            angular(numpy.zeros((2, 3), numpy.int64), numpy.zeros((4, 3), numpy.float32))

    def test_mixed_dtypes(self):
        with pytest.raises(type_check.InvalidType, match='dtype'):
            angular(numpy.zeros((2, 3), numpy.float64), numpy.zeros((4, 3), numpy.float32))

    def test_bias_dtype(self):
        with pytest.raises(type_check.InvalidType, match='b.dtype'):
            angular(numpy.zeros((2, 3), numpy.float32), numpy.zeros((4, 3), numpy.float32),
                    numpy.zeros(4, numpy.float64))

    def test_W_columns(self):
        with pytest.raises(type_check.InvalidType, match='W.shape'):
            angular(numpy.zeros((2, 1, 2, 2), numpy.float32),
                    numpy.zeros((4, 3), numpy.float32))

    def test_bias_length(self):
        with pytest.raises(type_check.InvalidType, match='b.shape'):
            angular(numpy.zeros((2, 3), numpy.float32), numpy.zeros((4, 3), numpy.float32),
                    numpy.zeros(5, numpy.float32))

    @pytest.mark.parametrize('c', [0, -0.2])
    def test_c_must_be_positive(self, c):
        with pytest.raises(ValueError, match='c must be positive'):
            angular(numpy.zeros((2, 3), numpy.float32), numpy.zeros((4, 3), numpy.float32),
                    c=c)


testing.run_module(__name__, __file__)
