"""The scaled logistic sigmoid and its derivative node, stable for any input (thesis 2.2.3).

``logistic(x, beta) = 1 / (1 + exp(-beta x))`` from ``e = exp(-|beta x|)``, with a hand-written
gradient node ``beta e / (1 + e)^2`` whose own derivative is built the same way, so every further
derivative is stable too. It is the derivative of :mod:`Counting.functions.softplus`.
"""
from chainer import backend
from chainer import function_node
from chainer import utils
from chainer.utils import type_check


def _check_float(in_types, names):
    type_check._argname(in_types, names)
    for t in in_types:
        type_check.expect(t.dtype.kind == 'f')
    if len(names) == 2:
        type_check.expect(in_types[0].dtype == in_types[1].dtype,
                          in_types[0].shape == in_types[1].shape)


def _exp_neg_abs(x, beta):
    """``exp(-|beta x|)`` in (0, 1]: the one exponential every formula below is built from."""
    xp = backend.get_array_module(x)
    return xp.exp(-xp.abs(x * x.dtype.type(beta)))


class Logistic(function_node.FunctionNode):

    """Scaled logistic sigmoid ``y = 1 / (1 + exp(-beta x))``, stable for any ``x``."""

    def __init__(self, beta=1.0):
        self.beta = float(beta)

    def check_type_forward(self, in_types):
        _check_float(in_types, ('x',))

    def forward(self, inputs):
        x, = inputs
        xp = backend.get_array_module(x)
        # With e = exp(-|bx|) <= 1 nothing overflows, and both tails keep full relative precision
        # (1 / (1 + exp(-z)) overflows; the tanh form rounds the lower tail to 0).
        e = _exp_neg_abs(x, self.beta)
        one = x.dtype.type(1)
        y = xp.where(x * self.beta >= 0, one / (one + e), e / (one + e))
        # The derivative beta e / (1 + e)^2 is computed from the input (precise in both tails).
        self.retain_inputs((0,))
        return utils.force_array(y, x.dtype),

    def backward(self, indexes, grad_outputs):
        x, = self.get_retained_inputs()
        gy, = grad_outputs
        return LogisticGrad(self.beta).apply((x, gy))


class LogisticGrad(function_node.FunctionNode):

    """``gx = gy * D(x)`` with ``D(x) = beta e / (1 + e)^2``, ``e = exp(-|beta x|)``.

    ``D`` is the derivative of :class:`Logistic`, ``beta y (1 - y)``, written so that it never
    overflows and keeps its relative precision for large ``|x|``. Its own derivative,
    ``beta (1 - 2 y) D(x)``, is built from this node and :func:`logistic`, so it can be
    differentiated again.
    """

    def __init__(self, beta=1.0):
        self.beta = float(beta)

    def check_type_forward(self, in_types):
        _check_float(in_types, ('x', 'gy'))

    def forward(self, inputs):
        # Both inputs appear in the derivatives of this node.
        self.retain_inputs((0, 1))
        x, gy = inputs
        e = _exp_neg_abs(x, self.beta)
        one = x.dtype.type(1)
        gx = gy * (x.dtype.type(self.beta) * e / ((one + e) * (one + e)))
        return utils.force_array(gx, x.dtype),

    def backward(self, indexes, grad_outputs):
        x, gy = self.get_retained_inputs()
        ggx, = grad_outputs
        ret = []
        if 0 in indexes:
            gy_d, = LogisticGrad(self.beta).apply((x, gy))
            ret.append(ggx * gy_d * (self.beta * (1 - 2 * logistic(x, self.beta))))
        if 1 in indexes:
            ret.append(LogisticGrad(self.beta).apply((x, ggx))[0])
        return ret


def logistic(x, beta=1.0):
    """Scaled logistic sigmoid with stable first and second derivatives.

    .. math:: f(x) = \\frac{1}{1 + \\exp(-\\beta x)}, \\quad
              f'(x) = \\beta f(x) (1 - f(x)).

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): float array.
        beta (float): scale :math:`\\beta` of the input.

    Returns:
        ~chainer.Variable: ``f(x)``, same shape and dtype.
    """
    y, = Logistic(beta).apply((x,))
    return y
