"""Pairwise Difference, half-size pair form: the fully connected layer folded onto its pairs.

The full layer is ``n_k = sum_ij W[k, i, j] s(v_i - v_j)`` with ``s`` the logistic sigmoid. Since
``s(-d) = 1 - s(d)`` and ``s(d) = tanh(d / 2) / 2 + 1 / 2``, the two weights of a pair ``(i, j)``,
``(j, i)`` act only through their difference and the diagonal only through a constant:

    n_k = 1/2 sum_{i<j} A[k, ij] tanh((v_i - v_j) / 2) + b_k,
    A[k, ij] = W[k, i, j] - W[k, j, i],   b_k = 1/2 sum_ij W[k, i, j].

This module computes the first term (the bias is added by the link) for the ``M = P (P - 1) / 2``
unordered pairs, each stored once as ``(I[m], J[m])`` in the order of :func:`pair_indices`
(either orientation of a pair folds the same way): ``y = 1/2 T A^T`` with
``T[b, m] = tanh((v_I[m] - v_J[m]) / 2)`` and ``A[k, m] = W[k, I[m], J[m]] - W[k, J[m], I[m]]``.
``T`` (``B x M``) is never stored whole: every pass rebuilds it in chunks of ``chunk_size * P``
pairs (:mod:`Friendly.functions.pair_chunks`), so the extra memory is a few
``B x chunk_size x P`` buffers, as for :mod:`Friendly.functions.pairwise_difference`. Only ``x``
and ``A`` are retained between forward and backward.

With ``G = gy A`` (``B x M``) and ``D = (1 - T^2) / 4`` (the slope of ``tanh(d / 2) / 2`` in
``v_i``): ``dL/dA = 1/2 gy^T T`` and
``dL/dv_r = sum_{m: I[m]=r} (G D)[m] - sum_{m: J[m]=r} (G D)[m]``.
"""
import sys

import chainer
from chainer import backend
from chainer import function_node
from chainer.utils import type_check

from Friendly.functions.pairwise_difference import ChunkedGradNode, _check_chunk_size
from Friendly.functions.pairwise_difference import _check_input_types
from Friendly.functions.pair_chunks import n_pairs, pair_indices, pairs_backward, pairs_forward
from Friendly.functions.pair_chunks import pairs_second_order


class GradientBuffer(object):

    """One reusable array for the weight gradient, so that an iteration does not page in a fresh
    123 MB array (on the CPU most of that cost is the kernel's page faults and zeroing).

    :meth:`take` hands back the array of the previous call only when nothing else refers to it
    any more (Chainer's ``cleargrads`` dropped it from the parameter, no graph holds it);
    otherwise it allocates a new one. Results do not depend on it.
    """

    def __init__(self):
        self.array = None

    def __deepcopy__(self, memo):   # a copied link (Link.copy, float64 copies) starts empty
        return GradientBuffer()

    def __getstate__(self):
        return {'array': None}

    def take(self, xp, shape, dtype):
        a = self.array
        # References: self.array and getrefcount's argument, plus the local name a.
        if (a is None or a.shape != tuple(shape) or a.dtype != dtype
                or backend.get_array_module(a) is not xp or sys.getrefcount(a) > 3):
            a = None
            self.array = None
            a = xp.empty(shape, dtype=dtype)
            self.array = a
        return a


def _check_types(x_type, a_type):
    p = _check_input_types(x_type, a_type)
    type_check.expect(p * (p - 1) == 2 * a_type.shape[1], p >= 2)


class PairwiseDifferencePairs(function_node.FunctionNode):

    """``(x, A) -> 1/2 T A^T``: the pair form, bias excluded (:func:`pairwise_difference_pairs`)."""

    def __init__(self, chunk_size=64, gradient_buffer=None):
        self.chunk_size = _check_chunk_size(chunk_size)
        self.gradient_buffer = gradient_buffer

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x', 'A'))
        _check_types(*in_types)

    def forward(self, inputs):
        self.retain_inputs((0, 1))   # T is rebuilt in backward, not kept
        x, A = inputs
        return pairs_forward(x.reshape(len(x), -1), A, self.chunk_size),

    def backward(self, indexes, grad_outputs):
        x, A = self.get_retained_inputs()
        gy, = grad_outputs
        return PairwiseDifferencePairsGrad(self.chunk_size, indexes,
                                           self.gradient_buffer).apply((x, A, gy))


class PairwiseDifferencePairsGrad(ChunkedGradNode):

    """Gradient of :class:`PairwiseDifferencePairs`: ``(x, A, gy) -> (gx, gA)``.

    ``outputs`` lists the gradients to compute (0: ``gx``, 1: ``gA``); only those are computed
    and returned, in that order. Its own backward (second derivatives: GMR's double backprop,
    the double-backward test) is :func:`pairs_second_order` and the layer itself.
    """

    weight_name = 'A'
    check_layer_types = staticmethod(_check_types)

    def __init__(self, chunk_size=64, outputs=(0, 1), gradient_buffer=None):
        super(PairwiseDifferencePairsGrad, self).__init__(chunk_size, outputs)
        self.gradient_buffer = gradient_buffer

    def forward(self, inputs):
        self.retain_inputs((0, 1, 2))
        x, A, gy = inputs
        # The reusable buffer only where no graph is built on gA (no double backprop).
        buffer = None if chainer.config.enable_backprop else self.gradient_buffer
        gv, gA = pairs_backward(x.reshape(len(x), -1), A, gy, self.chunk_size,
                           need_v=0 in self.wanted, need_A=1 in self.wanted,
                           gradient_buffer=buffer)
        return tuple(gv.reshape(x.shape) if i == 0 else gA for i in self.wanted)

    def backward(self, indexes, grad_outputs):
        x, A, gy = self.get_retained_inputs()
        given = dict(zip(self.wanted, grad_outputs))
        ggx, ggA = given.get(0), given.get(1)
        B = x.shape[0]
        v = x.reshape(B, -1)
        total = {}

        def add(i, term):
            if term is not None:
                total[i] = term if i not in total else total[i] + term

        if ggA is not None:
            # sum(ggA * gA) = sum gy * pairwise_difference_pairs(v, ggA): the layer with ggA as
            # its weights, so its gradients are the layer's forward and backward.
            if 2 in indexes:
                add(2, pairwise_difference_pairs(v, ggA, self.chunk_size))
            if 0 in indexes:
                add(0, PairwiseDifferencePairsGrad(self.chunk_size, (0,)).apply(
                    (v, ggA, gy))[0])
        if ggx is not None:
            wanted = tuple(i for i in indexes if i in (0, 1, 2))
            if wanted:
                ggv = ggx.reshape(B, -1)
                terms = PairwiseDifferencePairsSecondOrder(self.chunk_size, wanted).apply(
                    (v, A, gy, ggv))
                for i, term in zip(wanted, terms):
                    add(i, term)
        ret = []
        for i in indexes:
            term = total.get(i)
            ret.append(term.reshape(x.shape) if (i == 0 and term is not None) else term)
        return ret


class PairwiseDifferencePairsSecondOrder(function_node.FunctionNode):

    """``(v, A, gy, ggv) ->`` the gradients of ``sum(ggv * gv)`` in ``v``, ``A``, ``gy``
    (those listed in ``outputs``), chunked; see :func:`pairs_second_order`. Not differentiable
    itself (third derivatives are not supported)."""

    def __init__(self, chunk_size, outputs):
        self.chunk_size = chunk_size
        self.wanted = tuple(outputs)

    def forward(self, inputs):
        v, A, gy, ggv = inputs
        g_v, g_A, g_gy = pairs_second_order(v, A, gy, ggv, self.chunk_size, self.wanted)
        found = {0: g_v, 1: g_A, 2: g_gy}
        return tuple(found[i] for i in self.wanted)


def pairwise_difference_pairs(x, A, chunk_size=64, gradient_buffer=None):
    """The pair form of the Pairwise Difference layer, bias excluded: ``y = 1/2 T A^T``.

    The input is flattened per sample to ``v`` (``P`` entries) and

    .. math:: y_k = \\frac{1}{2} \\sum_m A_{k,\\, m} \\tanh\\frac{v_{I_m} - v_{J_m}}{2}

    over the ``P (P - 1) / 2`` pairs ``(I_m, J_m)`` of :func:`pair_indices`. With ``A`` and the bias
    folded from a full weight matrix (:func:`fold`), ``y + b`` equals the full layer exactly.
    Supports double backprop.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): Input of shape ``(B, ...)``, float,
            at least two entries per sample.
        A (:class:`~chainer.Variable` or :ref:`ndarray`): Pair weights ``(N, P (P - 1) / 2)``,
            same dtype as ``x``.
        chunk_size (int): About ``chunk_size * P`` pairs are processed at a time; changes memory
            and speed, not results.
        gradient_buffer (GradientBuffer): Optional reusable storage of ``A``'s gradient.

    Returns:
        ~chainer.Variable: Output of shape ``(B, N)``.
    """
    y, = PairwiseDifferencePairs(chunk_size, gradient_buffer).apply((x, A))
    return y


def fold(W, P=None):
    """``(A, b)`` of a full weight matrix ``W`` (``N x P^2``): ``A[k, m] = W[k,i,j] - W[k,j,i]``
    for the pairs ``(i, j)`` of :func:`pair_indices`, and ``b_k = 1/2 sum_ij W[k, i, j]``."""
    xp = backend.get_array_module(W)
    N = W.shape[0]
    if P is None:
        P = int(round(W.shape[1] ** 0.5))
    if P * P != W.shape[1]:
        raise ValueError('W must have P * P columns, got {}'.format(W.shape[1]))
    W3 = W.reshape(N, P, P)
    i, j = pair_indices(P)
    i, j = xp.asarray(i), xp.asarray(j)
    A = xp.empty((N, n_pairs(P)), dtype=W.dtype)
    for k in range(N):   # one output at a time: no second N x P^2 temporary
        xp.subtract(W3[k][i, j], W3[k][j, i], out=A[k])
    b = W.sum(axis=1) * W.dtype.type(0.5)
    return A, b
