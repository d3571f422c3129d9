"""Sound bounds for every layer of the six Friendly networks, in float64 (NumPy or CuPy).

Each layer is an object with

* ``forward(z)``: its exact value on a batch ``z`` of shape (B, n_in);
* ``interval(l, u)``: a box (l', u') that holds the layer's output for every input in the box
  [l, u] (interval bound propagation, IBP);
* for the layers the backward linear relaxation passes through, ``backward(lam, bias, ...)``:
  given a linear function ``lam . y + bias`` of the layer's output ``y`` (``lam`` of shape
  (B, m, n_out)), a linear function of the layer's input that is a lower bound of it (rows of
  ``lam`` meant as upper bounds are passed negated). Layers without ``backward`` (Angular and
  Pairwise Difference, :mod:`Friendly.certification.barriers`) are *barriers*: the backward pass
  stops at their output and concretizes there with the output box of ``interval``.

The boxes are centre / radius pairs wherever a matrix is applied: for ``y = W z + b`` and the box
``z in [l, u]`` (centre ``m = (l + u) / 2``, radius ``r = (u - l) / 2 >= 0``), ``y_k`` ranges
exactly over ``[W_k m + b_k - |W_k| r, W_k m + b_k + |W_k| r]``: ``W_k z = W_k m + W_k (z - m)`` and
``W_k (z - m)`` attains ``+-|W_k| r`` at the corner ``z = m +- sign(W_k) r``.

Notation: ``B`` images, ``s(t) = 1 / (1 + exp(-t))`` the logistic sigmoid, ``a+ = max(a, 0)`` and
``a- = min(a, 0)`` elementwise.
"""

from chainer import backend


def sigmoid(xp, t):
    """``s(t)`` as ``tanh(t / 2) / 2 + 1 / 2`` (no overflow for large ``|t|``)."""
    return xp.tanh(t * 0.5) * 0.5 + 0.5


def sigmoid_slope(xp, t):
    """``s'(t) = s(t) (1 - s(t)) = (1 - tanh(t / 2)^2) / 4``."""
    th = xp.tanh(t * 0.5)
    return (1.0 - th * th) * 0.25


def centre_radius(l, u):
    return (l + u) * 0.5, (u - l) * 0.5


def concretize_lower(lam, bias, l, u):
    """Lower bound of ``lam . z + bias`` over the box ``z in [l, u]``: ``lam m - |lam| r + bias``.

    ``lam`` (B or 1, m, n), ``l`` and ``u`` (B, n), ``bias`` (B or 1, m); returns (B, m). Exact: the
    corner ``z = m - sign(lam) r`` attains it.
    """
    xp = backend.get_array_module(lam)
    m, r = centre_radius(l, u)
    return (xp.matmul(lam, m[:, :, None])[:, :, 0] - xp.matmul(xp.abs(lam), r[:, :, None])[:, :, 0]
            + bias)


class Affine(object):
    """``y = z W^T + b`` (a linear layer, and Batch Renormalization folded into it).

    *IBP*: exact per output, by centre and radius (module docstring). *Backward*: exact, the
    function ``lam . (W z + b) + bias`` is ``(lam W) . z + (bias + lam . b)``.
    """

    kind = 'affine'

    def __init__(self, W, b=None):
        self.W = W
        xp = backend.get_array_module(W)
        self.b = b if b is not None else xp.zeros(W.shape[0], dtype=W.dtype)
        self.absW = xp.abs(W)

    @property
    def out_size(self):
        return self.W.shape[0]

    def forward(self, z):
        return z.dot(self.W.T) + self.b

    def interval(self, l, u):
        m, r = centre_radius(l, u)
        ym = m.dot(self.W.T) + self.b
        yr = r.dot(self.absW.T)
        return ym - yr, ym + yr

    def backward(self, lam, bias, l, u):
        xp = backend.get_array_module(lam)
        return xp.matmul(lam, self.W), bias + xp.matmul(lam, self.b)


class Diagonal(object):
    """``y = scale * z + shift`` per unit: Batch Renormalization with its running averages,
    ``gamma (z - mean) / sqrt(var + eps) + beta``, and the slope ``s`` of Elastic Sigmoid
    (``sigmoid(s z)`` is this layer with ``scale = s``, ``shift = 0``, then :class:`Sigmoid`).

    *IBP*: exact per unit: ``[min(scale l, scale u), max(scale l, scale u)] + shift`` (a negative
    scale swaps the ends). *Backward*: exact, ``lam . (scale z + shift) = (lam scale) . z + lam .
    shift``.
    """

    kind = 'diagonal'

    def __init__(self, scale, shift):
        self.scale = scale
        self.shift = shift

    @property
    def out_size(self):
        return self.scale.shape[0]

    def forward(self, z):
        return z * self.scale + self.shift

    def interval(self, l, u):
        a, b = l * self.scale, u * self.scale
        xp = backend.get_array_module(a)
        return xp.minimum(a, b) + self.shift, xp.maximum(a, b) + self.shift

    def backward(self, lam, bias, l, u):
        xp = backend.get_array_module(lam)
        return lam * self.scale, bias + xp.matmul(lam, self.shift)


BISECTION_STEPS = 30


def sigmoid_upper_line(xp, l, u):
    """A line ``a t + c`` with ``a t + c >= s(t)`` for every ``t`` in ``[l, u]`` (elementwise).

    ``s`` is convex on ``(-inf, 0]`` and concave on ``[0, inf)``. Three cases:

    1. ``l >= 0`` (concave part): every tangent lies above a concave function; the tangent at the
       midpoint ``(l + u) / 2`` is taken.
    2. ``s'(u) >= k``, ``k`` the slope of the chord from ``(l, s(l))`` to ``(u, s(u))`` (this
       includes ``u <= 0``): the chord. Proof: ``g = chord - s`` vanishes at ``l`` and ``u``; on
       ``[0, u]`` (if ``u > 0``) ``g`` is convex with ``g'(u) = k - s'(u) <= 0``, so it lies above
       its tangent at ``u``, which is ``>= 0`` left of ``u``; on ``[l, 0]`` ``g`` is concave with
       ``g(l) = 0`` and ``g(min(0, u)) >= 0``, so ``g >= 0`` between them.
    3. otherwise (``l < 0 < u``, the chord cuts through the concave part): the tangent at a point
       ``d`` in ``[0, u]`` with ``h(d) = s(d) - s(l) - s'(d) (d - l) >= 0``, i.e. whose tangent
       passes above ``(l, s(l))``. Such a tangent is above ``s`` on ``[0, u]`` (concave part); on
       ``[l, 0]`` it is above the chord from ``(l, s(l))`` to ``(0, s(0))`` (it is above both
       ends), and the chord is above the convex ``s`` there. ``h(u) > 0`` in this case and
       ``h(0) <= 0`` (``s(0) - s(l) <= s'(0) (-l)`` because ``s' <= s'(0)``), so bisection on
       ``h`` brackets the tangent through ``(l, s(l))`` exactly; the bracket's end with
       ``h >= 0`` is kept, so the line is sound after any number of steps
       (:data:`BISECTION_STEPS`), only less tight with fewer.

    A point interval ``l == u`` gives the constant ``s(l)``. Returns (a, c).
    """
    sl, su = sigmoid(xp, l), sigmoid(xp, u)
    width = u - l
    flat = width <= 0
    safe = xp.where(flat, 1.0, width)
    k = xp.where(flat, 0.0, (su - sl) / safe)
    # case 3: bisection between max(l, 0) = 0 and u for the tangent through (l, s(l)).
    lo = xp.zeros_like(u)
    hi = xp.maximum(u, 0.0)
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) * 0.5
        h = sigmoid(xp, mid) - sl - sigmoid_slope(xp, mid) * (mid - l)
        ok = h >= 0
        hi = xp.where(ok, mid, hi)
        lo = xp.where(ok, lo, mid)
    d = hi
    # hi starts at u, whose h is > 0 in case 3 only up to rounding: where h(d) < 0 after all, the
    # constant s(u) (sound, s is increasing) replaces the tangent.
    h_end = sigmoid(xp, d) - sl - sigmoid_slope(xp, d) * (d - l)
    fallback = h_end < 0
    # case 1: the tangent at the midpoint.
    m = (l + u) * 0.5
    d = xp.where(l >= 0, m, d)
    a = sigmoid_slope(xp, d)
    c = sigmoid(xp, d) - a * d
    a = xp.where(fallback & (l < 0), 0.0, a)
    c = xp.where(fallback & (l < 0), su, c)
    chord = (l < 0) & ((u <= 0) | (sigmoid_slope(xp, u) >= k))
    a = xp.where(chord, k, a)
    c = xp.where(chord, sl - k * l, c)
    a = xp.where(flat, 0.0, a)
    c = xp.where(flat, su, c)
    return a, c


def sigmoid_lower_line(xp, l, u):
    """A line ``a t + c <= s(t)`` on ``[l, u]``, from the upper line by the symmetry
    ``s(t) = 1 - s(-t)``: if ``a t' + c' >= s(t')`` on ``[-u, -l]``, then for ``t`` in ``[l, u]``
    ``s(t) = 1 - s(-t) >= 1 - (a (-t) + c') = a t + (1 - c')``."""
    a, c = sigmoid_upper_line(xp, -u, -l)
    return a, 1.0 - c


class Elementwise(object):
    """What an elementwise activation of ``size`` units shares: its size, and the backward step
    of the linear relaxation through the lines of :meth:`relaxation` (``kind`` 'sigmoid')."""

    kind = 'sigmoid'

    def __init__(self, size):
        self.size = size

    @property
    def out_size(self):
        return self.size

    def backward(self, lam, bias, l, u, relaxation=None):
        xp = backend.get_array_module(lam)
        aL, cL, aU, cU = relaxation if relaxation is not None else self.relaxation(l, u)
        pos = xp.maximum(lam, 0.0)
        neg = xp.minimum(lam, 0.0)
        new = pos * aL[:, None, :] + neg * aU[:, None, :]
        bias = (bias + xp.matmul(pos, cL[:, :, None])[:, :, 0]
                + xp.matmul(neg, cU[:, :, None])[:, :, 0])
        return new, bias


class Sigmoid(Elementwise):
    """``y = s(z)`` elementwise.

    *IBP*: ``s`` is increasing, so ``[s(l), s(u)]`` is exact per unit. *Backward* (CROWN, Zhang et
    al. 2018): per unit a lower line ``aL z + cL <= s(z)`` and an upper line ``aU z + cU >= s(z)``
    on the unit's input interval (:func:`sigmoid_lower_line`, :func:`sigmoid_upper_line`, each
    derived there); a coefficient ``lam >= 0`` of ``y`` takes the lower line and ``lam < 0`` the
    upper one, so ``lam . y >= (lam+ aL + lam- aU) . z + lam+ . cL + lam- . cU`` for every input
    in the box.
    """

    def forward(self, z):
        return sigmoid(backend.get_array_module(z), z)

    def interval(self, l, u):
        xp = backend.get_array_module(l)
        return sigmoid(xp, l), sigmoid(xp, u)

    def relaxation(self, l, u):
        xp = backend.get_array_module(l)
        aL, cL = sigmoid_lower_line(xp, l, u)
        aU, cU = sigmoid_upper_line(xp, l, u)
        return aL, cL, aU, cU


class ReLU(Elementwise):
    """``y = max(z, 0)`` elementwise: not a layer of the thesis's networks; it lets the bounds be
    checked against the exact margin of small ReLU networks (a mixed-integer program).

    *IBP*: increasing, ``[max(l, 0), max(u, 0)]``. *Backward* (CROWN): on ``l < 0 < u`` the upper
    line is the chord ``u (z - l) / (u - l)`` (above the convex function between two of its
    points) and the lower line ``a z`` with ``a = 1`` if ``u > -l`` else ``0`` (both below
    ``max(z, 0)`` everywhere); on ``u <= 0`` both lines are 0, on ``l >= 0`` both are ``z``.
    """

    def forward(self, z):
        return backend.get_array_module(z).maximum(z, 0.0)

    def interval(self, l, u):
        xp = backend.get_array_module(l)
        return xp.maximum(l, 0.0), xp.maximum(u, 0.0)

    def relaxation(self, l, u):
        xp = backend.get_array_module(l)
        mixed = (l < 0) & (u > 0)
        safe = xp.where(mixed, u - l, 1.0)
        aU = xp.where(mixed, u / safe, xp.where(l >= 0, 1.0, 0.0))
        cU = xp.where(mixed, -u * l / safe, 0.0)
        aL = xp.where(mixed, xp.where(u > -l, 1.0, 0.0), xp.where(l >= 0, 1.0, 0.0))
        return aL, xp.zeros_like(l), aU, cU
