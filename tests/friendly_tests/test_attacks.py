import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
import chainer.functions as F
from chainer import gradient_check

from Friendly import attacks
from Friendly import models


class LinearNet(chainer.Chain):
    """y = W x (no activation): the loss gradient is -2 W^T (onehot - W x), easy by hand."""

    def __init__(self, W):
        super(LinearNet, self).__init__()
        self.W = numpy.asarray(W, numpy.float32)

    def forward(self, x):
        return F.linear(F.reshape(x, (x.shape[0], -1)), self.W)


W = numpy.array([[0.02, -0.01, 0.03, 0.0],
                 [-0.02, 0.01, 0.0, 0.04],
                 [0.01, 0.02, -0.03, -0.01]], numpy.float32)


def _hand_fgsm(x, t, eps):
    flat = x.reshape(len(x), -1).astype(numpy.float64)
    y = flat @ W.T
    onehot = numpy.eye(3)[t]
    grad = -2 * (onehot - y) @ W
    return numpy.rint(numpy.clip(flat + eps * numpy.sign(grad), 0, 255)).reshape(x.shape)


def test_fgsm_matches_hand_computation_with_clipping():
    x = numpy.array([[[[0, 255], [100, 30]]], [[[250, 5], [0, 128]]]], numpy.float32)
    t = numpy.array([0, 2], numpy.int32)
    x_adv = attacks.fgsm(LinearNet(W), x, t, 77)
    expected = _hand_fgsm(x, t, 77)
    numpy.testing.assert_array_equal(x_adv, expected)
    assert x_adv.dtype == numpy.float32
    assert (x_adv >= 0).all() and (x_adv <= 255).all()
    assert (x_adv == numpy.rint(x_adv)).all()
    # Every pixel moved by exactly eps unless the clip stopped it (here the gradient has no zeros).
    moved = numpy.abs(x_adv - x)
    clipped = (x_adv == 0) | (x_adv == 255)
    assert ((moved == 77) | clipped).all()
    assert clipped.any() and (moved == 77).any()


def test_fgsm_eps_zero_is_identity_and_return_output():
    x = numpy.array([[[[10, 20], [30, 40]]]], numpy.float32)
    t = numpy.array([1], numpy.int32)
    x_adv, y = attacks.fgsm(LinearNet(W), x, t, 0, return_output=True)
    numpy.testing.assert_array_equal(x_adv, x)
    numpy.testing.assert_allclose(y, x.reshape(1, -1) @ W.T, rtol=1e-6)


@pytest.mark.parametrize('eps', [-1, 256, 1000, float('nan')])
def test_eps_outside_pixel_range(eps):
    with pytest.raises(ValueError, match='0..255'):
        attacks.check_eps(eps)
    with pytest.raises(ValueError, match='0..255'):
        attacks.fgsm(LinearNet(W), numpy.zeros((1, 1, 2, 2), numpy.float32),
                     numpy.zeros(1, numpy.int32), eps)


def test_loss_gradient_against_finite_differences():
    numpy.random.seed(0)
    model = models.FC100('S', sizes=(4, 5, 5, 10))
    for p in model.params():
        p.array = p.array.astype(numpy.float64)
    x = numpy.random.uniform(-1, 1, (3, 4))
    t = numpy.array([1, 5, 9], numpy.int32)
    g = attacks.loss_gradient(model, x, t)

    def total():
        return (F.sum(models.squared_distance_loss(model(x), t, reduce='no')).array,)

    numeric, = gradient_check.numerical_grad(total, (x,), (numpy.ones(()),), eps=1e-6)
    numpy.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize('eps, steps, expected', [
    (77, 100, 2.0),     # 1.925: round(2.5 eps / 100)
    (100, 100, 2.0),    # 2.5, a half: to even
    (200, 100, 5.0),
    (10, 100, 1.0),     # 0.25: never 0
    (77, 5, 38.0),      # 38.5, a half: to even
    (77, 1, 192.0),     # 192.5: to even
    (77, 10, 19.0),     # 19.25
    (77, 40, 5.0),      # 4.8125
    (77, 1000, 1.0),    # 0.1925: at least 1
])
def test_pgd_step_size_follows_steps(eps, steps, expected):
    assert attacks.pgd_step_size(eps, steps) == expected


@pytest.mark.parametrize('steps', [0, -3])
def test_pgd_step_size_needs_positive_steps(steps):
    with pytest.raises(ValueError):
        attacks.pgd_step_size(77, steps)


@pytest.mark.parametrize('step_size', [-4.0, 0.0, float('inf'), float('nan')])
def test_pgd_refuses_a_step_that_cannot_ascend(step_size):
    x = numpy.zeros((1, 1, 2, 2), numpy.float32)
    with pytest.raises(ValueError):
        attacks.pgd(LinearNet(W), x, numpy.zeros(1, numpy.int32), eps=20, steps=2,
                    step_size=step_size)


class TrueClassLinear(chainer.Chain):
    """Output 0 is ``-s w . x``, the others 0, and every truth is class 0.

    ``s |w . x| < 1`` on all of 0..255, so the loss ``(1 - y_0)^2`` grows with ``w . x`` and its
    maximum over the eps-ball inside 0..255 is known in closed form:
    ``clip(x + eps sign(w), 0, 255)``, the same corner for every start.
    """

    def __init__(self, w):
        super(TrueClassLinear, self).__init__()
        self.w = numpy.asarray(w, numpy.float32).ravel()
        self.s = numpy.float32(0.5 / (255.0 * numpy.abs(self.w).sum()))

    def forward(self, x):
        flat = F.reshape(x, (x.shape[0], -1))
        y0 = -self.s * F.matmul(flat, self.w[:, None])
        return F.concat([y0, F.broadcast_to(y0 * 0, (x.shape[0], 9))], axis=1)


@pytest.mark.parametrize('eps', [20, 77])
@pytest.mark.parametrize('steps', [1, 2, 5, 10, 40, 100])
def test_pgd_default_step_reaches_the_closed_form_optimum(eps, steps):
    rng = numpy.random.RandomState(steps)
    w = rng.choice([-1.0, 1.0], size=16) * rng.uniform(0.5, 1.5, size=16)
    x = rng.randint(0, 256, (8, 1, 4, 4)).astype(numpy.float32)
    t = numpy.zeros(8, numpy.int32)
    optimum = numpy.clip(x + eps * numpy.sign(w).reshape(1, 1, 4, 4), 0, 255)
    x_adv = attacks.pgd(TrueClassLinear(w), x, t, eps=eps, steps=steps, restarts=2,
                        rng=numpy.random.RandomState(3))
    # From the farthest random start the optimum is 2 eps away: the default step covers it.
    numpy.testing.assert_array_equal(x_adv, optimum)


def test_pgd_stays_in_ball_integral_and_beats_clean_loss():
    rng = numpy.random.RandomState(0)
    x = rng.randint(0, 256, (6, 1, 2, 2)).astype(numpy.float32)
    t = rng.randint(0, 3, 6).astype(numpy.int32)
    model = LinearNet(W)
    x_adv = attacks.pgd(model, x, t, eps=20, steps=40, step_size=2, restarts=2,
                        rng=numpy.random.RandomState(1))
    assert x_adv.shape == x.shape and x_adv.dtype == numpy.float32
    assert (numpy.abs(x_adv - x) <= 20).all()
    assert (x_adv >= 0).all() and (x_adv <= 255).all()
    assert (x_adv == numpy.rint(x_adv)).all()
    clean = models.squared_distance_loss(model(x), t, reduce='no').array
    adv = models.squared_distance_loss(model(x_adv), t, reduce='no').array
    assert (adv > clean).all()
    # On a linear model the loss is convex in x, so the best point of the box is a corner that
    # FGSM (from x) reaches exactly; PGD from random starts gets about as high.
    fgsm_loss = models.squared_distance_loss(
        model(attacks.fgsm(model, x, t, 20)), t, reduce='no').array
    assert (adv >= fgsm_loss * 0.9).all()


def test_pgd_keeps_worst_restart():
    # One pixel, one output y = x / 255, truth class 0 (onehot (1,)): loss (1 - y)^2 grows as x
    # falls; the worst case in [x - eps, x + eps] is the lower end whatever the random start.
    class Scale(chainer.Chain):
        def forward(self, x):
            return F.reshape(x, (x.shape[0], 1)) / 255.0
    x = numpy.full((3, 1, 1, 1), 100, numpy.float32)
    t = numpy.zeros(3, numpy.int32)
    x_adv = attacks.pgd(Scale(), x, t, eps=30, steps=20, step_size=2, restarts=3,
                        rng=numpy.random.RandomState(5))
    numpy.testing.assert_array_equal(x_adv, numpy.full_like(x, 70))


# Only other devices: an @numpy case would compare NumPy with NumPy and could not fail.
DEVICES = [pytest.param('@cupy:0', marks=pytest.mark.gpu)]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('variant', ['S', 'RS'])
def test_fgsm_batch_on_device_agrees_with_numpy(device, variant):
    numpy.random.seed(0)
    model = models.FC100(variant, sizes=(16, 8, 8, 10))
    rng = numpy.random.RandomState(2)
    x = rng.randint(0, 256, (20, 1, 4, 4)).astype(numpy.float32)
    t = rng.randint(0, 10, 20).astype(numpy.int32)
    with models.evaluation_mode(model):
        expected = attacks.fgsm(model, x, t, 77)
    dev = chainer.get_device(device)
    model.to_device(dev)
    with models.evaluation_mode(model):
        got = chainer.backend.CpuDevice().send(attacks.fgsm(model, dev.send(x), dev.send(t), 77))
    # A sign can flip where the gradient is ~0; allow a handful of such pixels.
    assert (got != expected).mean() < 0.01
