"""Interval-bound training (Gowal et al. 2018) of the S network: ``Friendly.train --adversarial ibp``.

The loss of one batch is ``kappa * clean + (1 - kappa) * worst``:

* ``clean``: the thesis's squared distance ``||c - o(x)||^2`` of the sigmoid outputs ``o`` to the
  one-hot truth ``c``, on the images themselves;
* ``worst``: an upper bound of the same squared distance over the whole eps-ball (intersected with
  0..255). Interval bound propagation (centre and radius through each linear layer, the sigmoid
  applied to both ends, :mod:`Friendly.certification.layers`) gives each logit an interval
  ``[l_k, u_k]``, so each output ``o_k = s(z_k)`` lies in ``[s(l_k), s(u_k)]`` and

  ``||c - o||^2 <= (1 - s(l_t))^2 + sum_{k != t} s(u_k)^2``,

  the true class at its lowest output and every other class at its highest. This is the loss the
  thesis trains S with, taken at its worst over the ball, so the network, its outputs and the
  meaning of the loss stay S's. It also implies the certificate: when ``worst < 1/4``, then
  ``s(l_t) > 1/2 > s(u_k)``, i.e. ``l_t > 0 > u_k`` for every ``k != t``, so every margin's
  interval bound is positive and the image is certified (the certificate of
  :mod:`Friendly.certification.network` is tighter still). Gowal et al. use the softmax
  cross-entropy of the margin bounds instead; with S's sigmoid outputs and squared distance the
  bound above is its counterpart that keeps the thesis's loss.

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
                 kappa=IBP_KAPPA):
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
            zl, zh = interval_logits(predictor, lo, hi)
            worst = F.sum(worst_squared_distance(zl, zh, t)) / x.shape[0]
            loss = kappa * clean + (1 - kappa) * worst
            report['worst'] = worst
        report['loss'] = loss
        reporter.report(report, self.classifier)
        return loss
