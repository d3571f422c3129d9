"""The one evaluator of trained networks: clean accuracy and every attack, image by image.

:func:`evaluate_set` tells, per image of a set, whether the victim still classifies it correctly
clean and under each attack of :data:`ATTACKS` (the thesis's white-box FGSM is ``'fgsm'``, its
black-box FGSM ``'blackbox'``), batch by batch (:func:`batches`, :func:`attack_batch`), and adds the
per-image worst case; :mod:`Friendly.evaluate` counts its results for the thesis's tables,
:mod:`Friendly.robustness` for its report. :func:`black_box_set` and :func:`source_sets` make the
black-box examples of the source network, :func:`float64_copy` the float64 copy whose gradients the
``*_float64`` attacks use.
"""
import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly import attacks
from Friendly import models
from lenses_common.progress import Progress

#: The attacks of :func:`attack_batch`, by name (the keys of its result and of the reports of
#: :mod:`Friendly.robustness`).
ATTACKS = ('fgsm', 'fgsm_float64', 'fgsm_bn_running', 'pgd', 'pgd_margin', 'pgd_margin_float64',
           'blackbox', 'blackbox_float64')
#: The black-box PGD of ``Friendly.evaluate --pgd``: the source's PGD examples, judged by the
#: victim (not one of :data:`ATTACKS`).
PGD_BLACKBOX = 'pgd_blackbox'


def batches(n, batchsize):
    """``(start, stop)`` of the consecutive batches of ``batchsize`` (the last one shorter) that
    cover ``n`` images: the batching of every evaluation."""
    for start in range(0, n, batchsize):
        yield start, min(n, start + batchsize)


def predict(model, x, bn_mode):
    """The classes ``model`` predicts for ``x``, Batch Renormalization in ``bn_mode``."""
    with models.evaluation_mode(model, bn_mode), chainer.no_backprop_mode():
        return chainer.as_array(model(x)).argmax(axis=1)


def make_adversarial(model, x, t, eps, bn_mode, method='fgsm', pgd_options=None):
    """FGSM (``method='fgsm'``) or PGD examples of ``model`` in ``bn_mode``."""
    with models.evaluation_mode(model, bn_mode):
        if method == 'fgsm':
            return attacks.fgsm(model, x, t, eps)
        return attacks.pgd(model, x, t, eps, **(pgd_options or {}))


def black_box_set(source, x_all, t_all, eps, batchsize, device, method='fgsm',
                  pgd_options=None, progress=True):
    """Adversarial examples of the whole test set made by ``source`` (computed once, on the CPU)."""
    out = numpy.empty_like(x_all)
    bar = Progress(len(x_all), desc='black-box {} from the source'.format(method), unit='img',
                   enabled=progress)
    for start, stop in batches(len(x_all), batchsize):
        x = device.send(x_all[start:stop])
        t = device.send(t_all[start:stop])
        out[start:stop] = chainer.backend.CpuDevice().send(
            make_adversarial(source, x, t, eps, 'batch', method, pgd_options))
        bar.update(stop - start)
    bar.close()
    return out


def float64_copy(model):
    """A deep copy of ``model`` whose parameters and float persistents are float64."""
    copy = model.copy(mode='copy')
    for link in copy.links():
        for name in link._params:
            param = getattr(link, name)
            if param.array is not None:
                param.array = param.array.astype(numpy.float64)
        for name in link._persistent:
            value = getattr(link, name)
            if hasattr(value, 'dtype') and value.dtype.kind == 'f':
                setattr(link, name, value.astype(numpy.float64))
    return copy


def has_batch_renorm(model):
    return bool(model.batch_renorm_links()) if hasattr(model, 'batch_renorm_links') else False


def _zero_rows(g):
    xp = chainer.backend.get_array_module(g)
    return (g.reshape(len(g), -1) == 0).all(axis=1) if g.size else xp.zeros(len(g), bool)


def source_sets(source, source64, x_all, t_all, eps, batchsize, device, progress=False):
    """The black-box examples of ``source`` on a whole set, and its zero-gradient indicators.

    Returns CPU arrays {'blackbox': float32 FGSM examples (:func:`black_box_set`,
    the thesis's), 'blackbox_float64': FGSM examples whose gradient comes from ``source64`` (the
    float64 copy of ``source``, :func:`float64_copy`), 'zero_grad' and 'zero_grad_float64': per
    image, whether the source's input gradient of the thesis loss is exactly zero in float32 and
    in float64}. Both kinds of examples are float32 images in 0..255, taken with Batch
    Renormalization in 'batch' mode as ``black_box_set`` takes them (the source is an S network,
    which has none).
    """
    out = {'blackbox': black_box_set(source, x_all, t_all, eps, batchsize, device,
                                              progress=progress)}
    eps = attacks.check_eps(eps)
    cpu = chainer.backend.CpuDevice()
    parts = {}
    for start, stop in batches(len(x_all), batchsize):
        x = device.send(x_all[start:stop])
        t = device.send(t_all[start:stop])
        with models.evaluation_mode(source, 'batch'):
            g32 = attacks.loss_gradient(source, x, t)
        with models.evaluation_mode(source64, 'batch'):
            g64 = attacks.loss_gradient(source64, x.astype(numpy.float64), t)
        for key, value in (('blackbox_float64', attacks.fgsm_step(x, g64, eps)),
                           ('zero_grad', _zero_rows(g32)), ('zero_grad_float64', _zero_rows(g64))):
            parts.setdefault(key, []).append(numpy.asarray(cpu.send(value)))
    for key, value in parts.items():
        out[key] = numpy.concatenate(value) if value else (
            numpy.empty_like(x_all) if key == 'blackbox_float64' else numpy.zeros(0, bool))
    return out


def attack_batch(model, model64, x, t, eps, bn_mode, wanted, black=None, pgd_options=None,
                 zero_grad=False, black64=None, pgd_black=None):
    """Per-image correctness (bool arrays on ``x``'s device) of one batch under each attack.

    ``wanted``: the attack names to run (of :data:`ATTACKS`); ``black``: the black-box examples of
    this batch (needed for 'blackbox'); ``pgd_options``: keyword arguments of
    :func:`Friendly.attacks.pgd` (steps, restarts, step_size, rng). The victim is ``model`` in
    ``bn_mode``; ``black64``: the black-box examples made with the source's float64 gradient
    (needed for 'blackbox_float64'); ``pgd_black``: the source's PGD examples (needed for
    'pgd_blackbox'); returns {'clean': ..., attack: ...} and, with ``zero_grad``, the all-zero
    gradient indicators 'zero_grad' and 'zero_grad_float64'. ``model64`` (:func:`float64_copy`)
    is needed only for the ``*_float64`` attacks and ``zero_grad``.
    """
    def correct(images):
        return predict(model, images, bn_mode) == t

    out = {}
    # The thesis's white-box FGSM: its forward pass on the clean batch gives clean too.
    with models.evaluation_mode(model, bn_mode):
        x_adv, y = attacks.fgsm(model, x, t, eps, return_output=True)
    out['clean'] = y.argmax(axis=1) == t
    if 'fgsm' in wanted:
        out['fgsm'] = correct(x_adv)
    if zero_grad:
        with models.evaluation_mode(model, bn_mode):
            out['zero_grad'] = _zero_rows(attacks.loss_gradient(model, x, t))
    if 'fgsm_float64' in wanted or zero_grad:
        with models.evaluation_mode(model64, bn_mode):
            g64 = attacks.loss_gradient(model64, x.astype(numpy.float64), t)
        if 'fgsm_float64' in wanted:
            out['fgsm_float64'] = correct(attacks.fgsm_step(x, g64, attacks.check_eps(eps)))
        if zero_grad:
            out['zero_grad_float64'] = _zero_rows(g64)
    if 'fgsm_bn_running' in wanted:
        if has_batch_renorm(model):
            with models.evaluation_mode(model, 'running'):
                out['fgsm_bn_running'] = correct(attacks.fgsm(model, x, t, eps))
        else:   # the same gradient as fgsm's: no need to take it twice
            out['fgsm_bn_running'] = out['fgsm'] if 'fgsm' in out else correct(x_adv)
    for key, loss in (('pgd', 'squared'), ('pgd_margin', 'margin')):
        if key in wanted:
            with models.evaluation_mode(model, bn_mode):
                out[key] = correct(attacks.pgd(model, x, t, eps, loss=loss, **pgd_options))
    if 'pgd_margin_float64' in wanted:
        # Gradients from the float64 copy; the float32 victim judges which restart to keep.
        def judge(images):
            return model(images.astype(x.dtype))
        with models.evaluation_mode(model, bn_mode), models.evaluation_mode(model64, bn_mode):
            x_adv = attacks.pgd(model64, x.astype(numpy.float64), t, eps, loss='margin',
                                judge=judge, **pgd_options)
        out['pgd_margin_float64'] = correct(x_adv.astype(x.dtype))
    if 'blackbox' in wanted:
        out['blackbox'] = correct(black)
    if 'blackbox_float64' in wanted:
        out['blackbox_float64'] = correct(black64)
    if PGD_BLACKBOX in wanted:
        out[PGD_BLACKBOX] = correct(pgd_black)
    return out


def evaluate_set(model, model64, x_all, t_all, eps, batchsize, bn_mode, device, wanted,
                 black=None, pgd_steps=100, pgd_restarts=5, seed=0, zero_grad=False,
                 black64=None, progress=False, desc='', pgd_black=None, pgd_options=None):
    """Per-image correctness over a whole set as CPU bool arrays, plus 'worst_case': the one
    evaluator of :mod:`Friendly.evaluate`, :mod:`Friendly.robustness`, :mod:`Friendly.fidelity`
    and :mod:`Friendly.certify`.

    The set is attacked in :func:`batches` of ``batchsize`` (with Batch Renormalization's batch
    statistics the batch is part of the protocol). ``black``, ``black64`` and ``pgd_black``: the
    whole set's black-box examples (:func:`source_sets`, :func:`black_box_set`), needed for
    'blackbox', 'blackbox_float64' and 'pgd_blackbox'. PGD takes ``pgd_steps`` steps of
    :func:`Friendly.attacks.pgd_step_size` with ``pgd_restarts`` restarts drawn from
    ``numpy.random.RandomState(seed)``, or the keyword arguments ``pgd_options`` of
    :func:`Friendly.attacks.pgd` when given (their ``rng`` goes on from batch to batch).
    """
    for key, given in (('blackbox', black), ('blackbox_float64', black64),
                       (PGD_BLACKBOX, pgd_black)):
        if key in wanted and given is None:
            raise ValueError('attack {} needs its black-box examples'.format(key))
    if pgd_options is None:
        pgd_options = {'steps': pgd_steps, 'restarts': pgd_restarts,
                       'step_size': attacks.pgd_step_size(eps, pgd_steps) if pgd_steps else 1,
                       'rng': numpy.random.RandomState(seed)}
    cpu = chainer.backend.CpuDevice()
    parts = {}
    bar = Progress(len(x_all), desc=desc or 'attacks', unit='img', enabled=progress)
    for start, stop in batches(len(x_all), batchsize):
        x = device.send(x_all[start:stop])
        t = device.send(t_all[start:stop])
        given = [None if a is None else device.send(a[start:stop])
                 for a in (black, black64, pgd_black)]
        got = attack_batch(model, model64, x, t, eps, bn_mode, wanted, given[0], pgd_options,
                           zero_grad, given[1], given[2])
        for key, value in got.items():
            parts.setdefault(key, []).append(numpy.asarray(cpu.send(value), dtype=bool))
        bar.update(stop - start)
    bar.close()
    result = {k: numpy.concatenate(v) for k, v in parts.items()}
    worst = result['clean'].copy()
    for key in wanted:
        worst &= result[key]
    result['worst_case'] = worst
    return result
