"""Certified robustness behind ``python -m Friendly.certify`` (what it certifies: that module's
text): its options (:func:`build_parser`), the images per preset (:data:`PRESETS`), the bracket
against the attacks' worst case (:func:`bracket_worst`), the report (:func:`format_markdown`,
:func:`format_csv`, :func:`plot_bracket`, :func:`combine`, :func:`write_outputs`) and :func:`run`;
:func:`evaluate` runs a command line in this process (``Friendly.run_certify``).
"""
import sys
import textwrap
import time

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly.certification import network as cert_net
from Friendly.evaluation import evaluate_set, float64_copy, source_sets
from Friendly.mnist import add_mnist_argument, test_arrays
from Friendly.robustness_eval import budget as robustness_budget
from Friendly.runs import add_run_arguments, load_networks, ordered
from lenses_common import cli
from lenses_common import environment
from lenses_common import lock
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.progress import Progress, add_progress_argument
from lenses_common.runfolder import atomic_path, atomic_write_json, atomic_write_text
from lenses_common.seeding import add_seed_argument, seed_everything
from lenses_common.sweep import results_csv

EPS_GRID = (0, 1, 2, 4, 8, 16, 26, 48, 77)
# Test images certified per preset ('*' for every network, then per-network overrides; PD's
# interval bound costs two passes of its 61 million weights per image and eps).
PRESETS = {
    'thesis': {'*': {'images': None}},
    'quick': {'*': {'images': None}, 'PD': {'images': 200}},
    'smoke': {'*': {'images': 400}, 'PD': {'images': 100}},
}


def parse_eps(parser, text):
    try:
        grid = [float(e) for e in text.split(',') if e.strip()]
    except ValueError:
        parser.error('--eps: comma-separated numbers expected, got {!r}'.format(text))
    if not grid or any(not 0 <= e <= 255 for e in grid) or sorted(set(grid)) != grid:
        parser.error('--eps: increasing distinct values in 0..255 expected, got {!r}'.format(text))
    return grid


def build_parser():
    parser = cli.ArgumentParser(
        description='Certified robustness of Friendly networks: sound lower bounds on robust '
                    'accuracy (interval bounds and a backward linear relaxation, float64) and '
                    'the bracket against the worst case of Friendly.robustness.')
    add_run_arguments(parser, 'run folder of the black-box source S network (the bracket\'s '
                              'black-box attack; without it that attack is left out)')
    parser.add_argument('--combine', nargs='+', metavar='JSON',
                        help='instead of certifying: merge certify.json reports of disjoint '
                             'networks made with the same eps grid (e.g. one process per '
                             'network) into one report in --out')
    parser.add_argument('--out', '-o', required=True,
                        help='folder for certify.md/.csv/.json and bracket.png')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='thesis',
                        help='images per network and the bracket\'s attack budgets (those of '
                             'Friendly.robustness\'s eps curve) (default: %(default)s: all 10,000 '
                             'test images)')
    parser.add_argument('--eps', default=','.join(str(e) for e in EPS_GRID),
                        help='increasing eps grid, pixel units (default: %(default)s)')
    parser.add_argument('--methods', default=','.join(cert_net.METHODS),
                        help='comma-separated bounds: ibp, crown (default: %(default)s)')
    parser.add_argument('--test-subset', type=cli.positive_int, default=None,
                        help='certify the first N test images of every network (overrides the '
                             'preset)')
    parser.add_argument('--bracket', type=cli.bounded_int(0, cli.MAX_IMAGES), default=None,
                        help='images of the bracket (default: the preset\'s eps-curve images of '
                             'Friendly.robustness); 0 leaves the bracket out')
    parser.add_argument('--batchsize', '-b', type=cli.positive_int, default=100,
                        help='images bounded at a time (default: %(default)s)')
    parser.add_argument('--tolerance', type=cli.finite_float(0), default=cert_net.TOLERANCE,
                        help='a margin bound must exceed this to certify (default: %(default)s)')
    parser.add_argument('--no-skip', action='store_true',
                        help='bound every image at every eps (default: an image a method fails '
                             'to certify at one eps is not tried at larger ones)')
    add_seed_argument(parser)
    add_device_argument(parser)
    add_mnist_argument(parser)
    add_progress_argument(parser)
    return parser


def network_images(preset, name, override, n_test):
    table = PRESETS[preset]
    n = dict(table['*'])
    n.update(table.get(name.split('-')[0], {}))
    n.update(table.get(name, {}))
    n = override or n['images'] or n_test
    return min(n, n_test)


def pct(a):
    return 100.0 * float(numpy.mean(a)) if len(a) else float('nan')


def bracket_worst(model, x, t, eps_grid, batchsize, device, black, budget, seed):
    """Worst case of Friendly.robustness's attacks (running averages) per eps: CPU bool arrays."""
    model64 = float64_copy(model)
    wanted = [a for a in budget['curve_attacks']
              if a not in ('blackbox', 'blackbox_float64') or black is not None]
    out = {}
    for e in eps_grid:
        got = evaluate_set(model, model64, x, t, e, batchsize, 'running', device,
                           [] if e == 0 else wanted,
                           None if black is None else black[e]['blackbox'],
                           budget['curve_pgd_steps'], budget['curve_pgd_restarts'], seed,
                           black64=None if black is None else black[e]['blackbox_float64'])
        out[e] = got['worst_case']
    return out, wanted


def eps_key(e):
    return '{:g}'.format(e)


def format_markdown(report):
    grid = report['eps']
    lines = ['# Certified robustness', '',
             'Certified accuracy (%): the share of test images whose every margin bound is above '
             '{:g} over the L-infinity ball of radius eps (pixel units, within 0..255); float64, '
             'Batch Renormalization with running averages. `clean` is the accuracy of the same '
             'float64 function on the same images.'.format(report['tolerance']), '',
             '| network | method | images | clean | ' + ' | '.join(
                 'eps {}'.format(eps_key(e)) for e in grid) + ' | seconds |',
             '| --- | --- | ---: | ---: | ' + ' | '.join('---:' for _ in grid) + ' | ---: |']
    for row in report['rows']:
        lines.append('| {} | {} | {} | {:.2f} | '.format(
            row['network'], row['method'], row['images'], row['clean']) + ' | '.join(
                '{:.2f}'.format(row['certified'][eps_key(e)]) for e in grid)
            + ' | {:.1f} |'.format(row['seconds']))
    if report['bracket']:
        lines += ['', '## Bracket', '',
                  'On the first images of each network, certified accuracy (best method, a lower '
                  'bound of robust accuracy) / worst case of the attacks of Friendly.robustness '
                  '(an upper bound), both with running averages. `violations` counts images '
                  'certified and yet broken by an attack (0 for sound bounds).', '',
                  '| network | images | attacks | ' + ' | '.join(
                      'eps {}'.format(eps_key(e)) for e in grid) + ' | violations |',
                  '| --- | ---: | --- | ' + ' | '.join('---' for _ in grid) + ' | ---: |']
        for name in ordered(report['bracket']):
            b = report['bracket'][name]
            lines.append('| {} | {} | {} | '.format(name, b['images'], ', '.join(b['attacks']))
                         + ' | '.join('{:.1f} / {:.1f}'.format(b['certified'][eps_key(e)],
                                                               b['worst_case'][eps_key(e)])
                                      for e in grid)
                         + ' | {} |'.format(b['violations']))
    lines += ['', 'Time per network (certification, all methods and eps): ' + ', '.join(
        '{} {:.0f} s wall / {:.0f} CPU s'.format(n, report['seconds'][n + '_certify'],
                                               report['seconds'][n + '_certify_cpu'])
        for n in ordered({r['network'] for r in report['rows']})) + '.']
    lines += ['', 'Command: `{}`'.format(' '.join(report['command'])),
              'Machine: {} ({} logical CPUs), BLAS threads {}; seed {}.'.format(
                  report['environment']['cpu_model'], report['environment']['cpu_count'],
                  report['environment'].get('blas_threads'), report['seed']), '']
    return '\n'.join(lines)


def format_csv(report):
    """``certify.csv``: one row per network and method, the certified accuracy per eps."""
    eps = ['eps_' + eps_key(e) for e in report['eps']]
    rows = [dict({'network': r['network'], 'method': r['method'], 'images': r['images'],
                  'clean': '{:.4f}'.format(r['clean']), 'seconds': '{:.2f}'.format(r['seconds'])},
                 **{k: '{:.4f}'.format(r['certified'][k[len('eps_'):]]) for k in eps})
            for r in report['rows']]
    return results_csv(rows, ['network', 'method', 'images', 'clean'] + eps + ['seconds'])


def plot_bracket(report, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    bracket = report['bracket']
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    grid = report['eps']
    for i, name in enumerate(ordered(bracket)):
        b = bracket[name]
        color = colors[i % len(colors)]
        lo = [b['certified'][eps_key(e)] for e in grid]
        hi = [b['worst_case'][eps_key(e)] for e in grid]
        ax.fill_between(grid, lo, hi, color=color, alpha=0.12, lw=0)
        ax.plot(grid, lo, '-o', ms=3, color=color, label='{} certified'.format(name))
        ax.plot(grid, hi, '--x', ms=3, color=color, label='{} worst attack'.format(name))
    ax.set_xlabel('eps (L-infinity, pixel units 0..255)')
    ax.set_ylabel('test accuracy (%)')
    ax.set_ylim(0, 102)
    ax.set_xlim(0, max(grid))
    ax.grid(alpha=0.3)
    counts = sorted({bracket[name]['images'] for name in bracket})
    ax.set_title('Robust accuracy bracket: certified (solid, lower bound) and worst attack '
                 '(dashed, upper bound)\nfirst {} test images per network, running averages'
                 .format(' or '.join(str(n) for n in counts)), fontsize='medium')
    ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize='x-small')
    env = report['environment']
    command = textwrap.wrap(' '.join(report['command']), 170)
    footer = command + ['{}; {} CPUs, BLAS threads {}; seed {}; {}'.format(
        env['cpu_model'], env['cpu_count'], env.get('blas_threads'), report['seed'],
        report['date'])]
    fig.text(0.01, 0.005, '\n'.join(footer), fontsize=5.5, va='bottom')
    fig.tight_layout(rect=(0, 0.012 * len(footer) + 0.02, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)


def combine(paths):
    """One report from certify.json reports of disjoint networks with the same eps grid."""
    from lenses_common.runfolder import load_json
    merged = None
    for path in paths:
        report = load_json(path, what='certify report')
        if not isinstance(report, dict) or 'rows' not in report:
            raise ValueError('{} is not a certify.json'.format(path))
        if merged is None:
            merged = dict(report, rows=list(report['rows']), bracket=dict(report['bracket']),
                          runs=dict(report['runs']), seconds=dict(report['seconds']),
                          commands=[report['command']])
            continue
        if report['eps'] != merged['eps'] or report['tolerance'] != merged['tolerance']:
            raise ValueError('{}: another eps grid or tolerance'.format(path))
        if set(report['runs']) & set(merged['runs']):
            raise ValueError('{}: a network already merged'.format(path))
        merged['rows'] += report['rows']
        merged['bracket'].update(report['bracket'])
        merged['runs'].update(report['runs'])
        merged['seconds'].update(report['seconds'])
        merged['commands'].append(report['command'])
    order = {n: i for i, n in enumerate(ordered(merged['runs']))}
    merged['rows'].sort(key=lambda r: order[r['network']])
    return merged


def write_outputs(out, report):
    import os
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, 'certify.md'), format_markdown(report))
    atomic_write_text(os.path.join(out, 'certify.csv'), format_csv(report))
    atomic_write_json(os.path.join(out, 'certify.json'), report)
    if report['bracket']:
        plot_bracket(report, os.path.join(out, 'bracket.png'))
    return report


def evaluate(argv=None):
    """Run ``python -m Friendly.certify`` with the command line ``argv`` in this process (bad
    options exit with status 2); returns the report written."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return run(parser, args, argv)


def check_args(parser, args):
    """Lock ``--out`` (checked, created and locked before any work)."""
    lock.claim_arg(parser, args.out)


def run(parser, args, argv=None):
    """Certify the networks of the checked ``args`` and write the report into ``args.out``
    (``--combine``: merge finished reports instead); returns the report."""
    if args.combine:
        if args.run:
            parser.error('--combine merges finished reports; it takes no --run')
        try:
            report = combine(args.combine)
        except ValueError as e:
            parser.exit(2, parser.prog + ': error: --combine: {}\n'.format(e))
        report['command'] = ['python -m Friendly.certify'] + list(
            argv if argv is not None else sys.argv[1:])
        return write_outputs(args.out, report)
    if not args.run:
        parser.error('--run is required (or --combine)')
    grid = parse_eps(parser, args.eps)
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    if not methods or any(m not in cert_net.METHODS for m in methods):
        parser.error('--methods: choose from {}, got {!r}'.format(
            ', '.join(cert_net.METHODS), args.methods))
    device = device_from_args(args, parser)
    seed_everything(args.seed)
    xp = device.xp
    networks, source, _ = load_networks(parser, args.run, args.source, args.model, device)
    x_test, t_test = test_arrays(parser, args.mnist_dir)
    n_test = len(x_test)

    rows, bracket, timings = [], {}, {}
    sizes = {n: network_images(args.preset, n, args.test_subset, n_test) for n in networks}
    n_bracket = args.bracket
    black = None
    if n_bracket is None:
        n_bracket = robustness_budget(args.preset, 'S')['curve_subset']
    if n_bracket and source is not None:
        m = min(n_bracket, n_test)
        start = time.time()
        source64 = float64_copy(source)
        black = {e: source_sets(source, source64, x_test[:m], t_test[:m], e, 200, device,
                                progress=args.progress) for e in grid if e > 0}
        black[0] = {'blackbox': x_test[:m], 'blackbox_float64': x_test[:m]}
        timings['source'] = time.time() - start
    for name in ordered(networks):
        model = networks[name][0]
        n = sizes[name]
        x, t = x_test[:n], t_test[:n]
        start, cpu_start = time.time(), time.process_time()
        net = cert_net.from_model(model, xp)
        with chainer.using_config('train', False):
            clean = numpy.concatenate([
                chainer.backend.CpuDevice().send(net.forward(
                    xp.asarray(x[i:i + 500].reshape(len(x[i:i + 500]), -1),
                               dtype=numpy.float64)).argmax(axis=1))
                for i in range(0, n, 500)]) == t
        bar = Progress(n * len(grid), desc='{}: certify (images x eps, fewer when skipped)'.format(
            name), unit='img', enabled=args.progress)
        cert, _, seconds = cert_net.certify(net, x, t, grid, methods, args.batchsize,
                                            args.tolerance, not args.no_skip, bar.update)
        bar.close()
        best = numpy.zeros_like(cert[methods[0]])
        for method in methods:
            best |= cert[method]
        # A certificate at a larger eps covers every smaller ball.
        best = numpy.logical_or.accumulate(best[::-1], axis=0)[::-1]
        for method in methods + ['best']:
            c = best if method == 'best' else cert[method]
            rows.append({'network': name, 'method': method, 'images': n, 'clean': pct(clean),
                         'certified': {eps_key(e): pct(c[k]) for k, e in enumerate(grid)},
                         'seconds': (sum(seconds.values()) if method == 'best' else
                                     seconds[method] + seconds['first_layer'])})
        timings[name + '_certify'] = time.time() - start
        timings[name + '_certify_cpu'] = time.process_time() - cpu_start
        print('{} ({} images): clean {:.2f}, certified (best) '.format(name, n, pct(clean))
              + ', '.join('{:g}: {:.2f}'.format(e, pct(best[k])) for k, e in enumerate(grid))
              + ' ({:.1f} s, {:.1f} CPU s)'.format(time.time() - start,
                                                   time.process_time() - cpu_start), flush=True)
        m = min(n_bracket or 0, n)
        if m:
            start = time.time()
            budget = robustness_budget(args.preset, name)
            blk = None if black is None else {
                e: {k: v[k][:m] for k in ('blackbox', 'blackbox_float64')}
                for e, v in black.items()}
            worst, attacks_run = bracket_worst(model, x[:m], t[:m], grid, 200, device, blk,
                                               budget, args.seed)
            violations = int(sum(int((best[k, :m] & ~worst[e]).sum())
                                 for k, e in enumerate(grid)))
            bracket[name] = {
                'images': m, 'attacks': attacks_run, 'pgd_steps': budget['curve_pgd_steps'],
                'pgd_restarts': budget['curve_pgd_restarts'],
                'certified': {eps_key(e): pct(best[k, :m]) for k, e in enumerate(grid)},
                'worst_case': {eps_key(e): pct(worst[e]) for e in grid},
                'violations': violations}
            timings[name + '_bracket'] = time.time() - start
    report = {
        'eps': grid, 'methods': methods, 'tolerance': args.tolerance, 'preset': args.preset,
        'model': args.model, 'bn_mode': 'running', 'dtype': 'float64', 'skip': not args.no_skip,
        'rows': rows, 'bracket': bracket, 'runs': {n: networks[n][2] for n in networks},
        'source': args.source, 'seed': args.seed, 'seconds': timings,
        'environment': environment.environment(),
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'command': ['python -m Friendly.certify'] + list(argv if argv is not None
                                                          else sys.argv[1:])}
    return write_outputs(args.out, report)
