"""Tests of the modified softplus node (Counting.functions.modified_softplus)."""

import numpy

from lenses_common import compat  # noqa: F401
from chainer import testing

from Counting import functions


_backends = testing.inject_backend_tests(
    None,
    [{}, {'use_cuda': True}])


@testing.parameterize(*testing.product({
    'dtype': [numpy.float32, numpy.float64],
    'base': [1.1, 2.0, 0.5],
}))
@_backends
class TestModifiedSoftplus(testing.FunctionTestCase):

    def setUp(self):
        if self.dtype == numpy.float32:
            self.check_backward_options = {'atol': 5e-3, 'rtol': 5e-3}
            self.check_double_backward_options = {'atol': 5e-3, 'rtol': 5e-2}
        else:
            self.check_backward_options = {'atol': 1e-6, 'rtol': 1e-6}
            self.check_double_backward_options = {'atol': 1e-6, 'rtol': 1e-6}

    def generate_inputs(self):
        # Wider inputs: with base 1.1 the curve bends over tens of units.
        x = numpy.random.uniform(-30, 30, (2, 5)).astype(self.dtype)
        return x,

    def forward(self, inputs, device):
        x, = inputs
        return functions.modified_softplus(x, base=self.base),

    def forward_expected(self, inputs):
        x, = inputs
        b = self.base
        # The thesis's closed form, evaluated directly (safe for these moderate inputs).
        y = numpy.log1p(b ** x.astype(numpy.float64)) / numpy.log(b)
        return y.astype(self.dtype),
