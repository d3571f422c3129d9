"""Tests of the stable softplus node (Counting.functions.softplus)."""

import numpy

from lenses_common import compat  # noqa: F401
from chainer import testing

from Counting import functions
from tests.conftest import FLOAT_DTYPES, ElementwiseCase, function_tests


@function_tests(*testing.product({
    'shape': [(3, 4), ()],
    'dtype': FLOAT_DTYPES,
    'beta': [1.0, 0.5, 2.0],
}))
class TestStableSoftplus(ElementwiseCase, testing.FunctionTestCase):

    input_range = (-3, 3)

    def function(self, x):
        return functions.stable_softplus(x, beta=self.beta)

    def expected(self, x):
        # Independent reference through logaddexp: log(exp(0) + exp(bx)) / b.
        return numpy.logaddexp(0, self.beta * x) / self.beta
