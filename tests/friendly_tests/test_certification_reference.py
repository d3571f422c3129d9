"""Friendly.certification's interval bounds against a second implementation.

The reference below does not import ``Friendly.certification``: it reads the parameters straight
from the Chainer links, rebuilds each network as its own list of steps, and propagates the box with
the positive / negative split of the weights (``W+ l + W- u``) instead of the centre and radius
that the project uses, takes the Angular quotient over the four corners of its (numerator,
denominator) rectangle instead of the sign cases, and composes the trailing affine steps into one
matrix before the margin ("elision") instead of going backward step by step. The two must give the
same margin lower bounds (to rounding) on the same weights, for every variant, trained or not.
"""
import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly import models
from Friendly.certification import network as N
from tests.friendly_tests.conftest import certification_network

SIZES = (12, 9, 8, 10)
RTOL = 1e-9


def _sig(z):
    return 0.5 * numpy.tanh(0.5 * z) + 0.5


def _f64(a):
    return numpy.array(a, dtype=numpy.float64)


def reference_steps(model):
    """The network as ('affine', A, c) / ('sigmoid',) / ('angular', W, b, c) / ('pd', W) steps,
    with Batch Renormalization's running averages and Elastic Sigmoid's slope as affine steps and
    without the last layer's sigmoid."""
    spec = model.spec
    steps = []
    for i in range(1, model.n_layers + 1):
        kind = spec['layers'][i - 1]
        link = getattr(model, 'l{}'.format(i))
        if kind == 'linear':
            steps.append(('affine', _f64(link.W.array), _f64(link.b.array)))
        elif kind == 'angular':
            steps.append(('angular', _f64(link.W.array), _f64(link.b.array), float(link.c)))
        else:
            steps.append(('pd', _f64(link.W.array)))
        if spec['batch_renorm']:
            bn = getattr(model, 'bn{}'.format(i))
            a = _f64(bn.gamma.array) / numpy.sqrt(_f64(bn.avg_var) + bn.eps)
            steps.append(('affine', numpy.diag(a), _f64(bn.beta.array) - a * _f64(bn.avg_mean)))
        if spec['activation'] == 'elastic_sigmoid':
            s = float(getattr(model, 'es{}'.format(i)).s.array.reshape(()))
            n = steps[-1][1].shape[0]
            steps.append(('affine', s * numpy.eye(n), numpy.zeros(n)))
        if spec['activation'] in ('sigmoid', 'elastic_sigmoid') and i < model.n_layers:
            steps.append(('sigmoid',))
    return steps


def _affine_box(A, c, lo, hi):
    Ap, An = numpy.maximum(A, 0), numpy.minimum(A, 0)
    return lo @ Ap.T + hi @ An.T + c, hi @ Ap.T + lo @ An.T + c


def _angular_box(W, b, c, lo, hi):
    dl, du = _affine_box(W, numpy.zeros(W.shape[0]), lo, hi)
    norm_w = numpy.linalg.norm(W, axis=1)
    nearest = numpy.clip(0.0, lo, hi)                 # the box's point nearest to 0
    farthest = numpy.where(numpy.abs(lo) > numpy.abs(hi), lo, hi)
    n_lo = numpy.linalg.norm(nearest, axis=1)[:, None]
    n_hi = numpy.linalg.norm(farthest, axis=1)[:, None]
    corners = [d / (norm_w * n + c) for d in (dl, du) for n in (n_lo, n_hi)]
    q_lo, q_hi = numpy.minimum.reduce(corners), numpy.maximum.reduce(corners)
    cauchy = norm_w * n_hi / (norm_w * n_hi + c)      # |d| <= ||w|| ||a||
    return numpy.maximum(q_lo, -cauchy) + b, numpy.minimum(q_hi, cauchy) + b


def _pd_box(W, lo, hi):
    B, P = lo.shape
    s_lo = _sig(lo[:, :, None] - hi[:, None, :])
    s_hi = _sig(hi[:, :, None] - lo[:, None, :])
    diag = numpy.arange(P)
    s_lo[:, diag, diag] = s_hi[:, diag, diag] = 0.5   # v_i - v_i is 0 whatever v_i
    return _affine_box(W, numpy.zeros(W.shape[0]), s_lo.reshape(B, -1), s_hi.reshape(B, -1))


def reference_forward(steps, x):
    for step in steps:
        if step[0] == 'affine':
            x = x @ step[1].T + step[2]
        elif step[0] == 'sigmoid':
            x = _sig(x)
        elif step[0] == 'angular':
            _, W, b, c = step
            x = x @ W.T / (numpy.linalg.norm(x, axis=1)[:, None] * numpy.linalg.norm(W, axis=1)
                           + c) + b
        else:
            x = _pd_box(step[1], x, x)[0]
    return x


def reference_margin_lower(steps, x, t, eps):
    """(B, n - 1) lower bounds of z_t - z_j (j != t, ascending) over the clipped eps-ball."""
    k = len(steps)
    A, c = numpy.eye(steps[-1][1].shape[0]), numpy.zeros(steps[-1][1].shape[0])
    while k > 0 and steps[k - 1][0] == 'affine':      # compose the trailing affine steps
        _, Ak, ck = steps[k - 1]
        A, c = A @ Ak, A @ ck + c
        k -= 1
    lo, hi = numpy.clip(x - eps, 0, 255), numpy.clip(x + eps, 0, 255)
    for step in steps[:k]:
        if step[0] == 'affine':
            lo, hi = _affine_box(step[1], step[2], lo, hi)
        elif step[0] == 'sigmoid':
            lo, hi = _sig(lo), _sig(hi)
        elif step[0] == 'angular':
            lo, hi = _angular_box(step[1], step[2], step[3], lo, hi)
        else:
            lo, hi = _pd_box(step[1], lo, hi)
    out = []
    for b in range(x.shape[0]):
        rows = [j for j in range(A.shape[0]) if j != t[b]]
        M = A[t[b]][None] - A[rows]
        m = c[t[b]] - c[rows]
        out.append(_affine_box(M, m, lo[b:b + 1], hi[b:b + 1])[0][0])
    return numpy.array(out)


def _model(variant, trained, seed=5):
    model, x, t = certification_network(variant, seed, trained, SIZES)
    return model, x[:8].astype(numpy.float64), t[:8]


@pytest.mark.parametrize('variant', models.VARIANTS)
@pytest.mark.parametrize('trained', [False, True])
def test_reference_forward_is_the_chainer_network(variant, trained):
    model, x, _ = _model(variant, trained)
    with chainer.using_config('train', False):
        y = model(x.astype(numpy.float32)).array.astype(numpy.float64)
    s = reference_steps(model)
    z = reference_forward(s, x)
    if model.spec['activation'] is not None:   # the model ends in the sigmoid the steps leave out
        z = _sig(z)
    numpy.testing.assert_allclose(z, y, rtol=0, atol=2e-5 * max(1.0, numpy.abs(y).max()))


@pytest.mark.parametrize('variant', models.VARIANTS)
@pytest.mark.parametrize('trained', [False, True])
@pytest.mark.parametrize('eps', [0, 1, 4, 26, 77])
def test_interval_margins_agree_with_the_reference(variant, trained, eps):
    model, x, t = _model(variant, trained)
    net = N.from_model(model)
    lo, hi = N.input_box(numpy, x, eps)
    ours = net.margin_lower(lo, hi, t, method='ibp')
    ref = reference_margin_lower(reference_steps(model), x, t, eps)
    scale = numpy.abs(ref).max() + 1e-12
    numpy.testing.assert_allclose(ours, ref, rtol=RTOL, atol=RTOL * scale)


def test_the_comparison_sees_a_looser_bound():
    # Widening one hidden box in the reference (as an unsound or merely different bound would)
    # must break the agreement: the test above is not blind to a change of the bound.
    model, x, t = _model('S', True)
    net = N.from_model(model)
    lo, hi = N.input_box(numpy, x, 4)
    ours = net.margin_lower(lo, hi, t, method='ibp')
    steps = reference_steps(model)
    W, b = steps[0][1], steps[0][2]
    steps[0] = ('affine', W, b - 1e-3)
    ref = reference_margin_lower(steps, x, t, 4)
    assert not numpy.allclose(ours, ref, rtol=RTOL, atol=RTOL * numpy.abs(ref).max())


def _pd_models(seed=7):
    chainer.global_config.dtype = numpy.float32
    built = {}
    for form in ('full', 'pairs'):
        numpy.random.seed(seed)                       # the same draw; the pair form folds it
        built[form] = models.FC100('PD', sizes=SIZES, pd_form=form)
    rng = numpy.random.RandomState(seed)
    x = rng.randint(0, 256, size=(8, SIZES[0])).astype(numpy.float64)
    for form in ('full', 'pairs'):
        with chainer.using_config('train', True):     # the same running averages in both
            built[form](x.astype(numpy.float32))
    return built['full'], built['pairs'], x


@pytest.mark.parametrize('eps', [0, 2, 26])
def test_pair_form_pd_is_certified_as_tightly_as_its_full_form(eps):
    full, pairs, x = _pd_models()
    with chainer.using_config('train', False):
        y_pairs = pairs(x.astype(numpy.float32)).array
    net_full, net_pairs = N.from_model(full), N.from_model(pairs)
    # The unfolded pair form is the pair network: same outputs (float32 Chainer against float64).
    numpy.testing.assert_allclose(_sig(net_pairs.forward(x)), y_pairs, atol=2e-5)
    t = net_full.forward(x).argmax(axis=1)
    lo, hi = N.input_box(numpy, x, eps)
    m_full = net_full.margin_lower(lo, hi, t, method='ibp')
    m_pairs = net_pairs.margin_lower(lo, hi, t, method='ibp')
    # The pair form's float32 parameters are the full form's folded and rounded once more.
    slack = 1e-6 * numpy.abs(m_full).max()
    if eps == 0:
        numpy.testing.assert_allclose(m_pairs, m_full, rtol=0, atol=slack)
    else:   # each pair's two sigmoids are one term in the pair form: never looser
        assert numpy.all(m_pairs >= m_full - slack)
        assert numpy.any(m_pairs > m_full + 1e-3)
    rng = numpy.random.RandomState(1)
    for _ in range(20):   # and sound: points of the ball keep their margins above the bound
        v = numpy.round(lo + (hi - lo) * rng.rand(*x.shape))
        z = net_pairs.forward(v)
        exact = z[numpy.arange(len(t)), t][:, None] - numpy.stack(
            [numpy.delete(z[b], t[b]) for b in range(len(t))])
        assert numpy.all(exact >= m_pairs - 1e-9)
