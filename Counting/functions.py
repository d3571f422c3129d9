"""Smooth activations for the counters whose second derivative must stay finite (thesis 2.2.3).

The detection loop of thesis 2.2.2 differentiates the saliency map once more, so every activation of
a counter needs a second derivative that is non-zero and *finite* on the raw 0..255 pixels.
Chainer's own ``F.softplus`` computes its second derivative as ``e / (1 + e) ** 2`` with
``e = exp(x)``; for x above about 89 (float32) or 710 (float64) ``e`` overflows to inf and the
second derivative becomes inf / inf = NaN. That is the "numerical issue" the thesis ran into with
its SoftPlus counter.

This module writes the softplus family so that no step overflows:

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


class ModifiedSoftplus(StableSoftplus):

    """``y = ln(1 + base^x) / ln(base)``: :class:`StableSoftplus` with ``beta = ln(base)``.

    Its first derivative is the :class:`Logistic` node and its second the :class:`LogisticGrad`
    node, both written by hand above.
    """

    def __init__(self, base=1.1):
        base = float(base)
        if not base > 0 or base == 1 or not math.isfinite(base):
            raise ValueError(
                'modified softplus base must be positive and not 1, got {}'.format(base))
        self.base = base
        super().__init__(beta=math.log(base))


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


def modified_softplus(x, base=1.1):
    """The thesis's "modified softplus" with base ``b`` (SPEC, Part 1, counting networks).

    .. math:: f(x) = \\frac{\\ln(1 + b^x)}{\\ln b}, \\quad
              f'(x) = \\frac{1}{1 + b^{-x}}, \\quad
              f''(x) = \\frac{\\ln(b)\\, b^{-x}}{(1 + b^{-x})^2}.

    It is softplus with :math:`\\beta = \\ln b`: a base near 1 makes a gentle curve that keeps a
    usable second derivative over the whole 0..255 pixel range.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): float array.
        base (float): base ``b`` > 0, ``b != 1``.

    Returns:
        ~chainer.Variable: ``f(x)``, same shape and dtype.
    """
    y, = ModifiedSoftplus(base).apply((x,))
    return y
