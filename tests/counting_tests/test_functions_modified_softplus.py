"""Tests of the modified softplus node (Counting.functions.modified_softplus)."""

import numpy

from lenses_common import compat  # noqa: F401
from chainer import testing

from Counting import functions
from tests.conftest import FLOAT_DTYPES, DtypeTolerances, function_tests


@function_tests(*testing.product({
    'dtype': FLOAT_DTYPES,
    'base': [1.1, 2.0, 0.5],
}))
class TestModifiedSoftplus(DtypeTolerances, testing.FunctionTestCase):

    tolerances = 'elementwise'

    def generate_inputs(self):
        # Wider inputs: with base 1.1 the curve bends over tens of units.
        return numpy.random.uniform(-30, 30, (2, 5)).astype(self.dtype),

    def forward(self, inputs, device):
        x, = inputs
        return functions.modified_softplus(x, base=self.base),

    def forward_expected(self, inputs):
        x, = inputs
        b = self.base
        # The thesis's closed form, evaluated directly (safe for these moderate inputs).
        y = numpy.log1p(b ** x.astype(numpy.float64)) / numpy.log(b)
        return y.astype(self.dtype),
