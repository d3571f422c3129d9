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
pairs, so the extra memory is a few ``B x chunk_size x P`` buffers, as for
:mod:`Friendly.functions.pairwise_difference`. Only ``x`` and ``A`` are retained between forward
and backward.

With ``G = gy A`` (``B x M``) and ``D = (1 - T^2) / 4`` (the slope of ``tanh(d / 2) / 2`` in
``v_i``): ``dL/dA = 1/2 gy^T T`` and
``dL/dv_r = sum_{m: I[m]=r} (G D)[m] - sum_{m: J[m]=r} (G D)[m]``.
"""
import sys

import numpy

import chainer
from chainer import backend
from chainer import function_node
from chainer.utils import type_check

from Friendly.functions.pairwise_difference import ChunkedGradNode, _check_chunk_size
from Friendly.functions.pairwise_difference import _check_input_types

_LAYOUTS = {}


def n_pairs(P):
    """``P (P - 1) / 2``, the number of unordered pairs of ``P`` entries."""
    return P * (P - 1) // 2


def pair_indices(P):
    """``(I, J)``: the pairs in storage order, pair ``m`` being ``(I[m], J[m])``.

    Each unordered pair ``{i, j}`` of ``0..P-1`` appears once, taken as ``(i, (i + d) mod P)``
    with ``d`` its distance around the circle ``0..P-1``: ``P`` pairs for each
    ``d = 1 .. ceil(P / 2) - 1`` (row ``d``, ``i = 0..P-1``), then for even ``P`` the ``P / 2``
    pairs at ``d = P / 2`` (``i < P / 2``). This order makes one chunk of rows one vectorised
    subtraction (:func:`_windows`). The fold holds for either orientation of a pair:
    ``W_ij s(v_i - v_j) + W_ji s(v_j - v_i) = (W_ij - W_ji) s(v_i - v_j) + W_ji``.
    """
    full = (P - 1) // 2
    I = numpy.concatenate([numpy.arange(P)] * full + (
        [numpy.arange(P // 2)] if P % 2 == 0 else [])).astype(numpy.int64)
    d = numpy.concatenate([numpy.full(P, r) for r in range(1, full + 1)] + (
        [numpy.full(P // 2, P // 2)] if P % 2 == 0 else [])).astype(numpy.int64)
    return I, (I + d) % P


def _layout(P, chunk_size):
    """Chunks ``(d0, d1, m0, m1)``: rows ``d0..d1`` of ``P`` pairs each (``chunk_size`` rows a
    chunk), pairs ``m0..m1``; for even ``P`` a last chunk ``(P/2, P/2 + 1, ., .)`` of ``P / 2``
    pairs (the half row)."""
    key = (P, chunk_size)
    if key not in _LAYOUTS:
        full = (P - 1) // 2
        chunks = [(d0, min(full + 1, d0 + chunk_size), (d0 - 1) * P,
                   (min(full + 1, d0 + chunk_size) - 1) * P)
                  for d0 in range(1, full + 1, chunk_size)]
        if P % 2 == 0:
            chunks.append((P // 2, P // 2 + 1, full * P, full * P + P // 2))
        _LAYOUTS[key] = chunks
    return _LAYOUTS[key]


def _windows(h):
    """A view, only read: ``w[b, d, i] = h[b, (i + d) mod P]`` for ``d = 0..P`` (no copy but one
    ``B x 2P`` array)."""
    xp = backend.get_array_module(h)
    B, P = h.shape
    ext = xp.ascontiguousarray(xp.concatenate([h, h], axis=1))
    s0, s1 = ext.strides
    return xp.lib.stride_tricks.as_strided(ext, (B, P + 1, P), (s0, s1, s1))


def _fill_differences(h, w, chunk, out):
    """``out[:, m - m0] = h[:, I[m]] - h[:, J[m]]`` for the pairs of ``chunk``; ``w`` is
    :func:`_windows` of ``h``. Returns ``out`` (``B x (m1 - m0)``)."""
    xp = backend.get_array_module(h)
    B, P = h.shape
    d0, d1, m0, m1 = chunk
    if 2 * d0 == P:   # the half row: (i, i + P/2) for i < P/2
        xp.subtract(h[:, :d0], h[:, d0:], out=out)
    else:
        xp.subtract(h[:, None, :], w[:, d0:d1, :], out=out.reshape(B, d1 - d0, P))
    return out


def _tanh_half_differences(h, w, chunk, out):
    """``out = T`` of the chunk; ``h = v / 2`` (halving is exact, so ``h_i - h_j`` is
    ``(v_i - v_j) / 2`` to the last bit)."""
    xp = backend.get_array_module(h)
    _fill_differences(h, w, chunk, out)
    xp.tanh(out, out=out)
    return out


def _scatter(S, chunk, g, wrapped):
    """``g[:, I[m]] += S[:, m]`` and ``g[:, J[m]] -= S[:, m]`` over the chunk's pairs; the
    subtractions of full rows go to ``wrapped`` (``B x 2P``, folded into ``g`` by
    :func:`_unwrap`)."""
    B, P = g.shape
    d0, d1, m0, m1 = chunk
    if 2 * d0 == P:
        g[:, :d0] += S
        g[:, d0:] -= S
        return
    S3 = S.reshape(B, d1 - d0, P)
    g += S3.sum(axis=1)
    for d in range(d0, d1):
        wrapped[:, d:d + P] -= S3[:, d - d0]


def _unwrap(g, wrapped):
    P = g.shape[1]
    g += wrapped[:, :P]
    g += wrapped[:, P:]


def _buffers(xp, B, chunks, dtype, count):
    L = max(m1 - m0 for _, _, m0, m1 in chunks)
    return [xp.empty(B * L, dtype=dtype) for _ in range(count)]


def _view(buf, B, m0, m1):
    return buf[:B * (m1 - m0)].reshape(B, m1 - m0)


def _halves(v, chunk_size):
    """What every pass over the pairs of ``v`` starts from: ``(chunks, h, w)``, the chunk
    layout, ``h = v / 2`` and :func:`_windows` of ``h``."""
    chunks = _layout(v.shape[1], chunk_size)
    h = v * v.dtype.type(0.5)
    return chunks, h, _windows(h)


def _scatter_targets(xp, B, P, dtype, needed):
    """``(g, wrapped)``: zeroed arrays for :func:`_scatter` (``B x P`` and ``B x 2P``), or
    ``(None, None)`` when that gradient is not ``needed``."""
    if not needed:
        return None, None
    return xp.zeros((B, P), dtype=dtype), xp.zeros((B, 2 * P), dtype=dtype)


def _forward(v, A, chunk_size):
    """``y = 1/2 T A^T``, chunk by chunk."""
    xp = backend.get_array_module(v)
    B, P = v.shape
    chunks, h, w = _halves(v, chunk_size)
    y = xp.zeros((B, A.shape[0]), dtype=v.dtype)
    buf, = _buffers(xp, B, chunks, v.dtype, 1)
    for chunk in chunks:
        m0, m1 = chunk[2:]
        T = _tanh_half_differences(h, w, chunk, _view(buf, B, m0, m1))
        # A[:, m0:m1] is a strided view (no copy) that BLAS reads with its leading dimension.
        y += xp.matmul(T, A[:, m0:m1].T)
    y *= v.dtype.type(0.5)
    return y


def _backward(v, A, gy, chunk_size, need_v=True, need_A=True, gradient_buffer=None):
    """``(gv, gA)`` of :func:`_forward` for the output gradient ``gy`` (None where not needed);
    ``gA`` is written into ``gradient_buffer`` (a :class:`GradientBuffer`) when given."""
    xp = backend.get_array_module(v)
    B, P = v.shape
    dtype = v.dtype
    quarter = dtype.type(0.25)
    chunks, h, w = _halves(v, chunk_size)
    gA = None
    if need_A:
        gA = (xp.empty(A.shape, dtype=dtype) if gradient_buffer is None
              else gradient_buffer.take(xp, A.shape, dtype))
    gv, wrapped = _scatter_targets(xp, B, P, dtype, need_v)
    half_gy_t = xp.ascontiguousarray(gy.T * dtype.type(0.5))
    buf_t, buf_g = _buffers(xp, B, chunks, dtype, 2 if need_v else 1) + (
        [] if need_v else [None])
    for chunk in chunks:
        m0, m1 = chunk[2:]
        T = _tanh_half_differences(h, w, chunk, _view(buf_t, B, m0, m1))
        if need_A:
            # gA[:, m0:m1] is a strided view of the one preallocated gA: BLAS writes it.
            xp.matmul(half_gy_t, T, out=gA[:, m0:m1])
        if need_v:
            G = xp.matmul(gy, A[:, m0:m1], out=_view(buf_g, B, m0, m1))
            xp.multiply(T, T, out=T)
            T *= -quarter
            T += quarter          # D = (1 - T^2) / 4
            T *= G                # S = G D
            _scatter(T, chunk, gv, wrapped)
    if need_v:
        _unwrap(gv, wrapped)
    return gv, gA


def _second_order(v, A, gy, ggv, chunk_size, wanted):
    """Gradients of ``sum(ggv * gv)`` (``gv`` of :func:`_backward`) with respect to (v, A, gy).

    With ``E[b, ij] = ggv_i - ggv_j``: ``sum(ggv * gv) = sum E G D``, so its gradient is
    ``(E D) A^T`` in ``gy``, ``gy^T (E D)`` in ``A`` and, ``dD/dv_i = -T D = -dD/dv_j``, the scatter
    of ``-E G T D`` in ``v``. ``wanted``: a subset of {0: v, 1: A, 2: gy}.
    """
    xp = backend.get_array_module(v)
    B, P = v.shape
    dtype = v.dtype
    quarter = dtype.type(0.25)
    chunks, h, w = _halves(v, chunk_size)
    w_e = _windows(ggv)
    g_v, wrapped = _scatter_targets(xp, B, P, dtype, 0 in wanted)
    g_A = xp.empty(A.shape, dtype=dtype) if 1 in wanted else None
    g_gy = xp.zeros(gy.shape, dtype=dtype) if 2 in wanted else None
    buf_t, buf_e, buf_g = _buffers(xp, B, chunks, dtype, 3)
    gy_t = xp.ascontiguousarray(gy.T)
    for chunk in chunks:
        m0, m1 = chunk[2:]
        T = _tanh_half_differences(h, w, chunk, _view(buf_t, B, m0, m1))
        E = _fill_differences(ggv, w_e, chunk, _view(buf_e, B, m0, m1))
        D = _view(buf_g, B, m0, m1)
        xp.multiply(T, T, out=D)
        D *= -quarter
        D += quarter
        E *= D                    # E D
        if 2 in wanted:
            g_gy += xp.matmul(E, A[:, m0:m1].T)
        if 1 in wanted:
            xp.matmul(gy_t, E, out=g_A[:, m0:m1])
        if 0 in wanted:
            E *= T
            G = xp.matmul(gy, A[:, m0:m1], out=D)
            E *= G
            E *= dtype.type(-1)   # -E G T D
            _scatter(E, chunk, g_v, wrapped)
    if 0 in wanted:
        _unwrap(g_v, wrapped)
    return g_v, g_A, g_gy


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
        return _forward(x.reshape(len(x), -1), A, self.chunk_size),

    def backward(self, indexes, grad_outputs):
        x, A = self.get_retained_inputs()
        gy, = grad_outputs
        return PairwiseDifferencePairsGrad(self.chunk_size, indexes,
                                           self.gradient_buffer).apply((x, A, gy))


class PairwiseDifferencePairsGrad(ChunkedGradNode):

    """Gradient of :class:`PairwiseDifferencePairs`: ``(x, A, gy) -> (gx, gA)``.

    ``outputs`` lists the gradients to compute (0: ``gx``, 1: ``gA``); only those are computed
    and returned, in that order. Its own backward (second derivatives: GMR's double backprop,
    the double-backward test) is :func:`_second_order` and the layer itself.
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
        gv, gA = _backward(x.reshape(len(x), -1), A, gy, self.chunk_size,
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
    (those listed in ``outputs``), chunked; see :func:`_second_order`. Not differentiable itself
    (third derivatives are not supported)."""

    def __init__(self, chunk_size, outputs):
        self.chunk_size = chunk_size
        self.wanted = tuple(outputs)

    def forward(self, inputs):
        v, A, gy, ggv = inputs
        g_v, g_A, g_gy = _second_order(v, A, gy, ggv, self.chunk_size, self.wanted)
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
