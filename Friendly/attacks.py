"""FGSM (thesis 3.3.1) and PGD (SPEC, beyond the thesis) on 0..255 MNIST pixels.

Both ascend the per-sample squared distance of the attacking network's output to the one-hot truth
(the training loss of thesis 3.3.1). The caller chooses the configuration the network runs in (for
Batch Renormalization: :func:`Friendly.models.evaluation_mode`); the attack only differentiates.
Adversarial images are clipped to 0..255 and rounded to integers, so an integer-valued image and an
integer ``eps`` give integer-valued examples, as on a real 8-bit image.
"""
import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F

from Friendly.models import squared_distance_loss

PIXEL_MIN = 0.0
PIXEL_MAX = 255.0
THESIS_EPS = 77   # 0.3 of 255, after Madry et al.


def check_eps(eps):
    """Return ``eps`` as a float when it lies in 0..255, else raise ``ValueError``."""
    eps = float(eps)
    if not PIXEL_MIN <= eps <= PIXEL_MAX or eps != eps:
        raise ValueError('eps must be in 0..255 (pixel units), got {}'.format(eps))
    return eps


def loss_gradient(model, x, t, return_output=False):
    """d(sum_i ||onehot(t_i) - model(x)_i||^2) / dx as an array of ``x``'s shape.

    Summing the per-sample losses gives each image the gradient of its own loss (only Batch
    Normalization with batch statistics couples the samples of a batch, as in the original).
    With ``return_output`` the network's output array on ``x`` comes back too.
    """
    x = chainer.Variable(x)
    y = model(x)
    loss = F.sum(squared_distance_loss(y, t, reduce='no'))
    gx, = chainer.grad([loss], [x])
    if return_output:
        return gx.array, y.array
    return gx.array


def fgsm(model, x, t, eps=THESIS_EPS, return_output=False):
    """Fast gradient sign method: ``rint(clip(x + eps sign(dL/dx), 0, 255))``.

    With ``return_output`` also the network's output on the clean ``x`` (the forward pass the
    attack needed anyway), so an evaluation gets the clean accuracy for free.
    """
    eps = check_eps(eps)
    xp = chainer.backend.get_array_module(x)
    g, y = loss_gradient(model, x, t, return_output=True)
    x_adv = x + eps * xp.sign(g)
    x_adv = xp.rint(xp.clip(x_adv, PIXEL_MIN, PIXEL_MAX)).astype(x.dtype, copy=False)
    if return_output:
        return x_adv, y
    return x_adv


def pgd_step_size(eps, steps=100):
    """Madry et al.'s rule, ``2.5 eps / steps``, in whole pixel units.

    The step is rounded to the nearest integer, halves to even (``numpy.round``: 38.5 -> 38), and
    is never below 1, so that the attack moves and the examples stay integral. ``steps`` steps of
    it cover ``2.5 eps`` (the ball's diameter and some to spare), less the rounding; with the
    SPEC's 100 steps it is the SPEC's ``round(2.5 eps / 100)``.
    """
    steps = int(steps)
    if steps <= 0:
        raise ValueError('steps must be positive, got {}'.format(steps))
    return max(1.0, float(numpy.round(2.5 * float(eps) / steps)))


def _project(x_adv, x, eps, xp):
    x_adv = xp.clip(x_adv, x - eps, x + eps)
    return xp.rint(xp.clip(x_adv, PIXEL_MIN, PIXEL_MAX))


def pgd(model, x, t, eps=THESIS_EPS, steps=100, step_size=None, restarts=1, rng=None,
        judge=None):
    """Projected gradient descent (Madry et al.) with random starts in the eps-ball.

    Each restart starts from ``x`` plus integer noise uniform in [-eps, eps] and takes ``steps``
    signed-gradient steps of ``step_size`` (default :func:`pgd_step_size` of ``eps`` and
    ``steps``), projecting back onto
    the eps-ball and 0..255 after each. Per image the worst case over the restarts is kept: an
    example that ``judge`` (default: ``model``) misclassifies wins, otherwise the one with the
    largest loss.
    """
    eps = check_eps(eps)
    step_size = pgd_step_size(eps, steps) if step_size is None else float(step_size)
    if not step_size > 0 or step_size == numpy.inf:
        raise ValueError('step_size must be positive and finite, got {}'.format(step_size))
    rng = numpy.random.RandomState(0) if rng is None else rng
    judge = model if judge is None else judge
    xp = chainer.backend.get_array_module(x)
    t_arr = chainer.as_array(t)
    best = x.copy()
    best_score = xp.full((x.shape[0],), -numpy.inf, dtype=numpy.float64)
    for _ in range(int(restarts)):
        noise = rng.randint(-int(eps), int(eps) + 1, size=x.shape).astype(x.dtype)
        x_adv = _project(x + xp.asarray(noise), x, eps, xp)
        for _ in range(int(steps)):
            g = loss_gradient(model, x_adv, t)
            x_adv = _project(x_adv + step_size * xp.sign(g), x, eps, xp)
        with chainer.no_backprop_mode():
            y = judge(x_adv)
            loss = squared_distance_loss(y, t, reduce='no').array
        wrong = y.array.argmax(axis=1) != t_arr
        score = loss.astype(numpy.float64) + wrong * 1e6
        better = score > best_score
        best[better] = x_adv[better]
        best_score = xp.where(better, score, best_score)
    return best.astype(x.dtype, copy=False)
