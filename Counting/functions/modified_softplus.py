"""The thesis's "modified softplus" with base ``b``: ``ln(1 + b^x) / ln b``.

It is :class:`~Counting.functions.softplus.StableSoftplus` with ``beta = ln b``, so its
derivatives are the stable :mod:`Counting.functions.logistic` nodes.
"""
import math

from Counting.functions.softplus import StableSoftplus


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


def modified_softplus(x, base=1.1):
    """The thesis's "modified softplus" with base ``b`` (counting networks).

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
