"""Tests of the stable softplus node (Counting.functions.softplus)."""

import numpy

from lenses_common import compat  # noqa: F401
from chainer import testing

from Counting import functions


_backends = testing.inject_backend_tests(
    None,
    [{}, {'use_cuda': True}])


def _np_softplus(x, beta):
    # Independent reference in float64 through logaddexp: log(exp(0) + exp(bx)) / b.
    return numpy.logaddexp(0, beta * x.astype(numpy.float64)) / beta


@testing.parameterize(*testing.product({
    'shape': [(3, 4), ()],
    'dtype': [numpy.float32, numpy.float64],
    'beta': [1.0, 0.5, 2.0],
}))
@_backends
class TestStableSoftplus(testing.FunctionTestCase):

    def setUp(self):
        if self.dtype == numpy.float32:
            self.check_backward_options = {'atol': 5e-3, 'rtol': 5e-3}
            self.check_double_backward_options = {'atol': 5e-3, 'rtol': 5e-2}
        else:
            self.check_backward_options = {'atol': 1e-6, 'rtol': 1e-6}
            self.check_double_backward_options = {'atol': 1e-6, 'rtol': 1e-6}

    def generate_inputs(self):
        x = numpy.random.uniform(-3, 3, self.shape).astype(self.dtype)
        return x,

    def forward(self, inputs, device):
        x, = inputs
        return functions.stable_softplus(x, beta=self.beta),

    def forward_expected(self, inputs):
        x, = inputs
        return numpy.asarray(_np_softplus(x, self.beta), dtype=self.dtype),
