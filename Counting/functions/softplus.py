"""Smooth activations for the counters whose second derivative must stay finite (thesis 2.2.3).

The detection loop of thesis 2.2.2 differentiates the saliency map once more, so every activation of
a counter needs a second derivative that is non-zero and *finite* on the raw 0..255 pixels.
Chainer's own ``F.softplus`` computes its second derivative as ``e / (1 + e) ** 2`` with
``e = exp(x)``; for x above about 89 (float32) or 710 (float64) ``e`` overflows to inf and the
second derivative becomes inf / inf = NaN. That is the "numerical issue" the thesis ran into with
its SoftPlus counter.

The softplus family is written so that no step overflows (one module per FunctionNode):

* ``logistic(x, beta)``: ``1 / (1 + exp(-beta x))`` from ``e = exp(-|beta x|)``, with a hand-written
  gradient node ``beta e / (1 + e)^2`` whose own derivative is built the same way, so every further
  derivative is stable too;
* ``stable_softplus(x, beta)``: ``(max(bx, 0) + log1p(exp(-|bx|))) / beta`` whose derivative is
  ``logistic(x, beta)``;
* ``modified_softplus(x, base)``: the thesis's softplus with base ``b``,
  ``f(x) = ln(1 + b^x) / ln b`` = ``stable_softplus(x, beta=ln b)``, so
  ``f'(x) = 1 / (1 + b^-x)`` and ``f''(x) = ln(b) b^-x / (1 + b^-x)^2``.
"""
import math

from chainer import backend
from chainer import function_node
from chainer import utils

from Counting.functions.logistic import _check_float, logistic


class StableSoftplus(function_node.FunctionNode):

    """``y = log(1 + exp(beta x)) / beta`` whose derivatives never overflow."""

    def __init__(self, beta=1.0):
        beta = float(beta)
        if beta == 0 or not math.isfinite(beta):
            raise ValueError('beta must be finite and non-zero, got {}'.format(beta))
        self.beta = beta

    def check_type_forward(self, in_types):
        _check_float(in_types, ('x',))

    def forward(self, inputs):
        x, = inputs
        xp = backend.get_array_module(x)
        bx = x * x.dtype.type(self.beta)
        y = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / x.dtype.type(self.beta)
        # The derivative logistic(x) is computed from the input.
        self.retain_inputs((0,))
        return utils.force_array(y, x.dtype),

    def backward(self, indexes, grad_outputs):
        x, = self.get_retained_inputs()
        gy, = grad_outputs
        return gy * logistic(x, self.beta),


def stable_softplus(x, beta=1.0):
    """Softplus whose value, first and second derivative stay finite for any input.

    .. math:: f(x) = \\frac{1}{\\beta}\\log(1 + \\exp(\\beta x)), \\quad
              f'(x) = \\frac{1}{1 + \\exp(-\\beta x)}, \\quad
              f''(x) = \\beta f'(x) (1 - f'(x)).

    Unlike ``chainer.functions.softplus``, double backprop does not overflow for large ``x``
    (Chainer's returns NaN for the second derivative at x > 89 in float32).

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): float array.
        beta (float): non-zero scale :math:`\\beta`.

    Returns:
        ~chainer.Variable: ``f(x)``, same shape and dtype.
    """
    y, = StableSoftplus(beta).apply((x,))
    return y
