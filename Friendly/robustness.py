"""Robustness evaluation that sees through gradient masking (beyond the thesis).

``python -m Friendly.robustness --run RUNS/S --run RUNS/RS ... --source RUNS/source --out OUT``

The thesis measures robustness with one attack, float32 FGSM on the squared-distance loss with
Batch Renormalization using the attacked batch's statistics. A defense can look strong under that
attack only because the attack's gradient is useless (gradient masking): sigmoid outputs that round
to exactly 0 or 1 in float32 give an exactly zero gradient, and batch statistics let the attacked
batch hide the perturbation from the gradient. This module attacks every network several ways and
reports, per network (one row, on the first ``images`` test images):

* ``clean``: accuracy on the unperturbed images;
* ``fgsm``: the thesis's white-box FGSM, the same calls and batches as :mod:`Friendly.evaluate`;
* ``fgsm_float64``: FGSM whose gradient comes from a float64 copy of the network (the victim is
  still the float32 network as trained);
* ``fgsm_bn_running``: FGSM whose gradient is taken with Batch Renormalization's running averages
  (the victim evaluated as in ``fgsm``); equal to ``fgsm`` for networks without it;
* ``pgd``: PGD with random restarts on the squared distance (:func:`Friendly.attacks.pgd`);
* ``pgd_margin``: PGD ascending the margin ``max_{j != t} y_j - y_t`` (positive when misclassified);
* ``pgd_margin_float64``: the same with the gradients of the float64 copy (float32 PGD drives the
  sigmoid networks into saturation, where every gradient entry is exactly 0, and stops there);
* ``blackbox``: FGSM examples of a separately trained S network (as :mod:`Friendly.evaluate`);
* ``worst_case``: an image counts only if it is classified correctly clean and under every attack
  above, so it is never above any of them;
* ``zero_grad_fraction`` (and ``zero_grad_fraction_float64``): the share of images whose input
  gradient of the thesis loss is exactly zero in every pixel, so FGSM leaves them unchanged.

All accuracies are in percent. Under the table, flags in the spirit of AutoAttack (Croce and Hein
2020) and Carlini et al.'s checklist name what looks like gradient masking, and ``eps_curve.png``
plots white-box and worst-case accuracy against eps. Writes ``robustness.md``, ``robustness.csv``,
``robustness.json`` and ``eps_curve.png`` into ``--out``. ``--preset`` sets the image counts and
attack budgets (see :data:`PRESETS`); the options after it override them.
"""
import argparse
import csv
import io
import os
import sys
import time

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly import attacks
from Friendly import evaluate
from Friendly import models
from Friendly.mnist import MNISTError, add_mnist_argument, get_mnist
from Friendly.evaluate import load_networks, ordered
from Friendly.evaluate import network_name  # noqa: F401  (the row names, part of this API)
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.runfolder import atomic_path, atomic_write_json, atomic_write_text
from lenses_common.seeding import add_seed_argument, seed_everything

ATTACKS = ('fgsm', 'fgsm_float64', 'fgsm_bn_running', 'pgd', 'pgd_margin', 'pgd_margin_float64',
           'blackbox')
COLUMNS = ('clean',) + ATTACKS + ('worst_case', 'zero_grad_fraction',
                                  'zero_grad_fraction_float64')
CURVE_EPS = (0, 8, 16, 32, 48, 64, 77, 96, 128)
UNBOUNDED_EPS = 255
# Flag thresholds, in percentage points / percent.
WORST_GAP = 5.0
ZERO_GRAD_MAX = 5.0
BN_GAP = 5.0
UNBOUNDED_MAX = 5.0

# Budgets per preset: '*' for every network, then per-network overrides (PD's Pairwise
# Difference layer costs ~1,000 times S's per image on a CPU). ``curve_attacks`` are the attacks
# the eps curve's worst case takes (the white-box curve is always FGSM).
_ALL = list(ATTACKS)
PRESETS = {
    'thesis': {
        '*': dict(test_subset=None, pgd_steps=100, pgd_restarts=5, curve_subset=1000,
                  curve_pgd_steps=100, curve_pgd_restarts=5, curve_attacks=_ALL),
    },
    'quick': {
        '*': dict(test_subset=500, pgd_steps=100, pgd_restarts=3, curve_subset=200,
                  curve_pgd_steps=40, curve_pgd_restarts=1, curve_attacks=_ALL),
        'A': dict(pgd_restarts=1),   # its Angular layers cost ~4 times S's per image
        'PD': dict(test_subset=200, pgd_steps=5, pgd_restarts=1, curve_subset=200,
                   curve_attacks=['fgsm', 'blackbox']),
    },
    'smoke': {
        '*': dict(test_subset=200, pgd_steps=10, pgd_restarts=2, curve_subset=200,
                  curve_pgd_steps=5, curve_pgd_restarts=1, curve_attacks=_ALL),
        'PD': dict(test_subset=200, pgd_steps=2, pgd_restarts=1, curve_subset=200,
                   curve_attacks=['fgsm', 'blackbox']),
    },
}
BUDGET_KEYS = tuple(PRESETS['thesis']['*'])


def budget(preset, name, overrides=None):
    """The budget of network ``name`` (its variant's overrides apply to ``V-PGDAT`` too)."""
    table = PRESETS[preset]
    result = dict(table['*'])
    result.update(table.get(name.split('-')[0], {}))
    result.update(table.get(name, {}))
    result.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return result


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


def attack_batch(model, model64, x, t, eps, bn_mode, wanted, black=None, pgd_options=None,
                 zero_grad=False):
    """Per-image correctness (bool arrays on ``x``'s device) of one batch under each attack.

    ``wanted``: the attack names to run (of :data:`ATTACKS`); ``black``: the black-box examples of
    this batch (needed for 'blackbox'); ``pgd_options``: keyword arguments of
    :func:`Friendly.attacks.pgd` (steps, restarts, step_size, rng). The victim is ``model`` in
    ``bn_mode``; returns {'clean': ..., attack: ...} and, with ``zero_grad``, the all-zero
    gradient indicators 'zero_grad' and 'zero_grad_float64'.
    """
    def correct(images):
        return evaluate.predict(model, images, bn_mode) == t

    out = {}
    # Friendly.evaluate's white-box FGSM, call for call: its forward pass gives clean too.
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
    return out


def evaluate_set(model, model64, x_all, t_all, eps, batchsize, bn_mode, device, wanted,
                 black=None, pgd_steps=100, pgd_restarts=5, seed=0, zero_grad=False):
    """Per-image correctness over a whole set as CPU bool arrays, plus 'worst_case'."""
    pgd_options = {'steps': pgd_steps, 'restarts': pgd_restarts,
                   'step_size': attacks.pgd_step_size(eps, pgd_steps) if pgd_steps else 1,
                   'rng': numpy.random.RandomState(seed)}
    cpu = chainer.backend.CpuDevice()
    parts = {}
    for start, stop in evaluate._batches(len(x_all), batchsize):
        x = device.send(x_all[start:stop])
        t = device.send(t_all[start:stop])
        b = None if black is None else device.send(black[start:stop])
        got = attack_batch(model, model64, x, t, eps, bn_mode, wanted, b, pgd_options,
                           zero_grad)
        for key, value in got.items():
            parts.setdefault(key, []).append(numpy.asarray(cpu.send(value), dtype=bool))
    result = {k: numpy.concatenate(v) for k, v in parts.items()}
    worst = result['clean'].copy()
    for key in wanted:
        worst &= result[key]
    result['worst_case'] = worst
    return result


def flags_for(name, row, unbounded, has_bn):
    """The triggered flags of one network, as one line each."""
    lines = []
    if row['blackbox'] < row['fgsm']:
        lines.append('{}: black-box FGSM (from a separate S network) leaves {:.2f}% correct, '
                     'fewer than white-box FGSM with its own gradient ({:.2f}%): the network\'s '
                     'gradient misleads the attack.'.format(name, row['blackbox'], row['fgsm']))
    iterative = min(row['pgd'], row['pgd_margin'])
    if iterative > row['fgsm']:
        lines.append('{}: iterative PGD leaves more images correct ({:.2f}%, the better of its two '
                     'losses) than single-step FGSM ({:.2f}%): its small steps stall where the '
                     'gradient is uninformative.'.format(name, iterative, row['fgsm']))
    if row['worst_case'] < row['fgsm'] - WORST_GAP:
        lines.append('{}: worst case {:.2f}% is {:.2f} points under the thesis\'s FGSM '
                     '({:.2f}%): FGSM overstates its robustness.'.format(
                         name, row['worst_case'], row['fgsm'] - row['worst_case'], row['fgsm']))
    if row['zero_grad_fraction'] > ZERO_GRAD_MAX:
        lines.append('{}: {:.2f}% of the images have an exactly zero float32 input gradient '
                     '({:.2f}% in float64): FGSM cannot move them.'.format(
                         name, row['zero_grad_fraction'], row['zero_grad_fraction_float64']))
    if has_bn and abs(row['fgsm'] - row['fgsm_bn_running']) > BN_GAP:
        lines.append('{}: accuracy depends on the Batch Renormalization mode: FGSM with the '
                     'batch\'s statistics leaves {:.2f}% correct, FGSM with the running averages '
                     '{:.2f}%.'.format(name, row['fgsm'], row['fgsm_bn_running']))
    if unbounded is not None:
        high = [(k, v) for k, v in (('FGSM', unbounded['white_box']),
                                    ('worst case', unbounded['worst_case'])) if v > UNBOUNDED_MAX]
        if high:
            lines.append('{}: at eps {} (any image reachable) accuracy stays above {:g}%: '
                         '{}.'.format(name, UNBOUNDED_EPS, UNBOUNDED_MAX, ', '.join(
                             '{} {:.2f}%'.format(k, v) for k, v in high)))
    return lines


def format_markdown(rows, images, flags, curve, settings):
    names = ordered(rows)
    lines = ['# Friendly: robustness beyond the thesis', '',
             'eps = {eps:g} (L-infinity, pixel units 0..255); victim: each network in float32 with '
             'Batch Renormalization using {bn}; first `images` MNIST test images in batches of '
             '{batchsize}; PGD: `pgd_steps` steps of round(2.5 eps / steps) units from random '
             'starts, `pgd_restarts` restarts, worst restart kept per image. '
             'Accuracy in percent.'.format(
                 eps=settings['eps'], batchsize=settings['batchsize'],
                 bn='batch statistics (the thesis)' if settings['bn_eval'] == 'batch'
                 else 'running averages'), '',
             '| network | images | pgd steps x restarts | ' + ' | '.join(COLUMNS) + ' |',
             '| --- | ---: | ---: | ' + ' | '.join('---:' for _ in COLUMNS) + ' |']
    for n in names:
        b = settings['budgets'][n]
        lines.append('| {} | {} | {} x {} | '.format(n, images[n], b['pgd_steps'],
                                                     b['pgd_restarts'])
                     + ' | '.join('{:.2f}'.format(rows[n][k]) for k in COLUMNS) + ' |')
    lines += ['', 'Columns: `fgsm` is the thesis\'s white-box FGSM (as `Friendly.evaluate`); '
              '`fgsm_float64` takes the gradient on a float64 copy of the network; '
              '`fgsm_bn_running` takes it with Batch Renormalization\'s running averages; `pgd` '
              'ascends the squared distance, `pgd_margin` the margin max_(j != t) y_j - y_t '
              '(positive when misclassified), `pgd_margin_float64` the same with the float64 '
              'copy\'s gradients; `blackbox` is FGSM from a separate S network; '
              '`worst_case` counts an image only if it survives all of them (and is correct '
              'clean); `zero_grad_fraction` is the share of images whose float32 input gradient '
              'of the thesis loss is exactly zero (`_float64`: of the float64 copy).', '',
              '## Flags', '']
    if flags:
        lines += ['- ' + f for f in flags]
    else:
        lines.append('No flag triggered.')
    lines += ['', 'Thresholds: black-box below white-box FGSM; PGD (both losses) above FGSM; '
              'worst case more than {:g} points '
              'under FGSM; zero-gradient share above {:g}%; FGSM with batch statistics and with '
              'running averages more than {:g} points apart; FGSM or worst-case accuracy above '
              '{:g}% at eps {} (on the eps curve\'s images).'.format(
                  WORST_GAP, ZERO_GRAD_MAX, BN_GAP, UNBOUNDED_MAX, UNBOUNDED_EPS), '',
              '## Accuracy against eps (`eps_curve.png`)', '',
              'White-box: the thesis\'s FGSM; worst case: per image over the attacks named '
              'below (PGD with the curve\'s budget); on the first `curve images` test images.', '']
    eps_list = list(settings['curve_eps']) + [float(settings['unbounded_eps'])]
    lines += ['| network | curve images | attacks | curve | ' + ' | '.join(
        'eps {:g}'.format(e) for e in eps_list) + ' |',
        '| --- | ---: | --- | --- | ' + ' | '.join('---:' for _ in eps_list) + ' |']
    for n in names:
        c = curve[n]
        for kind in ('white_box', 'worst_case'):
            lines.append('| {} | {} | {} | {} | '.format(
                n, c['images'], ', '.join(c['attacks']) + (
                    ' (PGD {} x {})'.format(c['pgd_steps'], c['pgd_restarts'])
                    if any(a.startswith('pgd') for a in c['attacks']) else ''),
                kind.replace('_', ' ')) + ' | '.join(
                    '{:.1f}'.format(c['accuracy']['{:g}'.format(e)][kind])
                    for e in eps_list) + ' |')
    return '\n'.join(lines) + '\n'


def format_csv(rows, images):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(('network', 'images') + COLUMNS)
    for n in ordered(rows):
        writer.writerow([n, images[n]] + ['{:.2f}'.format(rows[n][k]) for k in COLUMNS])
    return buf.getvalue()


def plot_curve(curve, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for i, n in enumerate(ordered(curve)):
        c = curve[n]
        eps = [float(e) for e in c['eps']]
        color = colors[i % len(colors)]
        ax.plot(eps, [c['accuracy'][str(e)]['white_box'] for e in c['eps']], '-o', ms=3,
                color=color, label='{} white-box FGSM'.format(n))
        ax.plot(eps, [c['accuracy'][str(e)]['worst_case'] for e in c['eps']], '--', ms=3,
                marker='x', color=color, label='{} worst case'.format(n))
    ax.axvline(attacks.THESIS_EPS, color='grey', lw=1, ls=':')
    ax.text(attacks.THESIS_EPS + 1, 101, 'thesis eps 77', color='grey', fontsize='small',
            va='bottom')
    ax.set_xlabel('eps (L-infinity, pixel units 0..255)')
    ax.set_ylabel('test accuracy (%)')
    ax.set_ylim(0, 108)
    ax.set_xlim(left=0)
    ax.set_title('MNIST accuracy against attack budget: white-box FGSM (solid), worst case '
                 '(dashed)', fontsize='medium')
    ax.grid(alpha=0.3)
    ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize='x-small')
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)


def build_parser():
    parser = argparse.ArgumentParser(
        description='Evaluate Friendly networks with attacks that see through gradient masking: '
                    'FGSM in float32 and float64, with both Batch Renormalization modes, PGD on '
                    'two losses, black-box; worst case, flags and an accuracy-vs-eps curve.')
    parser.add_argument('--run', action='append', metavar='DIR',
                        help='a Friendly.train run folder (repeat for each network)')
    parser.add_argument('--source', metavar='DIR',
                        help='run folder of the separately trained S network that makes the '
                             'black-box examples')
    parser.add_argument('--out', '-o', required=True,
                        help='folder for robustness.md/.csv/.json and eps_curve.png')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='thesis',
                        help='image counts and attack budgets (default: %(default)s: all 10,000 '
                             'images, PGD 100 steps x 5 restarts; meant for a GPU)')
    parser.add_argument('--model', default='final', choices=('final', 'best'),
                        help='which model of each run (default: %(default)s)')
    parser.add_argument('--eps', type=float, default=attacks.THESIS_EPS,
                        help='L-infinity budget of the table, pixel units (default: %(default)s)')
    parser.add_argument('--bn-eval', choices=models.BN_MODES, default='batch',
                        help='Batch Renormalization of the victim (default: %(default)s, the '
                             'thesis)')
    parser.add_argument('--batchsize', '-b', type=int, default=200,
                        help='test batch size (default: %(default)s, the thesis)')
    parser.add_argument('--test-subset', type=int, default=None,
                        help='the first N test images for every network (overrides the preset)')
    parser.add_argument('--pgd-steps', type=int, default=None, help='overrides the preset')
    parser.add_argument('--pgd-restarts', type=int, default=None, help='overrides the preset')
    parser.add_argument('--curve-subset', type=int, default=None,
                        help='the first N test images of the eps curve (overrides the preset)')
    parser.add_argument('--combine', nargs='+', metavar='JSON',
                        help='instead of evaluating: merge robustness.json reports of disjoint '
                             'networks made with the same settings (e.g. one process per network) '
                             'into one table in --out')
    add_seed_argument(parser)
    add_device_argument(parser)
    add_mnist_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.combine:
        if args.run or args.source:
            parser.error('--combine merges finished reports; it takes no --run or --source')
        try:
            report = combine(args.combine)
        except ValueError as e:
            parser.exit(2, 'error: --combine: {}\n'.format(e))
        return write_outputs(args.out, report)
    if not args.run or not args.source:
        parser.error('--run and --source are required (or --combine)')
    try:
        eps = attacks.check_eps(args.eps)
    except ValueError as e:
        parser.error('--eps: {}'.format(e))
    for name in ('batchsize', 'test_subset', 'pgd_steps', 'pgd_restarts', 'curve_subset'):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error('--{} must be positive, got {}'.format(name.replace('_', '-'), value))
    device = device_from_args(args, parser)
    seed_everything(args.seed)

    networks, source, source_settings = load_networks(parser, args.run, args.source,
                                                      args.model, device)
    try:
        _, test = get_mnist(args.mnist_dir)
    except MNISTError as e:
        parser.exit(2, 'error: {}\n'.format(e))
    x_test, t_test = test._datasets
    x_test = numpy.ascontiguousarray(x_test, dtype=numpy.float32)
    t_test = numpy.asarray(t_test, dtype=numpy.int32)

    overrides = {'test_subset': args.test_subset, 'pgd_steps': args.pgd_steps,
                 'pgd_restarts': args.pgd_restarts, 'curve_subset': args.curve_subset}
    budgets = {n: budget(args.preset, n, overrides) for n in networks}
    n_table = max(b['test_subset'] or len(x_test) for b in budgets.values())
    n_curve = max(b['curve_subset'] for b in budgets.values())
    timings = {}
    start = time.time()
    # Black-box examples from the source, made once (Friendly.evaluate's function) per eps.
    n_black = max(n_table, n_curve)
    black = {eps: evaluate.black_box_set(source, x_test[:n_black], t_test[:n_black], eps,
                                         args.batchsize, device)}
    curve_eps = [float(e) for e in CURVE_EPS] + [float(UNBOUNDED_EPS)]
    for e in curve_eps:
        if e not in black:
            black[e] = evaluate.black_box_set(source, x_test[:n_curve], t_test[:n_curve], e,
                                              args.batchsize, device)
    timings['source'] = time.time() - start

    rows, images, curve, flags = {}, {}, {}, []
    for name in ordered(networks):
        model, settings, run_dir = networks[name]
        b = budgets[name]
        start = time.time()
        model64 = float64_copy(model)
        n = min(b['test_subset'] or len(x_test), len(x_test))
        got = evaluate_set(model, model64, x_test[:n], t_test[:n], eps, args.batchsize,
                           args.bn_eval, device, ATTACKS, black[eps][:n], b['pgd_steps'],
                           b['pgd_restarts'], args.seed, zero_grad=True)
        row = {k: 100.0 * float(got[k].mean()) for k in ('clean',) + ATTACKS + ('worst_case',)}
        row['zero_grad_fraction'] = 100.0 * float(got['zero_grad'].mean())
        row['zero_grad_fraction_float64'] = 100.0 * float(got['zero_grad_float64'].mean())
        rows[name], images[name] = row, n
        timings[name + '_table'] = time.time() - start
        print('{} ({} images): '.format(name, n) + ', '.join(
            '{} {:.2f}'.format(k, row[k]) for k in COLUMNS), flush=True)

        start = time.time()
        m = min(b['curve_subset'], len(x_test))
        wanted = [a for a in ATTACKS if a in b['curve_attacks']]
        if 'fgsm' not in wanted:
            wanted.insert(0, 'fgsm')
        accuracy = {}
        for e in curve_eps:
            # eps 0 leaves every image as it is: every attack's accuracy is the clean one.
            got = evaluate_set(model, model64, x_test[:m], t_test[:m], e, args.batchsize,
                               args.bn_eval, device, [] if e == 0 else wanted, black[e][:m],
                               b['curve_pgd_steps'], b['curve_pgd_restarts'], args.seed)
            fgsm = got['clean'] if e == 0 else got['fgsm']
            accuracy['{:g}'.format(e)] = {
                'white_box': 100.0 * float(fgsm.mean()),
                'worst_case': 100.0 * float(got['worst_case'].mean()),
                'per_attack': {k: 100.0 * float(got[k].mean()) for k in got if k in ATTACKS}}
        curve[name] = {'eps': ['{:g}'.format(e) for e in curve_eps[:-1]], 'images': m,
                       'attacks': wanted, 'pgd_steps': b['curve_pgd_steps'],
                       'pgd_restarts': b['curve_pgd_restarts'], 'accuracy': accuracy}
        timings[name + '_curve'] = time.time() - start
        flags += flags_for(name, row, accuracy['{:g}'.format(UNBOUNDED_EPS)],
                           has_batch_renorm(model))

    report = {
        'eps': eps, 'bn_eval': args.bn_eval, 'batchsize': args.batchsize, 'preset': args.preset,
        'budgets': budgets, 'curve_eps': [float(e) for e in CURVE_EPS],
        'unbounded_eps': UNBOUNDED_EPS, 'model': args.model,
        'accuracy_pct': rows, 'images': images, 'flags': flags, 'eps_curve': curve,
        'thresholds': {'worst_gap_points': WORST_GAP, 'zero_grad_pct': ZERO_GRAD_MAX,
                       'bn_gap_points': BN_GAP, 'unbounded_pct': UNBOUNDED_MAX},
        'runs': {n: networks[n][2] for n in networks}, 'source': args.source,
        'source_seed': source_settings['seed'], 'seconds': timings,
        'command': [sys.argv[0]] + list(argv if argv is not None else sys.argv[1:])}
    timings['total'] = sum(timings.values())
    return write_outputs(args.out, report)


# What must agree between reports that --combine merges.
SHARED_KEYS = ('eps', 'bn_eval', 'batchsize', 'preset', 'curve_eps', 'unbounded_eps', 'model',
               'source', 'source_seed', 'thresholds')
MERGED_KEYS = ('budgets', 'accuracy_pct', 'images', 'eps_curve', 'runs')


def write_outputs(out, report):
    os.makedirs(out, exist_ok=True)
    text = format_markdown(report['accuracy_pct'], report['images'], report['flags'],
                           report['eps_curve'], report)
    atomic_write_text(os.path.join(out, 'robustness.md'), text)
    atomic_write_text(os.path.join(out, 'robustness.csv'),
                      format_csv(report['accuracy_pct'], report['images']))
    plot_curve(report['eps_curve'], os.path.join(out, 'eps_curve.png'))
    atomic_write_json(os.path.join(out, 'robustness.json'), report)
    print(text)
    return report


def combine(paths):
    """One report from several ``robustness.json`` of disjoint networks (evaluated apart, say in
    parallel); raises ``ValueError`` when their settings differ or a network repeats."""
    from lenses_common.runfolder import load_json
    merged = None
    for path in paths:
        part = load_json(path, 'robustness report')
        if 'accuracy_pct' not in part:
            raise ValueError('{} is not a Friendly.robustness report'.format(path))
        if merged is None:
            merged = {k: part.get(k) for k in SHARED_KEYS}
            merged.update({k: {} for k in MERGED_KEYS})
            merged.update({'flags': [], 'seconds': {}, 'parts': []})
        for key in SHARED_KEYS:
            if part.get(key) != merged[key]:
                raise ValueError('{}: {} is {!r}, not {!r} as in {}'.format(
                    path, key, part.get(key), merged[key], merged['parts'][0]))
        for name in part['accuracy_pct']:
            if name in merged['accuracy_pct']:
                raise ValueError('{}: network {} is in two reports'.format(path, name))
        for key in MERGED_KEYS:
            merged[key].update(part[key])
        merged['flags'] += part['flags']
        merged['seconds'].update({'{}: {}'.format(path, k): v
                                  for k, v in part['seconds'].items()})
        merged['parts'].append(path)
    names = ordered(merged['accuracy_pct'])
    merged['flags'] = sorted(merged['flags'], key=lambda f: names.index(f.split(':')[0]))
    return merged


if __name__ == '__main__':
    main()
