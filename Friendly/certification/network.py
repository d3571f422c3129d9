"""A Friendly network as a list of :mod:`Friendly.certification.layers`, and its margin bounds.

:func:`from_model` turns a :class:`Friendly.models.FC100` into a :class:`CertifiedNetwork`: float64
copies of its parameters on the array module of ``xp`` (NumPy or CuPy), Batch Renormalization
with its running averages, Elastic Sigmoid split into its slope and a sigmoid, and without the
last sigmoid (it is increasing, so it changes no comparison between outputs: the margins are taken
on its input, the *logits*).

Two bounds on the margin ``z_t - z_j`` (``t`` the true class, ``j`` every other) over the box
``x in [max(x0 - eps, 0), min(x0 + eps, 255)]``:

* ``'ibp'``: interval bound propagation (every layer's ``interval``), with the trailing linear
  layers merged into the margin before the box is used (the "elision" of Gowal et al. 2018: the
  margin's coefficients go backward through the last linear and Batch Renormalization layers,
  exactly, and meet the box of the last sigmoid's output or of the last barrier);
* ``'crown'``: the backward linear relaxation (CROWN, Zhang et al. 2018; DeepPoly, Singh et al.
  2019): the margin's coefficients go backward through every layer, each sigmoid replaced by its
  two lines (:class:`Friendly.certification.layers.Sigmoid`), down to the input box or to the
  output box of a barrier (Angular, Pairwise Difference). The sigmoids' input intervals come from
  the same backward pass started at each of them (intersected with their IBP interval, both being
  sound).

An image counts as certified when the lower bound of every margin exceeds :data:`TOLERANCE`.
"""
import numpy

from chainer import backend

from Friendly.certification import barriers
from Friendly.certification import layers as L

TOLERANCE = 1e-9
METHODS = ('ibp', 'crown')
PIXEL_MIN, PIXEL_MAX = 0.0, 255.0


def _param(xp, a):
    return xp.asarray(backend.CpuDevice().send(a), dtype=numpy.float64)


def _bias(xp, link):
    return _param(xp, link.b.array) if getattr(link, 'b', None) is not None else None


def batch_renorm_diagonal(xp, bn):
    """Batch Renormalization with running averages as ``scale z + shift`` (float64)."""
    gamma = _param(xp, bn.gamma.array)
    beta = _param(xp, bn.beta.array)
    mean = _param(xp, bn.avg_mean)
    var = _param(xp, bn.avg_var)
    scale = gamma / xp.sqrt(var + bn.eps)
    return L.Diagonal(scale, beta - mean * scale)


def unfold_pairs(xp, link):
    """The pair form of Pairwise Difference as a full-form weight matrix and a constant.

    ``1/2 A_km tanh((v_i - v_j) / 2) = A_km s(v_i - v_j) - A_km / 2`` (since
    ``tanh(d / 2) = 2 s(d) - 1``), so the pair layer is the full layer with ``W_k,ij = A_km`` at
    each stored pair ``m = (i, j)`` and 0 elsewhere, plus ``b_k - 1/2 sum_m A_km``. Its interval
    bound is at least as tight as that of the full-form weights the pair form was folded from:
    each pair's two sigmoids are one term here, two independent ones there.
    """
    from Friendly.functions.pairwise_difference_pairs import pair_indices
    A = _param(xp, link.A.array)
    b = _param(xp, link.b.array)
    P = int(round((1 + (1 + 8 * A.shape[1]) ** 0.5) / 2))
    i, j = pair_indices(P)
    W = xp.zeros((A.shape[0], P * P), dtype=numpy.float64)
    W[:, xp.asarray(i * P + j)] = A
    return W, b - 0.5 * A.sum(axis=1)


def from_model(model, xp=numpy, pd_batch=50, pd_chunk_size=16):
    """The :class:`CertifiedNetwork` of a :class:`Friendly.models.FC100` (float64, on ``xp``)."""
    spec = model.spec
    ops = []
    for i in range(1, model.n_layers + 1):
        kind = spec['layers'][i - 1]
        link = getattr(model, 'l{}'.format(i))
        if kind == 'pairwise_difference' and getattr(link, 'form', 'full') == 'pairs':
            W, shift = unfold_pairs(xp, link)
            ops.append(barriers.PairwiseDifference(W, chunk_size=pd_chunk_size, batch=pd_batch))
            ops.append(L.Diagonal(xp.ones_like(shift), shift))
        elif kind == 'pairwise_difference':
            ops.append(barriers.PairwiseDifference(_param(xp, link.W.array),
                                                   chunk_size=pd_chunk_size, batch=pd_batch))
        elif kind == 'linear':
            ops.append(L.Affine(_param(xp, link.W.array), _bias(xp, link)))
        elif kind == 'angular':
            ops.append(barriers.Angular(_param(xp, link.W.array), _bias(xp, link), link.c))
        else:
            raise ValueError('no bound for layer kind {!r}'.format(kind))
        if spec['batch_renorm']:
            ops.append(batch_renorm_diagonal(xp, getattr(model, 'bn{}'.format(i))))
        activation = spec['activation']
        size = ops[-1].out_size
        if activation == 'elastic_sigmoid':
            s = _param(xp, getattr(model, 'es{}'.format(i)).s.array).reshape(())
            ops.append(L.Diagonal(xp.full(size, s, dtype=numpy.float64),
                                  xp.zeros(size, dtype=numpy.float64)))
        if activation in ('sigmoid', 'elastic_sigmoid') and i < model.n_layers:
            ops.append(L.Sigmoid(size))
    return CertifiedNetwork(ops, xp)


def input_box(xp, x, eps):
    """The L-infinity ball of radius ``eps`` around ``x`` intersected with 0..255."""
    return xp.maximum(x - eps, PIXEL_MIN), xp.minimum(x + eps, PIXEL_MAX)


def margin_matrix(xp, t, n_classes):
    """(B, n - 1, n): row ``j`` of image ``b`` is ``e_t - e_j`` for the classes ``j != t``."""
    eye = xp.eye(n_classes, dtype=numpy.float64)
    others = xp.array([[j for j in range(n_classes) if j != k] for k in range(n_classes)])
    return eye[t][:, None, :] - eye[others[t]]


class CertifiedNetwork(object):
    """A sequence of layers from :mod:`Friendly.certification.layers` ending in the logits."""

    def __init__(self, ops, xp=numpy):
        self.ops = list(ops)
        self.xp = xp

    @property
    def n_classes(self):
        return self.ops[-1].out_size

    def forward(self, x):
        z = x
        for op in self.ops:
            z = op.forward(z)
        return z

    def _backward(self, i, lam, bias, boxes, relax, x_box, linear_only):
        """Lower bound of ``lam . y_i + bias`` (``y_i`` the output of layer ``i``) over the box.

        Goes backward through layers ``i, i-1, ...``; stops at a barrier (its output box), or, with
        ``linear_only``, at the first sigmoid too (its output box); else reaches the input box.
        """
        for j in range(i, -1, -1):
            op = self.ops[j]
            if op.kind in ('affine', 'diagonal'):
                lam, bias = op.backward(lam, bias, None, None)
            elif op.kind == 'sigmoid' and not linear_only:
                lam, bias = op.backward(lam, bias, None, None, relaxation=relax[j])
            else:
                return L.concretize_lower(lam, bias, *boxes[j])
        return L.concretize_lower(lam, bias, *x_box)

    def _has_sigmoid_before(self, i):
        for j in range(i, -1, -1):
            kind = self.ops[j].kind
            if kind == 'sigmoid':
                return True
            if kind not in ('affine', 'diagonal'):
                return False
        return False

    def boxes(self, l, u, method='ibp', first=None):
        """Output box of every layer (and the sigmoid relaxations for 'crown').

        ``first``: the first layer's output box when already known (it is the same for both
        methods: no backward pass reaches before the first layer's input).
        """
        xp = self.xp
        boxes, relax = [], {}
        box = (l, u)
        for i, op in enumerate(self.ops):
            if op.kind == 'sigmoid' and method == 'crown':
                relax[i] = op.relaxation(*box)
            box = first if (i == 0 and first is not None) else op.interval(*box)
            nxt = self.ops[i + 1] if i + 1 < len(self.ops) else None
            if (method == 'crown' and nxt is not None and nxt.kind == 'sigmoid'
                    and self._has_sigmoid_before(i)):
                n = op.out_size
                eye = xp.eye(n, dtype=numpy.float64)
                lam = xp.concatenate([eye, -eye])[None]
                bias = xp.zeros((1, 2 * n), dtype=numpy.float64)
                low = self._backward(i, lam, bias, boxes, relax, (l, u), False)
                box = (xp.maximum(box[0], low[:, :n]), xp.minimum(box[1], -low[:, n:]))
            boxes.append(box)
        return boxes, relax

    def margin_lower(self, l, u, t, method='ibp', first=None):
        """(B, n - 1) lower bounds of ``z_t - z_j`` for ``j != t`` over the box [l, u]."""
        if method not in METHODS:
            raise ValueError('method must be one of {}, got {!r}'.format(METHODS, method))
        xp = self.xp
        boxes, relax = self.boxes(l, u, method, first)
        lam = margin_matrix(xp, t, self.n_classes)
        bias = xp.zeros(lam.shape[:2], dtype=numpy.float64)
        return self._backward(len(self.ops) - 1, lam, bias, boxes, relax, (l, u),
                              linear_only=(method == 'ibp'))

    def logit_box(self, l, u, method='ibp'):
        """The box of the logits (the last layer's output)."""
        return self.boxes(l, u, method)[0][-1]


def certify(net, x, t, eps_grid, methods=METHODS, batch=100, tolerance=TOLERANCE, skip=True,
            progress=None):
    """Per method, a (len(eps_grid), N) bool array: image certified at that eps.

    ``x`` (N, P) pixels 0..255 and ``t`` (N,) labels, NumPy arrays (moved to ``net.xp``).
    ``eps_grid`` must be increasing. With ``skip`` an image that no method certifies at one eps
    is not tried at the larger ones (counted as not certified there): sound, since a failed bound
    proves nothing, and it saves the time of bounds that would almost always fail too. The first
    layer's box is computed once per image and eps for all methods (Pairwise Difference spends
    nearly all the time there). Also returns, per method, the smallest margin lower bound
    (``-inf`` where skipped), and the seconds spent per method (``'first_layer'``: the shared
    box).
    """
    import time
    xp = net.xp
    x = xp.asarray(x, dtype=numpy.float64).reshape(len(x), -1)
    t = xp.asarray(t)
    N = len(x)
    cert = {m: numpy.zeros((len(eps_grid), N), dtype=bool) for m in methods}
    low = {m: numpy.full((len(eps_grid), N), -numpy.inf) for m in methods}
    seconds = dict.fromkeys(list(methods) + ['first_layer'], 0.0)
    alive = numpy.ones(N, dtype=bool)
    for k, eps in enumerate(eps_grid):
        idx = numpy.flatnonzero(alive) if skip else numpy.arange(N)
        for b0 in range(0, len(idx), batch):
            sel = idx[b0:b0 + batch]
            xs = x[xp.asarray(sel)]
            ts = t[xp.asarray(sel)]
            lo, hi = input_box(xp, xs, float(eps))
            start = time.time()
            first = net.ops[0].interval(lo, hi)
            seconds['first_layer'] += time.time() - start
            for method in methods:
                start = time.time()
                m = net.margin_lower(lo, hi, ts, method, first).min(axis=1)
                m = backend.CpuDevice().send(m)
                low[method][k, sel] = m
                cert[method][k, sel] = m > tolerance
                seconds[method] += time.time() - start
            if progress is not None:
                progress(len(sel))
        if skip:
            now = numpy.zeros(N, dtype=bool)
            for method in methods:
                now |= cert[method][k]
            alive &= now
    return cert, low, seconds
