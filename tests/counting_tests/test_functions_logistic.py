"""Tests of the stable logistic node (Counting.functions.logistic)."""

import numpy

from lenses_common import compat  # noqa: F401
from chainer import testing

from Counting import functions
from tests.conftest import FLOAT_DTYPES, DtypeTolerances, function_tests


@function_tests(*testing.product({
    'dtype': FLOAT_DTYPES,
    'beta': [1.0, 3.0],
}))
class TestLogistic(DtypeTolerances, testing.FunctionTestCase):

    tolerances = 'elementwise'

    def generate_inputs(self):
        return numpy.random.uniform(-2, 2, (4, 3)).astype(self.dtype),

    def forward(self, inputs, device):
        x, = inputs
        return functions.logistic(x, beta=self.beta),

    def forward_expected(self, inputs):
        x, = inputs
        return (1 / (1 + numpy.exp(-self.beta * x.astype(numpy.float64)))).astype(self.dtype),
