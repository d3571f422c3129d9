"""Angular neurons: a cosine with a constant in the denominator (thesis section 3.2.4)."""
from chainer import backend
from chainer import function_node
import chainer.functions
from chainer import utils
from chainer.utils import type_check


def _safe_norms(x):
    """Row norms of the 2-D Variable ``x`` and their inverses, both 0 on all-zero rows.

    ``sqrt`` is evaluated only where the squared norm is positive (1 is put in elsewhere and the
    result masked away), so neither the value nor any derivative becomes NaN at a zero row, as in
    ``chainer.functions.normalize``.
    """
    F = chainer.functions
    xp = backend.get_array_module(x)
    squared = F.sum(x * x, axis=1)
    nonzero = squared.array > 0
    one = xp.ones_like(squared.array)
    zero = xp.zeros_like(squared.array)
    root = F.sqrt(F.where(nonzero, squared, one))
    return F.where(nonzero, root, zero), F.where(nonzero, 1 / root, zero)


class Angular(function_node.FunctionNode):

    """Angular layer; see :func:`angular`."""

    def __init__(self, c=0.2):
        c = float(c)
        if not c > 0:
            raise ValueError('c must be positive (it keeps ||w|| ||a|| + c away from 0), '
                             'got {}'.format(c))
        self.c = c

    def check_type_forward(self, in_types):
        n_in = type_check.eval(in_types.size())
        type_check._argname(in_types, ('x', 'W', 'b')[:n_in])
        x_type, w_type = in_types[:2]
        type_check.expect(
            x_type.dtype.kind == 'f',
            w_type.dtype == x_type.dtype,
            x_type.ndim >= 2,
            w_type.ndim == 2,
            type_check.prod(x_type.shape[1:]) == w_type.shape[1],
        )
        if n_in == 3:
            b_type = in_types[2]
            type_check.expect(
                b_type.dtype == x_type.dtype,
                b_type.ndim == 1,
                b_type.shape[0] == w_type.shape[0],
            )

    def forward(self, inputs):
        # Backward recomputes the (small) dot products and norms from x and W; b is not needed.
        self.retain_inputs((0, 1))
        x, W = inputs[:2]
        xp = backend.get_array_module(x)
        a = x.reshape(len(x), -1)
        dot = a.dot(W.T)
        norm_a = xp.sqrt(xp.square(a).sum(axis=1))
        norm_w = xp.sqrt(xp.square(W).sum(axis=1))
        den = norm_a[:, None] * norm_w[None, :]
        den += x.dtype.type(self.c)
        y = dot / den
        if len(inputs) == 3:
            y += inputs[2]
        return utils.force_array(y, x.dtype),

    def backward(self, indexes, grad_outputs):
        x, W = self.get_retained_inputs()
        gy, = grad_outputs
        F = chainer.functions
        B = x.shape[0]
        a = F.reshape(x, (B, -1))
        # Composed of Chainer functions, so it can be differentiated again (GMR, saliency).
        # y = d / (n_a n_w + c), d = w . a:
        #   dy/da = w / den - d n_w a / (n_a den^2),  dy/dw = a / den - d n_a w / (n_w den^2).
        # At a = 0 (or w = 0) the second term tends to 0 (d vanishes with a), which the masked
        # inverse norm gives exactly; the value at 0 is then the true derivative w / c.
        norm_a, inv_a = _safe_norms(a)
        norm_w, inv_w = _safe_norms(W)
        dot = F.matmul(a, W, transb=True)
        den = (F.broadcast_to(F.reshape(norm_a, (B, 1)), dot.shape)
               * F.broadcast_to(F.reshape(norm_w, (1, -1)), dot.shape) + self.c)
        q = gy / den
        r = q * dot / den
        ret = []
        if 0 in indexes:
            radial = F.matmul(r, F.reshape(norm_w, (-1, 1))) * F.reshape(inv_a, (B, 1))
            ga = F.matmul(q, W) - F.broadcast_to(radial, a.shape) * a
            ret.append(F.reshape(ga, x.shape))
        if 1 in indexes:
            radial = F.matmul(r, F.reshape(norm_a, (B, 1)), transa=True) \
                * F.reshape(inv_w, (-1, 1))
            ret.append(F.matmul(q, a, transa=True) - F.broadcast_to(radial, W.shape) * W)
        if 2 in indexes:
            ret.append(F.sum(gy, axis=0))
        return ret


def angular(x, W, b=None, c=0.2):
    """Angular layer: a cosine between input and weights, damped near zero by ``c``.

    The input is flattened per sample to a vector ``a`` and, for each output ``k``,

    .. math:: y_k = \\frac{\\mathbf{w}_k \\cdot \\mathbf{a}}
        {\\|\\mathbf{w}_k\\| \\|\\mathbf{a}\\| + c} + b_k .

    Gradients (with :math:`d = \\mathbf{w} \\cdot \\mathbf{a}` and
    :math:`D = \\|\\mathbf{w}\\| \\|\\mathbf{a}\\| + c`; thesis eq. 3.3 with the sign of the
    second term corrected):

    .. math:: \\frac{\\partial y}{\\partial \\mathbf{a}} = \\frac{\\mathbf{w}}{D}
        - \\frac{d \\|\\mathbf{w}\\|}{D^2} \\frac{\\mathbf{a}}{\\|\\mathbf{a}\\|}, \\qquad
        \\frac{\\partial y}{\\partial \\mathbf{w}} = \\frac{\\mathbf{a}}{D}
        - \\frac{d \\|\\mathbf{a}\\|}{D^2} \\frac{\\mathbf{w}}{\\|\\mathbf{w}\\|}.

    At :math:`\\mathbf{a} = 0` the function is still differentiable (the gradient is
    :math:`\\mathbf{w} / c`); value, gradient and double gradient stay finite there and at a zero
    weight row. Supports double backprop.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): Input of shape ``(B, ...)``, float.
        W (:class:`~chainer.Variable` or :ref:`ndarray`): Weights ``(N, P)`` with
            ``P`` the size of one flattened sample, same dtype as ``x``.
        b (:class:`~chainer.Variable` or :ref:`ndarray`): Optional bias ``(N,)``.
        c (float): Positive constant added to the denominator (thesis: 0.2).

    Returns:
        ~chainer.Variable: Output of shape ``(B, N)``.
    """
    args = (x, W) if b is None else (x, W, b)
    y, = Angular(c).apply(args)
    return y
