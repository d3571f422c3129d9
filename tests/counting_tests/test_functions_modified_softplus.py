"""Tests of the modified softplus node (Counting.functions.modified_softplus)."""

import numpy

from lenses_common import compat  # noqa: F401
from chainer import testing

from Counting import functions
from tests.conftest import FLOAT_DTYPES, ElementwiseCase, function_tests


@function_tests(*testing.product({
    'dtype': FLOAT_DTYPES,
    'base': [1.1, 2.0, 0.5],
}))
class TestModifiedSoftplus(ElementwiseCase, testing.FunctionTestCase):

    input_range = (-30, 30)   # wider inputs: with base 1.1 the curve bends over tens of units
    shape = (2, 5)

    def function(self, x):
        return functions.modified_softplus(x, base=self.base)

    def expected(self, x):
        # The thesis's closed form, evaluated directly (safe for these moderate inputs).
        return numpy.log1p(self.base ** x) / numpy.log(self.base)
