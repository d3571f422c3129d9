"""Pairwise Difference, fully connected form (thesis section 3.2.3).

For an input vector ``v`` with ``P`` entries, output ``k`` is
``n_k = sum_ij W[k, i*P + j] sigmoid(v_i - v_j)``. The naive form materialises the ``B x P x P``
tensor of sigmoids (49 MB for a batch of 20 MNIST images, per copy); this node never keeps it:
it retains only ``x`` and ``W`` and recomputes the sigmoids in chunks of ``chunk_size`` rows ``i``,
so the extra memory is ``B * chunk_size * P`` values per buffer.
"""
import numpy

from chainer import backend
from chainer.backends import cuda
from chainer import function_node
import chainer.functions
from chainer.utils import type_check


def _check_chunk_size(chunk_size):
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, numpy.integer)) \
            or chunk_size < 1:
        raise ValueError('chunk_size must be a positive integer, got {!r}'.format(chunk_size))
    return int(chunk_size)


def _chunks(P, chunk_size):
    for i0 in range(0, P, chunk_size):
        yield i0, min(P, i0 + chunk_size)


def _sigmoid_differences(v, i0, i1, out):
    """``out[b, i - i0, j] = sigmoid(v[b, i] - v[b, j])`` for rows ``i0 <= i < i1``."""
    if isinstance(out, numpy.ndarray):
        half = out.dtype.type(0.5)
        numpy.subtract(v[:, i0:i1, None], v[:, None, :], out=out)
        out *= half
        numpy.tanh(out, out=out)  # sigmoid(d) = tanh(d / 2) / 2 + 1 / 2: no overflow
        out *= half
        out += half
    else:
        cuda.elementwise(
            'T vi, T vj', 'T s',
            's = tanh((vi - vj) * (T)0.5) * (T)0.5 + (T)0.5',
            'friendly_pd_sigmoid_diff')(v[:, i0:i1, None], v[:, None, :], out)
    return out


def _forward(v, W, chunk_size):
    """``y[b, k] = sum_ij W[k, i*P + j] sigmoid(v[b, i] - v[b, j])`` chunk by chunk."""
    xp = backend.get_array_module(v)
    B, P = v.shape
    y = xp.zeros((B, W.shape[0]), dtype=v.dtype)
    buf = xp.empty(B * min(chunk_size, P) * P, dtype=v.dtype)
    for i0, i1 in _chunks(P, chunk_size):
        c = i1 - i0
        s = _sigmoid_differences(v, i0, i1, buf[:B * c * P].reshape(B, c, P))
        # W[:, i0*P:i1*P] is a strided view (no copy) that BLAS reads with its leading dimension.
        y += xp.matmul(s.reshape(B, c * P), W[:, i0 * P:i1 * P].T)
    return y


def _backward(v, W, gy, chunk_size, need_v=True, need_W=True):
    """Return ``(gv, gW)`` of the forward above for the output gradient ``gy``.

    With ``G = sum_k gy[:, k] W[k]`` (``P x P`` per sample) and ``s'`` the (even) derivative of
    the sigmoid: ``gW[k, ij] = sum_b gy[b, k] s(v_i - v_j)`` and
    ``gv[r] = sum_j s'(v_r - v_j) (G[r, j] - G[j, r])``. For the rows ``i`` of a chunk,
    ``T = s'(v_i - v_j) G[i, j]`` adds ``T.sum(j)`` to ``gv[i]`` and subtracts ``T.sum(i)`` from
    ``gv[j]``; over all chunks this is the formula above. A gradient that is not needed is
    returned as None and costs nothing (the first layer of a network needs no ``gv``).
    """
    xp = backend.get_array_module(v)
    on_cpu = xp is numpy
    B, P = v.shape
    dtype = v.dtype
    half = dtype.type(0.5)
    quarter = dtype.type(0.25)
    gW = xp.empty(W.shape, dtype=dtype) if need_W else None
    gv = xp.zeros((B, P), dtype=dtype) if need_v else None
    gy_t = xp.ascontiguousarray(gy.T)
    n = B * min(chunk_size, P) * P
    buf_a = xp.empty(n, dtype=dtype)
    buf_b = xp.empty(n, dtype=dtype)
    for i0, i1 in _chunks(P, chunk_size):
        c = i1 - i0
        cols = slice(i0 * P, i1 * P)
        a = buf_a[:B * c * P].reshape(B, c, P)
        b = buf_b[:B * c * P].reshape(B, c * P)
        if on_cpu:
            numpy.subtract(v[:, i0:i1, None], v[:, None, :], out=a)
            a *= half
            numpy.tanh(a, out=a)  # a = tanh(d / 2)
            if need_W:
                numpy.multiply(a, half, out=b.reshape(B, c, P))
                b += half  # b = sigmoid(d)
                # gW[:, cols] is a strided view of the one preallocated gW: BLAS writes it.
                numpy.matmul(gy_t, b, out=gW[:, cols])
            if need_v:
                numpy.matmul(gy, W[:, cols], out=b)  # b = G[:, rows i0..i1, :]
                numpy.multiply(a, a, out=a)
                a *= -quarter
                a += quarter  # a = sigmoid'(d) = (1 - tanh(d / 2)^2) / 4
                a *= b.reshape(B, c, P)  # a = T
        else:
            if need_W:
                _sigmoid_differences(v, i0, i1, b.reshape(B, c, P))
                gW[:, cols] = xp.matmul(gy_t, b)
            if need_v:
                b[...] = xp.matmul(gy, W[:, cols])
                cuda.elementwise(
                    'T vi, T vj, T G', 'T t',
                    '''T th = tanh((vi - vj) * (T)0.5);
                       t = (T)0.25 * ((T)1 - th * th) * G''',
                    'friendly_pd_weighted_slope')(v[:, i0:i1, None], v[:, None, :],
                                                  b.reshape(B, c, P), a)
        if need_v:
            gv[:, i0:i1] += a.sum(axis=2)
            gv -= a.sum(axis=1)
    return gv, gW


def _check_input_types(x_type, w_type):
    """The checks of both forms: a float batch ``x`` and 2-D weights of its dtype. Returns the
    entries per sample, ``P``."""
    type_check.expect(
        x_type.dtype.kind == 'f',
        w_type.dtype == x_type.dtype,
        x_type.ndim >= 2,
        w_type.ndim == 2,
    )
    return type_check.prod(x_type.shape[1:])


def _check_types(x_type, w_type):
    p = _check_input_types(x_type, w_type)
    type_check.expect(p * p == w_type.shape[1])


class PairwiseDifference(function_node.FunctionNode):

    """Fully connected Pairwise Difference without bias; see :func:`pairwise_difference`."""

    def __init__(self, chunk_size=64):
        self.chunk_size = _check_chunk_size(chunk_size)

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x', 'W'))
        _check_types(*in_types)

    def forward(self, inputs):
        # Only x and W are kept: backward recomputes the sigmoids chunk by chunk instead of
        # holding the B x P x P tensor between forward and backward.
        self.retain_inputs((0, 1))
        x, W = inputs
        return _forward(x.reshape(len(x), -1), W, self.chunk_size),

    def backward(self, indexes, grad_outputs):
        x, W = self.get_retained_inputs()
        gy, = grad_outputs
        return PairwiseDifferenceGrad(self.chunk_size, indexes).apply((x, W, gy))


class ChunkedGradNode(function_node.FunctionNode):

    """Base of the gradient nodes ``(x, W, gy) -> (gx, gW)`` of the chunked Pairwise Difference
    forms, whose weights are named :attr:`weight_name` and type-checked with the layer's own
    :meth:`check_layer_types`.

    ``outputs`` lists the gradients to compute, 0 for ``gx`` and 1 for the weights', in that
    order; only those are computed and returned.
    """

    weight_name = 'W'
    check_layer_types = staticmethod(_check_types)

    def __init__(self, chunk_size=64, outputs=(0, 1)):
        self.chunk_size = _check_chunk_size(chunk_size)
        self.wanted = tuple(sorted(set(outputs)))
        if not self.wanted or not set(self.wanted) <= {0, 1}:
            raise ValueError('outputs must name 0 (gx) and/or 1 (g{}), got {!r}'.format(
                self.weight_name, outputs))

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x', self.weight_name, 'gy'))
        x_type, w_type, gy_type = in_types
        self.check_layer_types(x_type, w_type)
        type_check.expect(
            gy_type.dtype == x_type.dtype,
            gy_type.ndim == 2,
            gy_type.shape[0] == x_type.shape[0],
            gy_type.shape[1] == w_type.shape[0],
        )


class PairwiseDifferenceGrad(ChunkedGradNode):

    """Gradient of :class:`PairwiseDifference`: ``(x, W, gy) -> (gx, gW)``.

    ``outputs`` lists the gradients to compute, 0 for ``gx`` and 1 for ``gW``, in that order;
    only those are computed and returned. The forward pass is the chunked, in-place
    computation; the backward pass (the second derivative, for double backprop) is composed of
    Chainer functions and of this module's nodes.
    """

    def forward(self, inputs):
        # The second derivative needs all three inputs again.
        self.retain_inputs((0, 1, 2))
        x, W, gy = inputs
        gv, gW = _backward(x.reshape(len(x), -1), W, gy, self.chunk_size,
                           need_v=0 in self.wanted, need_W=1 in self.wanted)
        return tuple(gv.reshape(x.shape) if i == 0 else gW for i in self.wanted)

    def backward(self, indexes, grad_outputs):
        x, W, gy = self.get_retained_inputs()
        given = dict(zip(self.wanted, grad_outputs))
        ggx, ggW = given.get(0), given.get(1)
        F = chainer.functions
        B = x.shape[0]
        P = x.size // B
        v = F.reshape(x, (B, P))
        gv = gW = ggy = None

        def add(total, term):
            return term if total is None else total + term

        if ggW is not None:
            # sum(ggW * gW) = sum_bk gy[b, k] pairwise_difference(v, ggW)[b, k]: the layer itself
            # with ggW as weights, so its gradients are this layer's forward and backward.
            if 2 in indexes:
                ggy = add(ggy, pairwise_difference(v, ggW, self.chunk_size))
            if 0 in indexes:
                gv = add(gv, PairwiseDifferenceGrad(self.chunk_size, (0,)).apply(
                    (v, ggW, gy))[0])
        if ggx is not None:
            # sum(ggv * gv) = sum_b sum_ij G[i, j] s'(v_i - v_j) (ggv_i - ggv_j); written out on
            # the full B x P x P tensors (slower, but only double backprop through PD needs it).
            ggv = F.reshape(ggx, (B, P))
            shape = (B, P, P)

            def rows_minus_cols(a):
                return (F.broadcast_to(F.reshape(a, (B, P, 1)), shape)
                        - F.broadcast_to(F.reshape(a, (B, 1, P)), shape))

            s = F.sigmoid(rows_minus_cols(v))
            ds = s * (1 - s)
            e = rows_minus_cols(ggv)
            m = F.reshape(ds * e, (B, P * P))
            if 2 in indexes:
                ggy = add(ggy, F.matmul(m, W, transb=True))
            if 1 in indexes:
                gW = add(gW, F.matmul(gy, m, transa=True))
            if 0 in indexes:
                dds = ds * (1 - 2 * s)
                G = F.reshape(F.matmul(gy, W), shape)
                gv = add(gv, F.sum(e * dds * (G - F.transpose(G, (0, 2, 1))), axis=2))
        ret = []
        for i in indexes:
            if i == 0:
                ret.append(None if gv is None else F.reshape(gv, x.shape))
            elif i == 1:
                ret.append(gW)
            else:
                ret.append(ggy)
        return ret


def pairwise_difference(x, W, chunk_size=64):
    """Fully connected Pairwise Difference (no bias).

    The input is flattened per sample to a vector ``v`` of ``P = C H W`` entries and

    .. math:: n_k = \\sum_{i=1}^{P} \\sum_{j=1}^{P} W_{k,\\, iP + j}\\,
        \\mathrm{sigmoid}(v_i - v_j).

    With :math:`G = \\sum_k g_k W_k` (a :math:`P \\times P` matrix per sample) and
    :math:`s'` the derivative of the sigmoid, which is even:
    :math:`\\partial L / \\partial W_{k,ij} = \\sum_b g_{bk}\\, \\mathrm{sigmoid}(v_i - v_j)` and
    :math:`\\partial L / \\partial v_r = \\sum_j s'(v_r - v_j)(G_{rj} - G_{jr})`.

    The ``B x P x P`` tensor of sigmoids is never stored: the forward and backward passes
    recompute it in chunks of ``chunk_size`` rows, so the extra memory is bounded by
    ``B * chunk_size * P`` values per buffer. Supports double backprop.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): Input of shape ``(B, ...)``, float.
        W (:class:`~chainer.Variable` or :ref:`ndarray`): Weights of shape ``(N, P * P)``, same
            dtype as ``x``; ``W[k, i * P + j]`` weighs ``sigmoid(v_i - v_j)``.
        chunk_size (int): Rows ``i`` processed at a time; changes memory and speed, not results.

    Returns:
        ~chainer.Variable: Output of shape ``(B, N)``.
    """
    y, = PairwiseDifference(chunk_size).apply((x, W))
    return y
