"""Tests of the stable logistic node (Counting.functions.logistic)."""

import numpy

from lenses_common import compat  # noqa: F401
from chainer import testing

from Counting import functions


_backends = testing.inject_backend_tests(
    None,
    [{}, {'use_cuda': True}])


@testing.parameterize(*testing.product({
    'dtype': [numpy.float32, numpy.float64],
    'beta': [1.0, 3.0],
}))
@_backends
class TestLogistic(testing.FunctionTestCase):

    def setUp(self):
        # float64 checks use float64 tolerances: a gradient off by 0.8% must fail them.
        if self.dtype == numpy.float32:
            self.check_backward_options = {'atol': 5e-3, 'rtol': 5e-3}
            self.check_double_backward_options = {'atol': 5e-3, 'rtol': 5e-2}
        else:
            self.check_backward_options = {'atol': 1e-6, 'rtol': 1e-6}
            self.check_double_backward_options = {'atol': 1e-6, 'rtol': 1e-6}

    def generate_inputs(self):
        return numpy.random.uniform(-2, 2, (4, 3)).astype(self.dtype),

    def forward(self, inputs, device):
        x, = inputs
        return functions.logistic(x, beta=self.beta),

    def forward_expected(self, inputs):
        x, = inputs
        return (1 / (1 + numpy.exp(-self.beta * x.astype(numpy.float64)))).astype(self.dtype),
