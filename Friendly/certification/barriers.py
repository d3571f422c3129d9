"""The two barrier layers of the certification: Angular and Pairwise Difference.

They have ``forward`` and ``interval`` as the layers of :mod:`Friendly.certification.layers`
(whose module docstring gives the centre / radius boxes used here) but no ``backward``: the
backward linear relaxation stops at their output and concretizes with their output box.
"""
import numpy

from chainer import backend

from Friendly.certification.layers import centre_radius, sigmoid


class Angular(object):
    """The Angular layer ``y_k = d_k / (||w_k|| ||a|| + c) + b_k``, ``d_k = w_k . a``, ``c > 0``.

    It is not monotone in ``a`` (it is a damped cosine), so its output box is bounded from boxes of
    its two ingredients, each exact on its own, taken as if they varied independently:

    * the numerator ``d_k`` ranges over ``[dl_k, du_k]``, exact by centre and radius (module
      docstring);
    * the norm ``||a||`` ranges over ``[nl, nu]``, also exact: ``nu^2 = sum_i max(l_i^2, u_i^2)``
      (each coordinate at its end farthest from 0) and ``nl^2 = sum_i max(l_i, -u_i, 0)^2`` (each
      coordinate at its point nearest to 0), so the denominator ``D_k = ||w_k|| ||a|| + c`` lies in
      ``[Dl_k, Du_k]`` with ``Dl_k >= c > 0``.

    On ``D > 0`` the quotient ``q = d / D`` is increasing in ``d``, and in ``D`` decreasing where
    ``d >= 0`` and increasing where ``d < 0``; so over the rectangle its largest value is
    ``du / Dl`` if ``du >= 0`` else ``du / Du``, its smallest ``dl / Du`` if ``dl >= 0`` else
    ``dl / Dl``. Every input of the box gives a pair (d, D) inside the rectangle, so these bound
    ``q`` soundly. The rectangle is larger than the set of pairs the box really reaches (``d`` and
    ``||a||`` move together), which is where the bound is loose. It is then intersected with the
    Cauchy-Schwarz bound ``|d| <= ||w|| ||a||``, i.e. ``|q| <= ||w|| nu / (||w|| nu + c) < 1``
    (``t / (t + c)`` increases in ``t``), which is also sound. The bias is added last.

    The backward linear relaxation stops here (a barrier): it concretizes with this box.
    """

    kind = 'angular'

    def __init__(self, W, b, c):
        xp = backend.get_array_module(W)
        self.W = W
        self.b = b if b is not None else xp.zeros(W.shape[0], dtype=W.dtype)
        self.c = float(c)
        self.absW = xp.abs(W)
        self.norm_w = xp.sqrt((W * W).sum(axis=1))

    @property
    def out_size(self):
        return self.W.shape[0]

    def forward(self, a):
        xp = backend.get_array_module(a)
        norm_a = xp.sqrt((a * a).sum(axis=1))
        den = norm_a[:, None] * self.norm_w[None, :] + self.c
        return a.dot(self.W.T) / den + self.b

    def interval(self, l, u):
        xp = backend.get_array_module(l)
        m, r = centre_radius(l, u)
        dm = m.dot(self.W.T)
        dr = r.dot(self.absW.T)
        dl, du = dm - dr, dm + dr
        far = xp.maximum(l * l, u * u).sum(axis=1)
        near = xp.maximum(xp.maximum(l, -u), 0.0)
        nu = xp.sqrt(far)[:, None]
        nl = xp.sqrt((near * near).sum(axis=1))[:, None]
        Dl = self.norm_w[None, :] * nl + self.c
        Du = self.norm_w[None, :] * nu + self.c
        hi = xp.where(du >= 0, du / Dl, du / Du)
        lo = xp.where(dl >= 0, dl / Du, dl / Dl)
        t = self.norm_w[None, :] * nu
        cs = t / (t + self.c)
        hi = xp.minimum(hi, cs)
        lo = xp.maximum(lo, -cs)
        return lo + self.b, hi + self.b


# Pixel values whose differences index the sigmoid table of PairwiseDifference.interval.
PIXEL_RANGE = 255


class PairwiseDifference(object):
    """The fully connected Pairwise Difference layer ``n_k = sum_ij W_k,ij s(v_i - v_j)``.

    Its input is the image itself, so the box of ``v`` is the eps-ball intersected with 0..255 and
    the pair ``(v_i, v_j)`` ranges over the full rectangle ``[l_i, u_i] x [l_j, u_j]`` for
    ``i != j`` (the coordinates of a box are independent). ``s`` is increasing, so
    ``s(v_i - v_j)`` ranges exactly over ``[s(l_i - u_j), s(u_i - l_j)]``; for ``i == j`` it is the
    constant ``s(0) = 1/2``. The box of ``n`` follows from these pair boxes by centre and radius
    (module docstring): exact for each pair on its own, loose only in that the pairs sharing a
    pixel are treated as independent.

    When the bounds are integers in 0..255 (integral images and an integral eps, as everywhere in
    the project), every difference ``l_i - u_j`` is an integer in -255..255 and ``s`` is read from a
    table of its 511 values instead of being evaluated ``B P^2`` times.

    A tighter bound would relax each ``s(v_i - v_j)`` linearly in ``v_i`` and ``v_j``, but its
    slopes depend on the image and on the sign of the coefficient it meets, so it cannot be
    written as a product with ``W``: it costs about ``n_out`` times the interval bound per image
    (100 times for the network's layer of 100 units, ~10^11 operations per image). The backward
    relaxation therefore stops here (a barrier) and uses this box.
    """

    kind = 'pairwise_difference'

    def __init__(self, W, chunk_size=16, batch=50):
        xp = backend.get_array_module(W)
        self.W = W
        self.P = int(round(W.shape[1] ** 0.5))
        if self.P * self.P != W.shape[1]:
            raise ValueError('Pairwise Difference weights must have P^2 columns, got {}'.format(
                W.shape[1]))
        self.chunk_size = int(chunk_size)
        self.batch = int(batch)
        self.absW = xp.abs(W)
        t = xp.arange(-PIXEL_RANGE, PIXEL_RANGE + 1, dtype=W.dtype)
        self.table = sigmoid(xp, t)

    @property
    def out_size(self):
        return self.W.shape[0]

    def _pairs(self, lo, hi, i0, i1):
        """(s(lo_i - hi_j), s(hi_i - lo_j)) for rows i0..i1 as (B, i1 - i0, P), diagonal 1/2."""
        xp = backend.get_array_module(lo)
        integral = (self._integral_lo and self._integral_hi)
        if integral:
            a = (lo[:, i0:i1, None] - hi[:, None, :]).astype(numpy.int32) + PIXEL_RANGE
            b = (hi[:, i0:i1, None] - lo[:, None, :]).astype(numpy.int32) + PIXEL_RANGE
            sa, sb = self.table[a], self.table[b]
        else:
            sa = sigmoid(xp, lo[:, i0:i1, None] - hi[:, None, :])
            sb = sigmoid(xp, hi[:, i0:i1, None] - lo[:, None, :])
        rows = xp.arange(i0, i1)
        sa[:, rows - i0, rows] = 0.5
        sb[:, rows - i0, rows] = 0.5
        return sa, sb

    def _check_integral(self, l, u):
        xp = backend.get_array_module(l)

        def ok(z):
            return bool(xp.all(z == xp.round(z)) and xp.all(z >= 0) and xp.all(z <= PIXEL_RANGE))
        self._integral_lo, self._integral_hi = ok(l), ok(u)

    def forward(self, v):
        lo, hi = self.interval(v, v)
        return (lo + hi) * 0.5

    def interval(self, l, u):
        xp = backend.get_array_module(l)
        B, P = l.shape
        lo_out = xp.empty((B, self.out_size), dtype=self.W.dtype)
        hi_out = xp.empty_like(lo_out)
        for b0 in range(0, B, self.batch):
            b1 = min(B, b0 + self.batch)
            lb, ub = l[b0:b1], u[b0:b1]
            self._check_integral(lb, ub)
            point = bool(xp.all(lb == ub))
            ym = xp.zeros((b1 - b0, self.out_size), dtype=self.W.dtype)
            yr = xp.zeros_like(ym)
            for i0 in range(0, P, self.chunk_size):
                i1 = min(P, i0 + self.chunk_size)
                sa, sb = self._pairs(lb, ub, i0, i1)
                cols = slice(i0 * P, i1 * P)
                n = (b1 - b0, (i1 - i0) * P)
                m = ((sa + sb) * 0.5).reshape(n)
                ym += m.dot(self.W[:, cols].T)
                if not point:
                    r = ((sb - sa) * 0.5).reshape(n)
                    yr += r.dot(self.absW[:, cols].T)
            lo_out[b0:b1] = ym - yr
            hi_out[b0:b1] = ym + yr
        return lo_out, hi_out
