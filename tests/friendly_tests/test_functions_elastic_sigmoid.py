import warnings

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
from chainer import testing
from chainer.utils import type_check

from Friendly.functions import elastic_sigmoid
from tests.conftest import FLOAT_DTYPES, DtypeTolerances, function_tests


@function_tests(*testing.product({
    'x_shape': [(3, 4), (2, 1, 3)],
    's_shape': [(1,), ()],
    's_value': [1.0, -0.6, 2.5],
    'dtype': FLOAT_DTYPES,
}))
class TestElasticSigmoid(DtypeTolerances, testing.FunctionTestCase):

    tolerances = 'smooth'

    def generate_inputs(self):
        x = numpy.random.uniform(-3, 3, self.x_shape).astype(self.dtype)
        s = numpy.full(self.s_shape, self.s_value, dtype=self.dtype)
        return x, s

    def forward(self, inputs, device):
        return elastic_sigmoid(*inputs),

    def forward_expected(self, inputs):
        x, s = inputs
        z = x.astype(numpy.float64) * float(s.reshape(()))
        return (1 / (1 + numpy.exp(-z))).astype(self.dtype),


def test_gradients_closed_form():
    x = numpy.array([[-1.0, 0.0, 2.0]])
    s = numpy.array([0.5])
    xv, sv = chainer.Variable(x), chainer.Variable(s)
    y = elastic_sigmoid(xv, sv)
    gy = numpy.array([[1.0, 2.0, 3.0]])
    y.grad = gy
    y.backward()
    sig = 1 / (1 + numpy.exp(-0.5 * x))
    slope = sig * (1 - sig)
    numpy.testing.assert_allclose(xv.grad, gy * 0.5 * slope, rtol=1e-12)
    numpy.testing.assert_allclose(sv.grad, [numpy.sum(gy * x * slope)], rtol=1e-12)
    assert sv.grad.shape == (1,)


def test_s_one_is_the_plain_sigmoid():
    x = numpy.linspace(-6, 6, 13, dtype=numpy.float32)
    y = elastic_sigmoid(x, numpy.ones(1, numpy.float32))
    numpy.testing.assert_allclose(y.array, chainer.functions.sigmoid(x).array, atol=1e-7)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_large_arguments_are_stable(dtype):
    x = numpy.array([-1e4, -100, 100, 1e4], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # an overflow in exp would warn
        xv = chainer.Variable(x)
        y = elastic_sigmoid(xv, numpy.array([3.0], dtype=dtype))
        y.grad = numpy.ones_like(x)
        y.backward()
    numpy.testing.assert_allclose(y.array, [0, 0, 1, 1], atol=1e-30)
    assert numpy.isfinite(xv.grad).all()


class TestFailures:

    def test_integer_input(self):
        with pytest.raises(type_check.InvalidType, match='dtype'):
            elastic_sigmoid(numpy.zeros(3, numpy.int32), numpy.ones(1, numpy.float32))

    def test_dtype_mismatch(self):
        with pytest.raises(type_check.InvalidType, match='s.dtype'):
            elastic_sigmoid(numpy.zeros(3, numpy.float32), numpy.ones(1, numpy.float64))

    def test_s_not_a_scalar(self):
        with pytest.raises(type_check.InvalidType, match='s.shape'):
            elastic_sigmoid(numpy.zeros(3, numpy.float32), numpy.ones(2, numpy.float32))

    def test_s_matrix(self):
        with pytest.raises(type_check.InvalidType, match='s.ndim'):
            elastic_sigmoid(numpy.zeros(3, numpy.float32), numpy.ones((1, 1), numpy.float32))


testing.run_module(__name__, __file__)
