"""Tests of the stable softplus node (Counting.functions.softplus)."""

import numpy

from lenses_common import compat  # noqa: F401
from chainer import testing

from Counting import functions
from tests.conftest import FLOAT_DTYPES, DtypeTolerances, function_tests


def _np_softplus(x, beta):
    # Independent reference in float64 through logaddexp: log(exp(0) + exp(bx)) / b.
    return numpy.logaddexp(0, beta * x.astype(numpy.float64)) / beta


@function_tests(*testing.product({
    'shape': [(3, 4), ()],
    'dtype': FLOAT_DTYPES,
    'beta': [1.0, 0.5, 2.0],
}))
class TestStableSoftplus(DtypeTolerances, testing.FunctionTestCase):

    tolerances = 'elementwise'

    def generate_inputs(self):
        return numpy.random.uniform(-3, 3, self.shape).astype(self.dtype),

    def forward(self, inputs, device):
        x, = inputs
        return functions.stable_softplus(x, beta=self.beta),

    def forward_expected(self, inputs):
        x, = inputs
        return numpy.asarray(_np_softplus(x, self.beta), dtype=self.dtype),
