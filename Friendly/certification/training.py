"""Interval-bound training (Gowal et al. 2018) of S: ``Friendly.train --adversarial ibp``.

The loss of one batch is ``kappa * clean + (1 - kappa) * worst``:

* ``clean``: the thesis's squared distance ``||c - o(x)||^2`` of S's sigmoid outputs ``o`` to the
  one-hot truth ``c``, on the images themselves (what S is trained on);
* ``worst`` (``loss='margin'``, the default): Gowal et al.'s bound term, the softmax
  cross-entropy of the worst-case logits. Interval bound propagation (centre and radius through
  each linear layer, the sigmoid applied to both ends) gives the box of the last hidden layer;
  the margin ``z_t - z_j = (w_t - w_j) . h + b_t - b_j`` is then bounded exactly over that box
  (the last layer merged into the margin, as the certificate of
  :mod:`Friendly.certification.network` does), giving ``M_j <= z_t - z_j`` over the ball, and
  ``worst = log(1 + sum_{j != t} exp(-M_j))``. It is small only when every ``M_j`` is large, i.e.
  when the image is certified with room to spare, and its gradient does not vanish when a bound
  is far off (``d worst / d M_j`` tends to -1, not 0);
* ``worst`` with ``loss='squared'``: the thesis's loss at its worst over the ball. Each logit's
  interval ``[l_k, u_k]`` bounds each output ``o_k = s(z_k)`` to ``[s(l_k), s(u_k)]``, so
  ``||c - o||^2 <= (1 - s(l_t))^2 + sum_{k != t} s(u_k)^2`` (the true class at its lowest output,
  every other at its highest). When it is below 1/4, ``l_t > 0 > u_k`` for every ``k != t`` and
  the image is certified. It keeps S's loss, but it trains poorly: the logits' intervals ignore
  that the logits move together (much looser than the margin bounds), and its gradient
  ``2 s(u_k) s'(u_k)`` vanishes exactly where a bound is worst (``s(u_k)`` near 1). On the full
  data it reached 78% validation accuracy with momentum SGD and 88% with Adam, whose
  best-validation model certified 0.2% of 1,000 test images at eps 26 (docs/certified-
  robustness.md), so the margin form is the default. The clean term stays S's squared distance,
  so a network trained with ``kappa = 1`` is S.

As Gowal et al., the first ``warmup`` epochs train on ``clean`` alone, then over ``ramp`` epochs
eps rises linearly from 0 to its final value and ``kappa`` falls linearly from 1 to its final
value (0.5), both following the updater's ``epoch_detail`` (so a resumed run continues the ramp).
"""
from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
from chainer import reporter

from Friendly import models

IBP_EPS = 26.0          # 0.1 of 255, rounded
IBP_WARMUP = 1.0        # epochs of clean training
IBP_RAMP = 4.0          # epochs over which eps and kappa reach their final values
IBP_KAPPA = 0.5         # final weight of the clean loss
IBP_LOSSES = ('margin', 'squared')


def schedule(epoch_detail, eps, warmup=IBP_WARMUP, ramp=IBP_RAMP, kappa=IBP_KAPPA):
    """(eps, kappa) at ``epoch_detail`` epochs into training."""
    if ramp > 0:
        progress = min(max((epoch_detail - warmup) / ramp, 0.0), 1.0)
    else:
        progress = 1.0 if epoch_detail >= warmup else 0.0
    return eps * progress, 1.0 - progress * (1.0 - kappa)


def interval_logits(predictor, lo, hi):
    """IBP of an S network's logits over the box [lo, hi] (Chainer, differentiable)."""
    mid = (lo + hi) * 0.5
    rad = (hi - lo) * 0.5
    n = predictor.n_layers
    for i in range(1, n + 1):
        link = getattr(predictor, 'l{}'.format(i))
        mid = F.linear(mid, link.W, link.b)
        rad = F.linear(rad, F.absolute(link.W))
        if i < n:
            low, high = F.sigmoid(mid - rad), F.sigmoid(mid + rad)
            mid, rad = (low + high) * 0.5, (high - low) * 0.5
    return mid - rad, mid + rad


def margin_bounds(predictor, lo, hi, t):
    """Lower bounds ``M_j`` of the margins ``z_t - z_j`` (B, n) over the box, ``M_t = 0``.

    IBP up to the last sigmoid's output box, then the margin's coefficients ``W3_t - W3_j``
    applied to that box exactly (the elision of Gowal et al.), as the certificate does.
    """
    mid = (lo + hi) * 0.5
    rad = (hi - lo) * 0.5
    n = predictor.n_layers
    for i in range(1, n):
        link = getattr(predictor, 'l{}'.format(i))
        mid = F.linear(mid, link.W, link.b)
        rad = F.linear(rad, F.absolute(link.W))
        low, high = F.sigmoid(mid - rad), F.sigmoid(mid + rad)
        mid, rad = (low + high) * 0.5, (high - low) * 0.5
    last = getattr(predictor, 'l{}'.format(n))
    W, b = last.W, last.b
    Wt = F.embed_id(t, W)                      # (B, h): the true class's row
    bt = F.embed_id(t, F.reshape(b, (-1, 1)))  # (B, 1)
    B, k = mid.shape[0], W.shape[0]
    D = F.broadcast_to(F.expand_dims(Wt, 1), (B, k, W.shape[1])) - F.broadcast_to(
        F.expand_dims(W, 0), (B, k, W.shape[1]))
    dm = F.sum(D * F.broadcast_to(F.expand_dims(mid, 1), D.shape), axis=2)
    dr = F.sum(F.absolute(D) * F.broadcast_to(F.expand_dims(rad, 1), D.shape), axis=2)
    return dm - dr + F.broadcast_to(bt, (B, k)) - F.broadcast_to(F.reshape(b, (1, k)), (B, k))


def worst_margin_cross_entropy(M, t):
    """Softmax cross-entropy of the worst-case logits ``-M`` (Gowal et al.): per image
    ``log sum_j exp(-M_j)`` with ``M_t = 0``, i.e. ``log(1 + sum_{j != t} exp(-M_j))``."""
    return F.softmax_cross_entropy(-M, t, reduce='no')


def worst_squared_distance(lo, hi, t):
    """Per image ``(1 - s(l_t))^2 + sum_{k != t} s(u_k)^2`` from the logit bounds (B,)."""
    xp = chainer.backend.get_array_module(lo)
    onehot = xp.eye(lo.shape[1], dtype=lo.dtype)[chainer.as_array(t)]
    o_lo, o_hi = F.sigmoid(lo), F.sigmoid(hi)
    return F.sum(onehot * F.square(1 - o_lo) + (1 - onehot) * F.square(o_hi), axis=1)


class IBPTrainingLoss(object):
    """``loss_func`` of Chainer's StandardUpdater for interval-bound training of S.

    ``classifier`` is a :class:`Friendly.models.FriendlyClassifier` around an S network;
    ``epoch_detail`` a callable giving the updater's ``epoch_detail``. Reports ``loss``, ``mse``
    (the clean term), ``worst`` (the bound term), ``accuracy``, ``eps`` and ``kappa`` under the
    classifier's name, as the classifier does.
    """

    def __init__(self, classifier, epoch_detail, eps=IBP_EPS, warmup=IBP_WARMUP, ramp=IBP_RAMP,
                 kappa=IBP_KAPPA, loss='margin'):
        if loss not in IBP_LOSSES:
            raise ValueError('loss must be one of {}, got {!r}'.format(IBP_LOSSES, loss))
        self.loss = loss
        spec = classifier.predictor.spec
        if spec['batch_renorm'] or spec['activation'] != 'sigmoid' or set(
                spec['layers']) != {'linear'} or classifier.gmr_weight:
            raise ValueError('interval-bound training is implemented for the S network only')
        self.classifier = classifier
        self.epoch_detail = epoch_detail
        self.eps, self.warmup, self.ramp, self.kappa = float(eps), float(warmup), float(ramp), \
            float(kappa)

    def __call__(self, x, t):
        predictor = self.classifier.predictor
        eps, kappa = schedule(self.epoch_detail(), self.eps, self.warmup, self.ramp, self.kappa)
        xf = F.reshape(x, (x.shape[0], -1))
        y = predictor(x)
        clean = models.squared_distance_loss(y, t)
        loss = clean
        report = {'mse': clean, 'accuracy': F.accuracy(y, t), 'eps': eps, 'kappa': kappa}
        if eps > 0:
            xp = chainer.backend.get_array_module(xf)
            lo = xp.maximum(xf.array - eps, 0).astype(xf.dtype)
            hi = xp.minimum(xf.array + eps, 255).astype(xf.dtype)
            if self.loss == 'squared':
                zl, zh = interval_logits(predictor, lo, hi)
                worst = F.sum(worst_squared_distance(zl, zh, t)) / x.shape[0]
            else:
                worst = F.sum(worst_margin_cross_entropy(
                    margin_bounds(predictor, lo, hi, t), t)) / x.shape[0]
            loss = kappa * clean + (1 - kappa) * worst
            report['worst'] = worst
        report['loss'] = loss
        reporter.report(report, self.classifier)
        return loss
