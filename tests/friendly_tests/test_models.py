import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
import chainer.links as L
from chainer import gradient_check

from Friendly import links as friendly_links
from Friendly import models

SMALL = (12, 7, 6, 10)   # a small FC net with the same structure, for speed


def _x(batch=5, size=12, seed=0):
    rng = numpy.random.RandomState(seed)
    return rng.randint(0, 256, size=(batch, 1, 1, size)).astype(numpy.float32)


@pytest.mark.parametrize('variant', models.VARIANTS)
def test_forward_shape_and_range(variant):
    model = models.FC100(variant, sizes=SMALL)
    x = _x()
    with chainer.using_config('train', True):
        y = model(x)
    assert y.shape == (5, 10)
    assert y.dtype == numpy.float32
    assert numpy.isfinite(y.array).all()
    if models.VARIANT_SETTINGS[variant]['activation'] is not None:
        assert (y.array >= 0).all() and (y.array <= 1).all()


def test_full_size_forward_shape():
    model = models.FC100('S')
    y = model(numpy.zeros((3, 1, 28, 28), numpy.float32))
    assert y.shape == (3, 10)
    assert model.l1.W.shape == (100, 784)
    assert model.l2.W.shape == (100, 100)
    assert model.l3.W.shape == (10, 100)


def test_full_size_pd_first_layer():
    model = models.FC100('PD')
    assert isinstance(model.l1, friendly_links.PairwiseDifference)
    assert model.l1.W.shape == (100, 784 * 784)
    assert model.l1.W.array.min() >= -1 and model.l1.W.array.max() <= 1


def test_table_3_1_hyperparameters():
    expected = {  # thesis Table 3.1
        'S': (False, 'sigmoid', 0.002), 'RS': (True, 'sigmoid', 0.002),
        'A': (True, None, 0.0002), 'GMR': (False, 'sigmoid', 0.0009),
        'GMRES': (False, 'elastic_sigmoid', 0.002), 'PD': (True, 'sigmoid', 0.002)}
    assert set(models.VARIANTS) == set(expected)
    for name, (brn, act, lr) in expected.items():
        spec = models.VARIANT_SETTINGS[name]
        assert (spec['batch_renorm'], spec['activation'], spec['lr']) == (brn, act, lr)
        assert spec['gmr'] == (name in ('GMR', 'GMRES'))
    assert models.MOMENTUM == 0.85 and models.BATCHSIZE == 20 and models.GMR_WEIGHT == 0.5


@pytest.mark.parametrize('variant', models.VARIANTS)
def test_structure(variant):
    model = models.FC100(variant, sizes=SMALL)
    kinds = {'S': (L.Linear,) * 3, 'RS': (L.Linear,) * 3, 'GMR': (L.Linear,) * 3,
             'GMRES': (L.Linear,) * 3,
             'A': (friendly_links.Angular, friendly_links.Angular, L.Linear),
             'PD': (friendly_links.PairwiseDifference, L.Linear, L.Linear)}[variant]
    for i, kind in enumerate(kinds, 1):
        assert type(getattr(model, 'l{}'.format(i))) is kind
    if variant == 'A':
        assert model.l1.c == 0.2 and model.l2.c == 0.2
    brn = models.VARIANT_SETTINGS[variant]['batch_renorm']
    for i in range(1, 4):
        assert hasattr(model, 'bn{}'.format(i)) == brn
        assert hasattr(model, 'es{}'.format(i)) == (variant == 'GMRES')
        if brn:
            bn = getattr(model, 'bn{}'.format(i))
            assert isinstance(bn, L.BatchRenormalization)
            assert bn.decay == 0.8 and bn.rmax == 1 and bn.dmax == 0
            assert bn.avg_mean.shape == (SMALL[i],)
        if variant == 'GMRES':
            assert float(getattr(model, 'es{}'.format(i)).s.array.ravel()[0]) == 1.0
    assert len(model.batch_renorm_links()) == (3 if brn else 0)


def test_unknown_variant():
    with pytest.raises(models.VariantError, match="unknown variant 'XX'"):
        models.FC100('XX')


def _sigmoid(a):
    return 1 / (1 + numpy.exp(-a))


def test_rs_batch_statistics_by_hand():
    model = models.FC100('RS', sizes=SMALL)
    for bn in model.batch_renorm_links():   # running averages far from the batch's
        bn.avg_mean[...] = 5.0
        bn.avg_var[...] = 9.0
        bn.gamma.array[...] = numpy.linspace(0.5, 1.5, bn.gamma.size)
        bn.beta.array[...] = numpy.linspace(-0.3, 0.3, bn.beta.size)
        bn.rmax, bn.dmax = 1000.0, 1000.0   # what the renorm schedule leaves behind
    x = _x(8)
    h = x.reshape(8, -1).astype(numpy.float64)
    for i in range(1, 4):
        lin, bn = getattr(model, 'l{}'.format(i)), getattr(model, 'bn{}'.format(i))
        h = h @ lin.W.array.T + lin.b.array
        h = (h - h.mean(0)) / numpy.sqrt(h.var(0) + bn.eps) * bn.gamma.array + bn.beta.array
        h = _sigmoid(h)
    with models.evaluation_mode(model, 'batch'), chainer.no_backprop_mode():
        y = model(x)
    numpy.testing.assert_allclose(y.array, h, rtol=1e-4, atol=1e-5)
    for bn in model.batch_renorm_links():   # running averages untouched, settings restored
        assert (bn.avg_mean == 5.0).all() and (bn.avg_var == 9.0).all()
        assert bn.rmax == 1000.0 and bn.dmax == 1000.0 and bn.decay == 0.8
    # Running-average mode uses the stored statistics instead.
    with models.evaluation_mode(model, 'running'):
        y_running = model(x)
    h = x.reshape(8, -1).astype(numpy.float64)
    for i in range(1, 4):
        lin, bn = getattr(model, 'l{}'.format(i)), getattr(model, 'bn{}'.format(i))
        h = h @ lin.W.array.T + lin.b.array
        h = _sigmoid((h - 5.0) / numpy.sqrt(9.0 + bn.eps) * bn.gamma.array + bn.beta.array)
    numpy.testing.assert_allclose(y_running.array, h, rtol=1e-4, atol=1e-5)


def test_evaluation_mode_rejects_unknown():
    with pytest.raises(ValueError):
        with models.evaluation_mode(models.FC100('S', sizes=SMALL), 'median'):
            pass


def test_squared_distance_loss_by_hand():
    y = numpy.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0]], numpy.float32)
    t = numpy.array([1, 2], numpy.int32)
    # sample 0: 0.01 + 0.09 + 0.04 = 0.14; sample 1: 0.25 + 0.25 + 1 = 1.5
    per = models.squared_distance_loss(y, t, reduce='no')
    numpy.testing.assert_allclose(per.array, [0.14, 1.5], rtol=1e-6)
    loss = models.squared_distance_loss(y, t)
    numpy.testing.assert_allclose(loss.array, (0.14 + 1.5) / 2, rtol=1e-6)
    with pytest.raises(ValueError):
        models.squared_distance_loss(y, t, reduce='sum')


def _float64_net(variant, seed=0):
    numpy.random.seed(seed)
    model = models.FC100(variant, sizes=(6, 5, 4, 3))
    model.to_device('@numpy')
    for p in model.params():
        p.array = p.array.astype(numpy.float64)
    return model


def _numeric_input_grad(model, x, t, h=1e-6):
    g = numpy.zeros_like(x)
    for idx in numpy.ndindex(*x.shape):
        for sign in (1, -1):
            xx = x.copy()
            xx[idx] += sign * h
            with chainer.no_backprop_mode():
                g[idx] += sign * float(models.squared_distance_loss(model(xx), t).array)
    return g / (2 * h)


@pytest.mark.parametrize('variant', ['GMR', 'GMRES'])
def test_gmr_penalty_value_and_double_backprop(variant):
    model = _float64_net(variant)
    rng = numpy.random.RandomState(1)
    x = rng.uniform(-2, 2, (4, 6))
    t = numpy.array([0, 1, 2, 1], numpy.int32)
    xv = chainer.Variable(x)
    penalty = models.gmr_penalty(models.squared_distance_loss(model(xv), t), xv)
    expected = 0.5 * numpy.linalg.norm(_numeric_input_grad(model, x, t))
    numpy.testing.assert_allclose(float(penalty.array), expected, rtol=1e-6)

    # d penalty / d W1 by double backprop against finite differences of the penalty.
    model.cleargrads()
    penalty.backward()
    analytic = model.l1.W.grad.copy()

    def penalty_value():
        xv = chainer.Variable(x)
        return (models.gmr_penalty(models.squared_distance_loss(model(xv), t), xv).array,)

    numeric, = gradient_check.numerical_grad(penalty_value, (model.l1.W.array,),
                                             (numpy.ones(()),), eps=1e-6)
    numpy.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-7)
    if variant == 'GMRES':
        assert model.es1.s.grad is not None and model.es1.s.grad.any()


def test_classifier_adds_penalty_only_for_gmr_and_in_training():
    x = _x(4)
    t = numpy.array([1, 2, 3, 4], numpy.int32)
    numpy.random.seed(3)
    gmr = models.FriendlyClassifier(models.FC100('GMR', sizes=SMALL))
    assert gmr.gmr_weight == 0.5
    loss = gmr(x, t)
    mse = float(models.squared_distance_loss(gmr.predictor(x), t).array)
    xv = chainer.Variable(x)
    pen = float(models.gmr_penalty(models.squared_distance_loss(gmr.predictor(xv), t), xv).array)
    assert pen > 0
    numpy.testing.assert_allclose(float(loss.array), mse + pen, rtol=1e-5)
    with chainer.no_backprop_mode():
        numpy.testing.assert_allclose(float(gmr(x, t).array), mse, rtol=1e-6)
    s = models.FriendlyClassifier(models.FC100('S', sizes=SMALL))
    assert s.gmr_weight == 0.0
    numpy.testing.assert_allclose(float(s(x, t).array),
                                  float(models.squared_distance_loss(s.predictor(x), t).array),
                                  rtol=1e-6)


# Only other devices: an @numpy case would compare NumPy with NumPy and could not fail.
DEVICES = [pytest.param('@cupy:0', marks=pytest.mark.gpu)]


@pytest.mark.parametrize('device', DEVICES)
def test_forward_on_device_matches_numpy(device):
    numpy.random.seed(0)
    model = models.FC100('RS', sizes=SMALL)
    x = _x(6)
    with models.evaluation_mode(model):
        expected = model(x).array
    device = chainer.get_device(device)
    model.to_device(device)
    with models.evaluation_mode(model):
        y = model(device.send(x))
    numpy.testing.assert_allclose(chainer.backend.CpuDevice().send(y.array), expected,
                                  rtol=1e-4, atol=1e-5)


def _norm_and_grad(g, stabilize):
    gv = chainer.Variable(g.copy())
    norm = models.gradient_norm(gv, stabilize=stabilize)
    norm.backward()
    return float(norm.array), gv.grad


@pytest.mark.parametrize('stabilize', [False, True])
def test_gradient_norm_value_and_gradient_by_finite_differences(stabilize):
    g = numpy.random.RandomState(3).normal(size=(4, 6))
    value, grad = _norm_and_grad(g, stabilize)
    assert value == pytest.approx(numpy.sqrt((g ** 2).sum()), rel=1e-12)
    numeric, = gradient_check.numerical_grad(
        lambda: (numpy.asarray(numpy.sqrt((g ** 2).sum())),), (g,), (numpy.ones(()),), eps=1e-6)
    numpy.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_stabilized_norm_has_a_finite_gradient_at_zero():
    g = numpy.zeros((3, 5), numpy.float32)
    with numpy.errstate(divide='ignore', invalid='ignore'):
        value, grad = _norm_and_grad(g, stabilize=False)
    assert value == 0 and not numpy.isfinite(grad).all()     # the faithful 0/0
    value, grad = _norm_and_grad(g, stabilize=True)
    assert value == pytest.approx(1e-10) and numpy.array_equal(grad, numpy.zeros_like(g))


def test_stabilized_penalty_trains_through_a_zero_input_gradient():
    # l1.W = 0 makes d loss / d x exactly 0 for every image: the faithful penalty's double
    # backprop then fills the parameter gradients with NaN, the stabilised one stays finite.
    t = numpy.array([1, 2, 3, 4], numpy.int32)
    for stabilize in (False, True):
        numpy.random.seed(0)
        model = models.FC100('GMRES', sizes=SMALL)
        model.l1.W.array[...] = 0
        xv = chainer.Variable(_x(4))
        with numpy.errstate(divide='ignore', invalid='ignore'):
            penalty = models.gmr_penalty(models.squared_distance_loss(model(xv), t), xv,
                                         stabilize=stabilize)
            model.cleargrads()
            penalty.backward()
        grads = [p.grad for p in model.params() if p.grad is not None]
        finite = all(numpy.isfinite(g).all() for g in grads)
        assert finite == stabilize, stabilize


def test_classifier_passes_stabilize_to_the_penalty():
    numpy.random.seed(0)
    model = models.FriendlyClassifier(models.FC100('GMRES', sizes=SMALL), stabilize=True)
    model.predictor.l1.W.array[...] = 0
    t = numpy.array([1, 2, 3, 4], numpy.int32)
    loss = model(_x(4), t)
    model.cleargrads()
    loss.backward()
    assert all(numpy.isfinite(p.grad).all() for p in model.params() if p.grad is not None)
