"""Elastic Sigmoid, y = sigmoid(s x) with one learnable scalar s (thesis section 3.2.2)."""
import numpy

from chainer.backends import cuda
from chainer import function_node
import chainer.functions
from chainer import utils
from chainer.utils import type_check


class ElasticSigmoid(function_node.FunctionNode):

    """Logistic sigmoid of ``s * x`` with a scalar ``s`` of shape ``()`` or ``(1,)``."""

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x', 's'))
        x_type, s_type = in_types
        type_check.expect(
            x_type.dtype.kind == 'f',
            s_type.dtype == x_type.dtype,
            s_type.ndim <= 1,
        )
        if type_check.eval(s_type.ndim) == 1:
            type_check.expect(s_type.shape[0] == 1)

    def forward_cpu(self, inputs):
        x, s = inputs
        half = x.dtype.type(0.5)
        # sigmoid(z) = tanh(z / 2) / 2 + 1 / 2 never overflows, unlike 1 / (1 + exp(-z)).
        y = utils.force_array(x * (s.reshape(()) * half), x.dtype)
        numpy.tanh(y, out=y)
        y *= half
        y += half
        # backward needs x (for ds), s (for dx) and y (for sigmoid' = y (1 - y)).
        self.retain_inputs((0, 1))
        self.retain_outputs((0,))
        return y,

    def forward_gpu(self, inputs):
        x, s = inputs
        y = cuda.elementwise(
            'T x, raw T s', 'T y',
            'y = tanh(x * s[0] * (T)0.5) * (T)0.5 + (T)0.5',
            'friendly_elastic_sigmoid_fwd')(x, s.reshape(1))
        self.retain_inputs((0, 1))
        self.retain_outputs((0,))
        return y,

    def backward(self, indexes, grad_outputs):
        x, s = self.get_retained_inputs()
        y, = self.get_retained_outputs()
        gy, = grad_outputs
        # Built from chainer.functions so that double backprop (GMRES) goes through it.
        gz = gy * y * (1 - y)
        ret = []
        if 0 in indexes:
            ret.append(gz * chainer.functions.broadcast_to(
                chainer.functions.reshape(s, ()), x.shape))
        if 1 in indexes:
            ret.append(chainer.functions.reshape(
                chainer.functions.sum(gz * x), s.shape))
        return ret


def elastic_sigmoid(x, s):
    """Elastic Sigmoid: the logistic sigmoid of ``s`` times ``x``.

    .. math:: y = \\frac{1}{1 + \\exp(-s x)},\\qquad
        \\frac{\\partial y}{\\partial x} = s\\, y (1 - y),\\qquad
        \\frac{\\partial y}{\\partial s} = x\\, y (1 - y).

    Computed as ``tanh(s x / 2) / 2 + 1 / 2``, which does not overflow for large ``|s x|``.
    Supports double backprop.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): Input of any shape, float.
        s (:class:`~chainer.Variable` or :ref:`ndarray`): The scalar slope, shape ``()`` or
            ``(1,)``, same dtype as ``x``.

    Returns:
        ~chainer.Variable: ``y``, same shape and dtype as ``x``.
    """
    y, = ElasticSigmoid().apply((x, s))
    return y
