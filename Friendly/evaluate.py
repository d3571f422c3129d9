"""Clean, FGSM white-box and FGSM black-box accuracy of trained networks (thesis Tables 3.2, 3.3).

``python -m Friendly.evaluate --run RUNS/S --run RUNS/RS ... --source RUNS/source --out OUT``

Every ``--run`` folder is one ``Friendly.train`` run (its ``settings.json`` names the network); the
``--source`` run is a standard (S) network trained with another seed that makes the black-box
examples. Batch Renormalization uses batch statistics in batches of 200 (the thesis; ``--bn-eval
running`` for the learned running averages). Writes ``table.md``, ``table.csv``, ``results.json``
and ``accuracy_bars.png`` into ``--out``.
"""
import csv
import io
import os
import sys
import time

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly import attacks
from Friendly import models
from Friendly.mnist import MNISTError, add_mnist_argument, get_mnist
from Friendly.train import load_run
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.progress import Progress, add_progress_argument
from lenses_common.runfolder import atomic_path, atomic_write_json, atomic_write_text
from lenses_common import lock
from lenses_common.seeding import add_seed_argument, seed_everything
from lenses_common import cli

METRICS = (
    ('clean', 'clean'),
    ('fgsm_white', 'white-box FGSM'),
    ('fgsm_black', 'black-box FGSM'),
    ('pgd_white', 'white-box PGD'),
    ('pgd_black', 'black-box PGD'),
)


def _batches(n, batchsize):
    for start in range(0, n, batchsize):
        yield start, min(n, start + batchsize)


def predict(model, x, bn_mode):
    with models.evaluation_mode(model, bn_mode), chainer.no_backprop_mode():
        return chainer.as_array(model(x)).argmax(axis=1)


def make_adversarial(model, x, t, eps, bn_mode, method='fgsm', pgd_options=None):
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
    for start, stop in _batches(len(x_all), batchsize):
        x = device.send(x_all[start:stop])
        t = device.send(t_all[start:stop])
        out[start:stop] = chainer.backend.CpuDevice().send(
            make_adversarial(source, x, t, eps, 'batch', method, pgd_options))
        bar.update(stop - start)
    bar.close()
    return out


def evaluate_network(model, x_all, t_all, eps, batchsize, bn_mode, device, black=None,
                     pgd_black=None, pgd_options=None, name='', progress=True):
    """Correct counts for one network: {'clean', 'fgsm_white', 'fgsm_black', ...}."""
    counts = {'clean': 0, 'fgsm_white': 0}
    if black is not None:
        counts['fgsm_black'] = 0
    if pgd_options is not None:
        counts['pgd_white'] = 0
        if pgd_black is not None:
            counts['pgd_black'] = 0
    bar = Progress(len(x_all), desc='{} clean/white/black'.format(name), unit='img',
                   enabled=progress)
    for start, stop in _batches(len(x_all), batchsize):
        x = device.send(x_all[start:stop])
        t = device.send(t_all[start:stop])
        t_cpu = t_all[start:stop]

        def correct(images):
            return int((chainer.backend.CpuDevice().send(predict(model, images, bn_mode))
                        == t_cpu).sum())

        # The attack's forward pass on the clean batch gives the clean predictions too.
        with models.evaluation_mode(model, bn_mode):
            x_adv, y = attacks.fgsm(model, x, t, eps, return_output=True)
        counts['clean'] += int((chainer.backend.CpuDevice().send(y.argmax(axis=1))
                                == t_cpu).sum())
        counts['fgsm_white'] += correct(x_adv)
        if black is not None:
            counts['fgsm_black'] += correct(device.send(black[start:stop]))
        if pgd_options is not None:
            counts['pgd_white'] += correct(make_adversarial(model, x, t, eps, bn_mode, 'pgd',
                                                            pgd_options))
            if pgd_black is not None:
                counts['pgd_black'] += correct(device.send(pgd_black[start:stop]))
        bar.update(stop - start)
    bar.close()
    return counts


#: Row-name suffix of a network trained adversarially (``Friendly.train --adversarial``).
ADVERSARIAL_SUFFIX = {'pgd': '-PGDAT', 'ibp': '-IBP'}


def network_name(settings):
    """The row name: the variant, with ``-PGDAT`` (``-IBP``) for a PGD adversarially
    (interval-bound) trained one."""
    return settings['variant'] + ADVERSARIAL_SUFFIX.get(settings.get('adversarial'), '')


def load_networks(parser, run_dirs, source_dir, which, device):
    """Load the ``--run`` networks and the ``--source`` S network, or exit with one line.

    Returns ({name: (model, settings, run_dir)}, source model or None, source settings or None).
    The source must be a standard (S) network trained separately, with another seed than S.
    """
    networks = {}
    for run_dir in run_dirs:
        try:
            model, settings = load_run(run_dir, which, device)
        except ValueError as e:
            parser.exit(2, parser.prog + ': error: --run {}: {}\n'.format(run_dir, e))
        name = network_name(settings)
        if name in networks:
            parser.exit(2, parser.prog +
                           ': error: --run {}: a second {} network (already from {})\n'.format(
                run_dir, name, networks[name][2]))
        networks[name] = (model, settings, run_dir)
    if not source_dir:
        return networks, None, None
    try:
        source, source_settings = load_run(source_dir, which, device)
    except ValueError as e:
        parser.exit(2, parser.prog + ': error: --source {}: {}\n'.format(source_dir, e))
    if network_name(source_settings) != 'S':
        parser.exit(2, parser.prog +
                       ': error: --source {}: the black-box source must be a standard (S) '
                       'network, not {}\n'.format(source_dir, network_name(source_settings)))
    for name, (_, settings, run_dir) in networks.items():
        if os.path.abspath(run_dir) == os.path.abspath(source_dir) or (
                name == 'S' and settings['seed'] == source_settings['seed']):
            parser.exit(2, parser.prog +
                           ': error: --source {}: must be trained separately with another seed '
                           'than {} (seed {})\n'.format(source_dir, run_dir, settings['seed']))
    return networks, source, source_settings


def ordered(names):
    """Variant names in the thesis's column order, unknown extras after."""
    order = {v: i for i, v in enumerate(models.VARIANTS)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def format_tables(results, eps, n_images, bn_mode, source_note=''):
    """The Markdown text: one row per network, then thesis Tables 3.3 and 3.2 in their layout."""
    names = ordered(results)
    present = [(k, label) for k, label in METRICS if any(k in results[n] for n in names)]
    pct = lambda n, k: ('{:.2f}%'.format(results[n][k]) if k in results[n] else '-')  # noqa: E731
    lines = ['# Friendly: accuracy on {} MNIST test images'.format(n_images), '',
             'eps = {:g} (L-infinity, pixel units 0..255); Batch Renormalization evaluated with {} '
             '(batches of 200 in the thesis).{}'.format(
                 eps, 'batch statistics' if bn_mode == 'batch' else 'running averages',
                 (' ' + source_note) if source_note else ''), '',
             '| network | ' + ' | '.join(label for _, label in present) + ' |',
             '| --- | ' + ' | '.join('---:' for _ in present) + ' |']
    for n in names:
        lines.append('| {} | '.format(n) + ' | '.join(pct(n, k) for k, _ in present) + ' |')
    lines += ['', '## Thesis Table 3.3 layout (not attacked)', '',
              '| ' + ' | '.join(names) + ' |', '|' + '---:|' * len(names),
              '| ' + ' | '.join(pct(n, 'clean') for n in names) + ' |', '',
              '## Thesis Table 3.2 layout (FGSM, eps {:g})'.format(eps), '',
              '| attack | ' + ' | '.join(names) + ' |', '| --- |' + '---:|' * len(names)]
    for key, label in (('fgsm_white', 'White-box (FGSM)'), ('fgsm_black', 'Black-box (FGSM)')):
        lines.append('| {} | '.format(label) + ' | '.join(pct(n, key) for n in names) + ' |')
    return '\n'.join(lines) + '\n'


def format_csv(results):
    names = ordered(results)
    present = [k for k, _ in METRICS if any(k in results[n] for n in names)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['network'] + [k + '_pct' for k in present])
    for n in names:
        writer.writerow([n] + ['{:.2f}'.format(results[n][k]) if k in results[n] else ''
                               for k in present])
    return buf.getvalue()


def plot_bars(results, path, eps):
    """Grouped bar chart: one group per network, one bar per metric."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = ordered(results)
    present = [(k, label) for k, label in METRICS if any(k in results[n] for n in names)]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(present))
    positions = numpy.arange(len(names))
    for i, (key, label) in enumerate(present):
        values = [results[n].get(key, 0.0) for n in names]
        ax.bar(positions + (i - (len(present) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(positions)
    ax.set_xticklabels(names)
    ax.set_ylabel('test accuracy (%)')
    ax.set_ylim(0, 100)
    ax.set_title('MNIST accuracy, clean and under attack (eps {:g})'.format(eps))
    ax.legend(loc='upper right', fontsize='small')
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)


def build_parser():
    parser = cli.ArgumentParser(
        description='Evaluate Friendly networks: clean, white-box and black-box FGSM accuracy '
                    '(thesis Tables 3.2 and 3.3).')
    parser.add_argument('--run', action='append', required=True, metavar='DIR',
                        help='a Friendly.train run folder (repeat for each network)')
    parser.add_argument('--source', metavar='DIR',
                        help='run folder of the standard (S) network, trained with another seed, '
                             'that makes the black-box examples (omit to skip black-box)')
    parser.add_argument('--out', '-o', required=True, help='folder for table.md/.csv, the plot')
    parser.add_argument('--model', default='final', choices=('final', 'best'),
                        help='which model of each run: final (the thesis) or best validation '
                             '(default: %(default)s)')
    parser.add_argument('--eps', type=float, default=attacks.THESIS_EPS,
                        help='L-infinity budget in pixel units 0..255 (default: %(default)s, 0.3 '
                             'of 255)')
    parser.add_argument('--bn-eval', choices=models.BN_MODES, default='batch',
                        help='Batch Renormalization at test: batch statistics (the thesis) or the '
                             'learned running averages (default: %(default)s)')
    parser.add_argument('--batchsize', '-b', type=int, default=200,
                        help='test batch size; with batch statistics it is part of the protocol '
                             '(default: %(default)s, the thesis)')
    parser.add_argument('--test-subset', type=int, default=None,
                        help='evaluate on only the first N test images (default: all 10,000)')
    parser.add_argument('--pgd', action='store_true',
                        help='also run PGD (white-box and, with --source, black-box)')
    parser.add_argument('--pgd-steps', type=int, default=100, help='PGD steps (default: 100)')
    parser.add_argument('--pgd-restarts', type=int, default=5,
                        help='PGD random restarts, worst case kept per image (default: 5)')
    parser.add_argument('--pgd-step-size', type=float, default=None,
                        help='PGD step in pixel units, positive (default: Madry et al.\'s '
                             '2.5 eps / steps, rounded to the nearest whole pixel unit with '
                             'halves to even, at least 1; 2 for eps 77 and 100 steps, 38 for '
                             '5 steps)')
    add_seed_argument(parser)
    add_device_argument(parser)
    add_mnist_argument(parser)
    add_progress_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)
    try:
        eps = attacks.check_eps(args.eps)
    except ValueError as e:
        parser.error('--eps: {}'.format(e))
    for name in ('batchsize', 'pgd_steps', 'pgd_restarts'):
        if getattr(args, name) <= 0:
            parser.error('--{} must be positive'.format(name.replace('_', '-')))
    if args.test_subset is not None and args.test_subset <= 0:
        parser.error('--test-subset must be positive')
    if args.pgd_step_size is not None and not 0 < args.pgd_step_size < float('inf'):
        # A negative step would descend the loss and overstate robustness.
        parser.error('--pgd-step-size must be positive and finite, got {}'.format(
            args.pgd_step_size))
    lock.claim_arg(parser, args.out)  # checked, created and locked before any work
    device = device_from_args(args, parser)
    seed_everything(args.seed)

    networks, source, source_settings = load_networks(parser, args.run, args.source,
                                                      args.model, device)
    source_note = ''
    if source is not None:
        source_note = 'Black-box examples come from a separate S network (seed {}).'.format(
            source_settings['seed'])

    try:
        _, test = get_mnist(args.mnist_dir)
    except MNISTError as e:
        parser.exit(2, parser.prog + ': error: {}\n'.format(e))
    x_all, t_all = test._datasets
    if args.test_subset:
        x_all, t_all = x_all[:args.test_subset], t_all[:args.test_subset]
    x_all = numpy.ascontiguousarray(x_all, dtype=numpy.float32)
    t_all = numpy.asarray(t_all, dtype=numpy.int32)
    n = len(x_all)

    pgd_options = None
    if args.pgd:
        pgd_options = {'steps': args.pgd_steps, 'restarts': args.pgd_restarts,
                       'step_size': (args.pgd_step_size if args.pgd_step_size is not None
                                     else attacks.pgd_step_size(eps, args.pgd_steps)),
                       'rng': numpy.random.RandomState(args.seed)}
    timings = {}
    black = pgd_black = None
    if source is not None:
        start = time.time()
        black = black_box_set(source, x_all, t_all, eps, args.batchsize, device,
                              progress=args.progress)
        if pgd_options is not None:
            pgd_black = black_box_set(source, x_all, t_all, eps, args.batchsize, device, 'pgd',
                                      pgd_options, progress=args.progress)
        timings['source'] = time.time() - start

    results = {}
    for name in ordered(networks):
        model, settings, run_dir = networks[name]
        start = time.time()
        counts = evaluate_network(model, x_all, t_all, eps, args.batchsize, args.bn_eval,
                                  device, black, pgd_black, pgd_options, name=name,
                                  progress=args.progress)
        timings[name] = time.time() - start
        results[name] = {k: 100.0 * v / n for k, v in counts.items()}
        print('{}: '.format(name) + ', '.join('{} {:.2f}%'.format(k, v)
                                             for k, v in results[name].items()))

    # results.json first: a write that fails (a full disk) never leaves tables without it.
    atomic_write_json(os.path.join(args.out, 'results.json'), {
        'accuracy_pct': results, 'eps': eps, 'test_images': n, 'bn_eval': args.bn_eval,
        'batchsize': args.batchsize, 'model': args.model,
        'runs': {name: networks[name][2] for name in networks}, 'source': args.source,
        'pgd': None if pgd_options is None else {k: v for k, v in pgd_options.items()
                                                  if k != 'rng'},
        'seconds': timings, 'command': [sys.argv[0]] + list(argv if argv is not None
                                                            else sys.argv[1:])})
    text = format_tables(results, eps, n, args.bn_eval, source_note)
    atomic_write_text(os.path.join(args.out, 'table.md'), text)
    atomic_write_text(os.path.join(args.out, 'table.csv'), format_csv(results))
    plot_bars(results, os.path.join(args.out, 'accuracy_bars.png'), eps)
    print(text)
    return results


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
