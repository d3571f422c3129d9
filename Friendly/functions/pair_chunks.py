"""The chunked kernels of the Pairwise Difference pair form
(:mod:`Friendly.functions.pairwise_difference_pairs`, whose docstring gives the algebra).

:func:`pair_indices` fixes the order in which the ``P (P - 1) / 2`` pairs are stored (by circular
distance, so that a chunk of rows is one vectorised subtraction); :func:`pairs_forward`,
:func:`pairs_backward` and :func:`pairs_second_order` compute ``y = 1/2 T A^T``, its first
derivatives and the second-order terms of its gradient node, rebuilding
``T = tanh((v_I - v_J) / 2)`` chunk by chunk so that no ``B x M`` tensor is ever stored.
"""
import numpy

from chainer import backend

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


def pairs_forward(v, A, chunk_size):
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


def pairs_backward(v, A, gy, chunk_size, need_v=True, need_A=True, gradient_buffer=None):
    """``(gv, gA)`` of :func:`pairs_forward` for the output gradient ``gy`` (None where not needed);
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


def pairs_second_order(v, A, gy, ggv, chunk_size, wanted):
    """Gradients of ``sum(ggv * gv)`` (``gv`` of :func:`pairs_backward`) with respect to (v, A, gy).

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
