"""Soundness of Friendly.certification against independent expectations.

Every bound is checked against points of the ball (random samples, corners, PGD's examples), the
exact margin of tiny ReLU networks (scipy.optimize.milp), the exact range of linear models
(enumerated corners) and, for the sigmoid lines, a dense grid.
"""
import itertools

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly import attacks
from Friendly import models
from Friendly.certification import barriers
from Friendly.certification import layers as L
from Friendly.certification import network as N
from Friendly.certification import training as T
from tests.friendly_tests.conftest import certification_network

SIZES = (16, 12, 12, 10)
SLACK = 1e-9


def _margins(z, t):
    """(B, n - 1) exact margins z_t - z_j, j != t, in the order of network.margin_matrix."""
    C = N.margin_matrix(numpy, t, z.shape[1])
    return numpy.einsum('bmn,bn->bm', C, z)


def _small_model(variant, seed, trained):
    model, x, t = certification_network(variant, seed, trained, SIZES)
    return model, x[:6], t[:6]


def _points(lo, hi, rng, n_random=60):
    B, P = lo.shape
    pts = [lo, hi, (lo + hi) / 2]
    for _ in range(n_random):
        pts.append(lo + (hi - lo) * rng.rand(B, P))
    for _ in range(n_random):
        pts.append(numpy.where(rng.rand(B, P) < 0.5, lo, hi))   # random corners
    return pts


@pytest.mark.parametrize('variant', models.VARIANTS)
@pytest.mark.parametrize('trained', [False, True])
def test_points_of_the_ball_stay_inside_the_bounds(variant, trained):
    model, x, t = _small_model(variant, 3, trained)
    net = N.from_model(model)
    x64 = x.astype(numpy.float64)
    with chainer.using_config('train', False):
        t = net.forward(x64).argmax(axis=1)
    rng = numpy.random.RandomState(0)
    for eps in (0, 2, 8, 40):
        lo, hi = N.input_box(numpy, x64, eps)
        pts = _points(lo, hi, rng)
        with chainer.using_config('train', False):
            pts.append(attacks.pgd(model, x, t.astype(numpy.int32), eps, steps=10, restarts=2,
                                   loss='margin', rng=numpy.random.RandomState(1))
                       .astype(numpy.float64) if eps else x64)
        for method in N.METHODS:
            bound = net.margin_lower(lo, hi, t, method)
            boxes, _ = net.boxes(lo, hi, method)
            for p in pts:
                assert numpy.all(p >= lo) and numpy.all(p <= hi)
                z = p
                for op, (bl, bu) in zip(net.ops, boxes):
                    z = op.forward(z)
                    assert numpy.all(z >= bl - SLACK) and numpy.all(z <= bu + SLACK), (
                        variant, method, eps, op.kind)
                assert numpy.all(_margins(z, t) >= bound - SLACK), (variant, method, eps)
            if eps == 0:   # a point: the bound is the margin itself
                assert numpy.allclose(bound, _margins(net.forward(x64), t), atol=1e-9)


@pytest.mark.parametrize('variant', models.VARIANTS)
def test_float64_network_is_the_chainer_network_with_running_averages(variant):
    model, x, _ = _small_model(variant, 5, True)
    from Friendly.evaluation import float64_copy
    model64 = float64_copy(model)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        y = model64(x.astype(numpy.float64)).array
    z = N.from_model(model).forward(x.astype(numpy.float64))
    if model.spec['activation'] is not None:
        z = 1 / (1 + numpy.exp(-z))
    numpy.testing.assert_allclose(z, y, rtol=1e-9, atol=1e-12)


def _bad_upper(xp, l, u):
    """An unsound 'upper' line: the tangent at 0, below s left of 0."""
    return xp.full_like(l, 0.25), xp.full_like(l, 0.5)


def _check_lines(upper, lower, rng, n=400):
    l = rng.uniform(-12, 12, size=n)
    w = numpy.concatenate([rng.uniform(0, 30, size=n // 2), 10.0 ** rng.uniform(-9, 0, n // 2)])
    l[:10] = numpy.linspace(-3, 0, 10)
    w[:10] = -l[:10]                     # intervals ending at 0
    u = l + w
    aU, cU = upper(numpy, l, u)
    aL, cL = lower(numpy, l, u)
    t = l[:, None] + (u - l)[:, None] * numpy.linspace(0, 1, 501)[None, :]
    s = L.sigmoid(numpy, t)
    up_ok = (aU[:, None] * t + cU[:, None] >= s - 1e-12).all()
    low_ok = (aL[:, None] * t + cL[:, None] <= s + 1e-12).all()
    return up_ok, low_ok


def test_sigmoid_lines_are_sound_on_a_dense_grid():
    up, low = _check_lines(L.sigmoid_upper_line, L.sigmoid_lower_line,
                           numpy.random.RandomState(0))
    assert up and low


def test_the_grid_check_catches_an_unsound_line():
    up, low = _check_lines(_bad_upper, L.sigmoid_lower_line, numpy.random.RandomState(0))
    assert not up and low


def test_sigmoid_lines_touch_the_curve_in_the_mixed_case():
    """The upper line on [l, u] with l < 0 < u is tangent through (l, s(l)): tight at l."""
    l, u = numpy.array([-4.0, -1.0]), numpy.array([6.0, 8.0])
    a, c = L.sigmoid_upper_line(numpy, l, u)
    numpy.testing.assert_allclose(a * l + c, L.sigmoid(numpy, l), atol=1e-7)


def test_bounds_of_a_linear_model_are_exact():
    rng = numpy.random.RandomState(2)
    P = 6
    W1, b1 = rng.randn(5, P), rng.randn(5)
    W2, b2 = rng.randn(4, 5), rng.randn(4)
    net = N.CertifiedNetwork([L.Affine(W1, b1), L.Diagonal(rng.randn(5), rng.randn(5)),
                              L.Affine(W2, b2)])
    x = rng.uniform(0, 255, size=(3, P))
    t = numpy.array([0, 2, 3])
    lo, hi = N.input_box(numpy, x, 20.0)
    corners = numpy.array(list(itertools.product([0, 1], repeat=P)), dtype=float)
    exact = numpy.full((3, 3), numpy.inf)
    for b in range(3):
        pts = lo[b] + (hi[b] - lo[b]) * corners
        exact[b] = _margins(net.forward(pts), numpy.full(len(pts), t[b])).min(axis=0)
    for method in N.METHODS:
        numpy.testing.assert_allclose(net.margin_lower(lo, hi, t, method), exact, atol=1e-8)


def _milp_min_margin(Ws, bs, pre_boxes, lo, hi, c):
    """Exact min of c . z_out over the box for a ReLU network (big-M with sound pre-bounds)."""
    from scipy.optimize import milp, LinearConstraint, Bounds
    P = len(lo)
    sizes = [W.shape[0] for W in Ws[:-1]]
    # variables: x (P), then per hidden layer y (n) and delta (n)
    n_var = P + 2 * sum(sizes)
    lb = numpy.concatenate([lo] + [numpy.concatenate([numpy.zeros(n), numpy.zeros(n)])
                                   for n in sizes])
    ub = numpy.concatenate([hi] + [numpy.concatenate([numpy.full(n, numpy.inf), numpy.ones(n)])
                                   for n in sizes])
    integrality = numpy.concatenate([numpy.zeros(P)] + [numpy.concatenate(
        [numpy.zeros(n), numpy.ones(n)]) for n in sizes])
    rows, rlo, rhi = [], [], []
    prev, off = slice(0, P), P
    for W, b, (pl, pu) in zip(Ws[:-1], bs[:-1], pre_boxes):
        n = W.shape[0]
        y, d = slice(off, off + n), slice(off + n, off + 2 * n)
        for k in range(n):
            # z = W x + b; y >= z; y <= z - pl (1 - delta); y <= pu delta
            r = numpy.zeros(n_var)
            r[prev] = -W[k]
            r[y.start + k] = 1
            rows.append(r)
            rlo.append(b[k])
            rhi.append(numpy.inf)
            r = numpy.zeros(n_var)
            r[prev] = -W[k]
            r[y.start + k] = 1
            r[d.start + k] = -pl[k]
            rows.append(r)
            rlo.append(-numpy.inf)
            rhi.append(b[k] - pl[k])
            r = numpy.zeros(n_var)
            r[y.start + k] = 1
            r[d.start + k] = -pu[k]
            rows.append(r)
            rlo.append(-numpy.inf)
            rhi.append(0.0)
        prev, off = y, off + 2 * n
    obj = numpy.zeros(n_var)
    obj[prev] = c.dot(Ws[-1])
    res = milp(obj, constraints=LinearConstraint(numpy.array(rows), rlo, rhi),
               integrality=integrality, bounds=Bounds(lb, ub))
    assert res.success
    return res.fun + c.dot(bs[-1])


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_certified_bound_never_above_the_exact_margin_of_a_relu_network(seed):
    rng = numpy.random.RandomState(seed)
    P, H = 4, 6
    Ws = [rng.randn(H, P) * 0.05, rng.randn(H, H), rng.randn(3, H)]
    bs = [rng.randn(H), rng.randn(H), rng.randn(3)]
    net = N.CertifiedNetwork([L.Affine(Ws[0], bs[0]), L.ReLU(H), L.Affine(Ws[1], bs[1]),
                              L.ReLU(H), L.Affine(Ws[2], bs[2])])
    x = rng.uniform(0, 255, size=(1, P))
    t = net.forward(x).argmax(axis=1)
    for eps in (1.0, 5.0, 20.0):
        lo, hi = N.input_box(numpy, x, eps)
        boxes, _ = net.boxes(lo, hi, 'ibp')
        pre = [boxes[0], boxes[2]]
        pre = [(a[0], b[0]) for a, b in pre]
        C = N.margin_matrix(numpy, t, 3)[0]
        exact = numpy.array([_milp_min_margin(Ws, bs, pre, lo[0], hi[0], c) for c in C])
        for method in N.METHODS:
            bound = net.margin_lower(lo, hi, t, method)[0]
            assert numpy.all(bound <= exact + 1e-7), (method, eps, bound, exact)


def test_angular_box_holds_random_points_and_is_within_cauchy_schwarz():
    rng = numpy.random.RandomState(4)
    W, b = rng.uniform(-1, 1, size=(7, 5)), rng.randn(7)
    layer = barriers.Angular(W, b, 0.2)
    lo = rng.uniform(-2, 1, size=(4, 5))
    hi = lo + rng.uniform(0, 2, size=(4, 5))
    bl, bu = layer.interval(lo, hi)
    assert numpy.all(bu - b < 1) and numpy.all(bl - b > -1)
    for _ in range(2000):
        a = lo + (hi - lo) * rng.rand(4, 5)
        y = layer.forward(a)
        assert numpy.all(y >= bl - SLACK) and numpy.all(y <= bu + SLACK)


def test_pairwise_difference_table_and_tanh_paths_agree():
    rng = numpy.random.RandomState(6)
    P = 5
    layer = barriers.PairwiseDifference(rng.uniform(-1, 1, size=(3, P * P)), chunk_size=2, batch=2)
    x = rng.randint(0, 256, size=(3, P)).astype(float)
    lo, hi = N.input_box(numpy, x, 7.0)
    a = layer.interval(lo, hi)
    b = layer.interval(lo + 1e-12, hi - 1e-12)   # not integral: the tanh path
    numpy.testing.assert_allclose(a, b, atol=1e-9)
    from Friendly.functions import pairwise_difference
    y = pairwise_difference(x, layer.W).array
    numpy.testing.assert_allclose(layer.forward(x), y, atol=1e-9)


def test_ibp_training_bound_is_an_upper_bound_of_the_squared_distance():
    model, x, t = _small_model('S', 7, True)
    x = x.reshape(len(x), -1)
    eps = 10.0
    lo = numpy.maximum(x - eps, 0).astype(numpy.float32)
    hi = numpy.minimum(x + eps, 255).astype(numpy.float32)
    with chainer.no_backprop_mode():
        zl, zh = T.interval_logits(model, lo, hi)
        worst = T.worst_squared_distance(zl, zh, t).array
    net = N.from_model(model)
    bl, bu = net.logit_box(lo.astype(numpy.float64), hi.astype(numpy.float64), 'ibp')
    numpy.testing.assert_allclose(zl.array, bl, rtol=1e-4, atol=1e-4)
    numpy.testing.assert_allclose(zh.array, bu, rtol=1e-4, atol=1e-4)
    rng = numpy.random.RandomState(0)
    with chainer.no_backprop_mode():
        for p in _points(lo, hi, rng, 30):
            sd = models.squared_distance_loss(model(p.astype(numpy.float32)), t,
                                              reduce='no').array
            assert numpy.all(sd <= worst + 1e-5)


def test_ibp_schedule_ramps_eps_and_kappa():
    assert T.schedule(0.5, 26, warmup=1, ramp=4, kappa=0.5) == (0.0, 1.0)
    assert T.schedule(3.0, 26, warmup=1, ramp=4, kappa=0.5) == (13.0, 0.75)
    assert T.schedule(9.0, 26, warmup=1, ramp=4, kappa=0.5) == (26.0, 0.5)


def test_certify_counts_and_skips():
    rng = numpy.random.RandomState(8)
    net = N.CertifiedNetwork([L.Affine(rng.randn(10, 6) * 0.01, rng.randn(10))])
    x = rng.uniform(0, 255, size=(20, 6))
    t = net.forward(x).argmax(axis=1)
    cert, low, _ = N.certify(net, x, t, [0, 1, 4, 50], batch=7)
    for method in N.METHODS:
        assert cert[method][0].all()   # eps 0: every correctly classified image
        # certified sets shrink with eps, and a skipped image stays uncertified
        assert numpy.all(cert[method][1:] <= cert[method][:-1])
        full, _, _ = N.certify(net, x, t, [0, 1, 4, 50], methods=(method,), skip=False)
        assert numpy.all(cert[method] <= full[method])


@pytest.mark.gpu
@pytest.mark.parametrize('variant', ['S', 'RS', 'A', 'GMRES', 'PD'])
def test_cupy_bounds_equal_numpy_bounds(variant):
    import cupy
    model, x, _ = _small_model(variant, 9, True)
    x64 = x.astype(numpy.float64)
    t = N.from_model(model).forward(x64).argmax(axis=1)
    lo, hi = N.input_box(numpy, x64, 5.0)
    for method in N.METHODS:
        cpu = N.from_model(model).margin_lower(lo, hi, t, method)
        gpu = N.from_model(model, cupy).margin_lower(cupy.asarray(lo), cupy.asarray(hi),
                                                     cupy.asarray(t), method)
        numpy.testing.assert_allclose(cupy.asnumpy(gpu), cpu, rtol=1e-9, atol=1e-9)
