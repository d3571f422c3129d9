"""FGSM (thesis 3.3.1) and PGD (beyond the thesis; the author's code had it) on 0..255 pixels.

Both ascend the per-sample squared distance of the attacking network's output to the one-hot truth
(the training loss of thesis 3.3.1); PGD can ascend a margin loss instead (:func:`margin_loss`).
The caller chooses the configuration the network runs in (for
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


def margin_loss(y, t):
    """Per-sample margin ``max_{j != t} y_j - y_t`` (shape (B,)), the loss margin-PGD ascends.

    Sign convention: positive exactly when the sample is misclassified (ties aside), so ascending
    it pushes the largest other output above the true class's. Unlike the squared distance, whose
    gradient with respect to an output is ``2 (y_j - c_j)`` and vanishes as the outputs approach
    the one-hot truth, its gradient with respect to the two outputs involved is always -1 and +1.
    """
    xp = chainer.backend.get_array_module(y)
    t = chainer.as_array(t)
    y_arr = chainer.as_array(y)
    n = y_arr.shape[0]
    other = y_arr.copy()
    other[xp.arange(n), t] = -xp.inf
    j = other.argmax(axis=1)
    picked = F.select_item(y, j)
    true = F.select_item(y, t)
    return picked - true


LOSSES = ('squared', 'margin')


def attack_loss(y, t, loss='squared'):
    """Per-sample attack loss: the thesis's squared distance or :func:`margin_loss`."""
    if loss == 'squared':
        return squared_distance_loss(y, t, reduce='no')
    if loss == 'margin':
        return margin_loss(y, t)
    raise ValueError('loss must be one of {}, got {!r}'.format(LOSSES, loss))


def loss_gradient(model, x, t, return_output=False, loss='squared'):
    """d(sum_i ||onehot(t_i) - model(x)_i||^2) / dx as an array of ``x``'s shape.

    Summing the per-sample losses gives each image the gradient of its own loss (only Batch
    Normalization with batch statistics couples the samples of a batch, as in the original).
    With ``return_output`` the network's output array on ``x`` comes back too. ``loss='margin'``
    differentiates :func:`margin_loss` instead.
    """
    x = chainer.Variable(x)
    y = model(x)
    total = F.sum(attack_loss(y, t, loss))
    gx, = chainer.grad([total], [x])
    if return_output:
        return gx.array, y.array
    return gx.array


def fgsm(model, x, t, eps=THESIS_EPS, return_output=False):
    """Fast gradient sign method: ``rint(clip(x + eps sign(dL/dx), 0, 255))``.

    With ``return_output`` also the network's output on the clean ``x`` (the forward pass the
    attack needed anyway), so an evaluation gets the clean accuracy for free.
    """
    eps = check_eps(eps)
    g, y = loss_gradient(model, x, t, return_output=True)
    x_adv = fgsm_step(x, g, eps)
    if return_output:
        return x_adv, y
    return x_adv


def fgsm_step(x, g, eps):
    """``rint(clip(x + eps sign(g), 0, 255))`` in ``x``'s dtype (``g`` may be of another)."""
    xp = chainer.backend.get_array_module(x)
    x_adv = x + eps * xp.sign(g).astype(x.dtype, copy=False)
    return xp.rint(xp.clip(x_adv, PIXEL_MIN, PIXEL_MAX)).astype(x.dtype, copy=False)


def pgd_step_size(eps, steps=100):
    """Madry et al.'s rule, ``2.5 eps / steps``, in whole pixel units.

    The step is rounded to the nearest integer, halves to even (``numpy.round``: 38.5 -> 38), and
    is never below 1, so that the attack moves and the examples stay integral. ``steps`` steps of
    it cover ``2.5 eps`` (the ball's diameter and some to spare), less the rounding; with the
    default 100 steps it is ``round(2.5 eps / 100)``.
    """
    steps = int(steps)
    if steps <= 0:
        raise ValueError('steps must be positive, got {}'.format(steps))
    return max(1.0, float(numpy.round(2.5 * float(eps) / steps)))


def _project(x_adv, x, eps, xp):
    x_adv = xp.clip(x_adv, x - eps, x + eps)
    return xp.rint(xp.clip(x_adv, PIXEL_MIN, PIXEL_MAX))


def batch_coupled(model):
    """True when the model normalises a batch by its own statistics (Batch Renormalization in
    Chainer's train mode, as :func:`Friendly.models.evaluation_mode` 'batch' sets it): then an
    image's output depends on the other images of its batch."""
    links = model.batch_renorm_links() if hasattr(model, 'batch_renorm_links') else []
    return bool(links) and bool(chainer.config.train)


def pgd(model, x, t, eps=THESIS_EPS, steps=100, step_size=None, restarts=1, rng=None,
        judge=None, loss='squared', stack_restarts=None):
    """Projected gradient descent (Madry et al.) with random starts in the eps-ball.

    Each restart starts from ``x`` plus integer noise uniform in [-eps, eps] and takes ``steps``
    signed-gradient steps of ``step_size`` (default :func:`pgd_step_size` of ``eps`` and
    ``steps``) ascending ``loss`` ('squared': the thesis's loss; 'margin': :func:`margin_loss`),
    projecting back onto the eps-ball and 0..255 after each. Per image the worst case over the
    restarts is kept: an example that ``judge`` (default: ``model``) misclassifies wins, otherwise
    the one with the largest loss.

    The restarts run stacked, one forward and backward pass per step for all of them
    (``R * B`` images), unless the model couples the images of a batch (:func:`batch_coupled`):
    then each restart is its own batch of ``B``, so every image is normalised with the batch it
    is judged in. ``stack_restarts`` forces either way. The random starts are the same either way.
    """
    eps = check_eps(eps)
    step_size = pgd_step_size(eps, steps) if step_size is None else float(step_size)
    if not step_size > 0 or step_size == numpy.inf:
        raise ValueError('step_size must be positive and finite, got {}'.format(step_size))
    if loss not in LOSSES:
        raise ValueError('loss must be one of {}, got {!r}'.format(LOSSES, loss))
    restarts = int(restarts)
    if restarts <= 0:
        raise ValueError('restarts must be positive, got {}'.format(restarts))
    rng = numpy.random.RandomState(0) if rng is None else rng
    judge = model if judge is None else judge
    if stack_restarts is None:
        stack_restarts = not (batch_coupled(model) or batch_coupled(judge))
    xp = chainer.backend.get_array_module(x)
    t_arr = chainer.as_array(t)
    n = x.shape[0]
    # One draw for all restarts: the same numbers as one draw of x's shape per restart.
    noise = xp.asarray(rng.randint(-int(eps), int(eps) + 1, size=(restarts,) + x.shape)
                       .astype(x.dtype))
    groups = [slice(0, restarts)] if stack_restarts else [slice(r, r + 1)
                                                          for r in range(restarts)]
    candidates = []
    for group in groups:
        k = group.stop - group.start
        x_rep = xp.concatenate([x] * k) if k > 1 else x
        t_rep = xp.concatenate([t_arr] * k) if k > 1 else t_arr
        x_adv = _project(x_rep + noise[group].reshape((k * n,) + x.shape[1:]), x_rep, eps, xp)
        for _ in range(int(steps)):
            g = loss_gradient(model, x_adv, t_rep, loss=loss)
            x_adv = _project(x_adv + step_size * xp.sign(g), x_rep, eps, xp)
        candidates.extend(x_adv[i * n:(i + 1) * n] for i in range(k))
    best = x.copy()
    best_score = xp.full((n,), -numpy.inf, dtype=numpy.float64)
    for x_adv in candidates:
        # Judged one restart (one batch of B) at a time, as the victim will be.
        with chainer.no_backprop_mode():
            y = judge(x_adv)
            score = attack_loss(y, t_arr, loss).array.astype(numpy.float64)
        wrong = y.array.argmax(axis=1) != t_arr
        score = score + wrong * 1e6
        better = score > best_score
        best[better] = x_adv[better]
        best_score = xp.where(better, score, best_score)
    return best.astype(x.dtype, copy=False)


def input_independent(model, x, bn_mode='running', tolerance=0.0):
    """Whether ``model``'s outputs on the images ``x`` are all the same (within ``tolerance``):
    a network whose outputs do not depend on its input (dead units, saturated sigmoids, zero
    weights) has a zero input gradient, so every gradient attack leaves its accuracy, the share of
    one class, untouched; it would look perfectly robust. Batch Renormalization is evaluated with
    its running averages (``bn_mode``), since the batch's statistics make the outputs of a batch
    depend on each other rather than on each input."""
    from Friendly import models
    with models.evaluation_mode(model, bn_mode), chainer.no_backprop_mode():
        y = chainer.backend.CpuDevice().send(chainer.as_array(model(x)))
    y = numpy.asarray(y, dtype=numpy.float64)
    return bool(len(y) > 1 and numpy.all(numpy.abs(y - y[:1]) <= tolerance))
