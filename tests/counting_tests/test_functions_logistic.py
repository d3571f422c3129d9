"""Tests of the stable logistic node (Counting.functions.logistic)."""

import numpy

from lenses_common import compat  # noqa: F401
from chainer import testing

from Counting import functions
from tests.conftest import FLOAT_DTYPES, ElementwiseCase, function_tests


@function_tests(*testing.product({
    'dtype': FLOAT_DTYPES,
    'beta': [1.0, 3.0],
}))
class TestLogistic(ElementwiseCase, testing.FunctionTestCase):

    input_range = (-2, 2)
    shape = (4, 3)

    def function(self, x):
        return functions.logistic(x, beta=self.beta)

    def expected(self, x):
        return 1 / (1 + numpy.exp(-self.beta * x))
