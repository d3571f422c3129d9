"""FGSM in float32 and with float64 gradients on trained runs, beside the thesis's figures.

``python -m Friendly.fidelity --runs ROOT [ROOT ...] --thesis thesis_tables.json --out OUT``

Every ``ROOT`` is an output root of ``python -m Friendly.run_all`` (``--preset thesis`` unless
``--preset`` says otherwise): its runs are in ``ROOT/friendly/runs/<network>`` (``--seed S``) or
``ROOT/friendly/seed-<S>/runs/<network>`` (``--seeds``), the black-box source in
``.../runs/source``.
For every finished network and seed it computes, on the test images, with the thesis's protocol
(final model, batches of 200, Batch Renormalization with batch statistics, eps 77):

* ``clean``; ``fgsm``: the thesis's white-box FGSM (float32, as :mod:`Friendly.evaluate`);
  ``fgsm_float64``: the same with the gradient of the network's float64 copy;
* ``blackbox``: FGSM examples of the source (float32, as :mod:`Friendly.evaluate`);
  ``blackbox_float64``: the source's gradient taken in float64; the float32 victim judges both;
* the share of images whose input gradient is exactly zero (so FGSM leaves them unchanged), for
  the network and for the source, in float32 and in float64.

Beside each figure of the thesis (Table 3.2) it says whether that figure lies inside the interval
between our float32 and float64 results, widened by :data:`WIDEN` point on either side. Writes
``fidelity.md``, ``fidelity.csv`` and ``fidelity.json`` into ``--out``; ``--readme FILE`` also
puts the table between the ``<!-- fidelity-table:begin -->`` and ``<!-- fidelity-table:end -->``
lines of FILE. Only FGSM: a few minutes on a CPU for five networks.
"""
import glob
import os
import sys
import time


from lenses_common import compat  # noqa: F401  (before chainer)

from Friendly import attacks
from Friendly import models
from Friendly.evaluation import evaluate_set, float64_copy, source_sets
from Friendly.mnist import add_mnist_argument, test_arrays
from Friendly.pipeline import PRESETS, SOURCE, SOURCE_SEED_OFFSET, parse_networks, run_state
from Friendly.pipeline import train_argv, train_options, wanted_settings
from Friendly.runs import load_run, network_name, ordered
from Friendly.thesis_figures import check_readme, image_text, thesis_arg, write_readme
from lenses_common import cli
from lenses_common import provenance
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.progress import add_progress_argument
from lenses_common import lock
from lenses_common.runfolder import atomic_write_json, atomic_write_text, check_out_arg
from lenses_common.runfolder import load_json
from lenses_common.snapshots import FINAL_MODEL
from lenses_common.sweep import results_csv

WIDEN = 1.0
MARKER = 'fidelity-table'
ATTACKS = ('fgsm', 'fgsm_float64', 'blackbox', 'blackbox_float64')
#: The thesis protocol of the evaluation (Friendly.evaluate's defaults).
BATCHSIZE = 200
BN_MODE = 'batch'
#: CSV columns, in order.
CSV_COLUMNS = ('network', 'seed', 'source_seed', 'images', 'device', 'clean',
               'thesis_whitebox', 'fgsm', 'fgsm_float64', 'whitebox_inside',
               'thesis_blackbox', 'blackbox', 'blackbox_float64', 'blackbox_inside',
               'zero_grad', 'zero_grad_float64', 'source_zero_grad', 'source_zero_grad_float64')


def inside(thesis, a, b, widen=WIDEN):
    """'yes'/'no': ``thesis`` in [min(a, b) - widen, max(a, b) + widen]; 'not given' without it."""
    if thesis is None:
        return 'not given'
    return 'yes' if min(a, b) - widen <= thesis <= max(a, b) + widen else 'no'


def runs_folders(root):
    """The ``runs`` folders below one ``--runs`` root: ``friendly/runs`` and
    ``friendly/seed-*/runs`` (also when ``root`` is the ``friendly`` folder itself)."""
    found = []
    for base in (os.path.join(root, 'friendly'), root):
        escaped = glob.escape(base)
        found += [p for p in [os.path.join(base, 'runs')] if os.path.isdir(p)]
        found += sorted(p for p in glob.glob(os.path.join(escaped, 'seed-*', 'runs'))
                        if os.path.isdir(p))
        if found:
            break
    return found


def finished_run(run_dir, network, seed, preset):
    """'' when ``run_dir`` holds the finished ``network`` run of ``preset`` and ``seed``, else why
    not (one line)."""
    settings_path = os.path.join(run_dir, 'settings.json')
    if not os.path.exists(settings_path):
        return 'no settings.json'
    try:
        load_json(settings_path)
    except ValueError as e:
        return str(e)
    argv = train_argv(network, train_options(preset, network), seed, run_dir, None, None)
    state = run_state(run_dir, wanted_settings(argv))
    if state == 'other':
        return 'not a {} run of the {} preset with seed {}'.format(network, preset, seed)
    if state != 'done':
        return 'not finished (no {})'.format(FINAL_MODEL)
    return ''


def discover(roots, preset, networks):
    """``([(runs_folder, seed, {network: run_dir}, source_dir)], [skipped lines])``.

    A runs folder's seed is its networks' seed (``settings.json``); the source must be a finished
    S run with seed + 1000. Raises ``ValueError`` for a root without runs, or a (network, seed)
    found twice.
    """
    found, skipped, seen = [], [], {}
    for root in roots:
        folders = runs_folders(root)
        if not folders:
            raise ValueError('{} holds no friendly/runs or friendly/seed-*/runs folder (the '
                             'layout of python -m Friendly.run_all --out {})'.format(root, root))
        for runs in folders:
            seeds = set()
            for network in networks:
                path = os.path.join(runs, network, 'settings.json')
                if os.path.exists(path):
                    try:
                        seeds.add(load_json(path).get('seed'))
                    except (ValueError, AttributeError):
                        pass
            seeds.discard(None)
            if len(seeds) != 1:
                skipped.append('{}: {}'.format(runs, 'no network run' if not seeds else
                                               'networks of several seeds {}'.format(
                                                   sorted(seeds))))
                continue
            seed = seeds.pop()
            source_dir = os.path.join(runs, SOURCE)
            why = finished_run(source_dir, SOURCE, seed + SOURCE_SEED_OFFSET,
                               preset)
            if why:
                skipped.append('{}: black-box source {}'.format(source_dir, why))
                continue
            chosen = {}
            for network in networks:
                run_dir = os.path.join(runs, network)
                if not os.path.isdir(run_dir):
                    continue
                why = finished_run(run_dir, network, seed, preset)
                if why:
                    skipped.append('{}: {}'.format(run_dir, why))
                    continue
                if (network, seed) in seen:
                    raise ValueError('{} seed {} is in {} and in {}'.format(
                        network, seed, seen[(network, seed)], run_dir))
                seen[(network, seed)] = run_dir
                chosen[network] = run_dir
            if chosen:
                found.append((runs, seed, chosen, source_dir))
    return found, skipped


def evaluate_folder(seed, chosen, source_dir, x, t, eps, device, progress):
    """The rows of one runs folder: {network: figures in percent}, and seconds taken."""
    source, source_settings = load_run(source_dir, 'final', device)
    start = time.time()
    sets = source_sets(source, float64_copy(source), x, t, eps, BATCHSIZE, device,
                       progress=progress)
    source_zero = {k: 100.0 * float(sets[k].mean()) for k in ('zero_grad', 'zero_grad_float64')}
    seconds = {'source': time.time() - start}
    rows = {}
    for network in ordered(chosen):
        model, settings = load_run(chosen[network], 'final', device)
        start = time.time()
        got = evaluate_set(model, float64_copy(model), x, t, eps, BATCHSIZE, BN_MODE, device,
                           ATTACKS, sets['blackbox'], pgd_steps=0, zero_grad=True,
                           black64=sets['blackbox_float64'], progress=progress,
                           desc='{} seed {}'.format(network, seed))
        row = {k: 100.0 * float(got[k].mean()) for k in ('clean',) + ATTACKS}
        row['zero_grad'] = 100.0 * float(got['zero_grad'].mean())
        row['zero_grad_float64'] = 100.0 * float(got['zero_grad_float64'].mean())
        row['source_zero_grad'] = source_zero['zero_grad']
        row['source_zero_grad_float64'] = source_zero['zero_grad_float64']
        row.update({'network': network_name(settings), 'seed': seed,
                    'source_seed': source_settings['seed'], 'images': len(x),
                    'run': chosen[network], 'source': source_dir})
        rows[network] = row
        seconds[network] = time.time() - start
    return rows, seconds


def add_thesis(row, thesis):
    figures = thesis.get(row['network'], {})
    row['thesis_whitebox'] = figures.get('whitebox_fgsm')
    row['thesis_blackbox'] = figures.get('blackbox_fgsm')
    row['whitebox_inside'] = inside(row['thesis_whitebox'], row['fgsm'], row['fgsm_float64'])
    row['blackbox_inside'] = inside(row['thesis_blackbox'], row['blackbox'],
                                    row['blackbox_float64'])
    return row


def _pct(value):
    return 'not given' if value is None else '{:.2f}'.format(value)


def tally(rows, key):
    """(thesis figures inside, thesis figures given) over ``rows`` for ``key``."""
    given = [r[key] for r in rows if r[key] in ('yes', 'no')]
    return given.count('yes'), len(given)


def format_block(rows, rec, source_line, eps=attacks.THESIS_EPS):
    """The Markdown block (no title): provenance, the table, what the columns mean."""
    seeds = sorted({r['seed'] for r in rows})
    lines = ['Written by {}.'.format(provenance.caption(rec, seeds)), '',
             '| network | seed | white-box: thesis | float32 | float64 | thesis inside | '
             'black-box: thesis | float32 | float64 | thesis inside | zero gradient, network '
             '(float32 / float64) | zero gradient, source (float32 / float64) |',
             '| --- | ---: ' + '| ---: | ---: | ---: | :---: ' * 2 + '| ---: | ---: |']
    for r in rows:
        lines.append('| {} | {} | {} | {:.2f} | {:.2f} | {} | {} | {:.2f} | {:.2f} | {} | '
                     '{:.2f} / {:.2f} | {:.2f} / {:.2f} |'.format(
                         r['network'], r['seed'], _pct(r['thesis_whitebox']), r['fgsm'],
                         r['fgsm_float64'], r['whitebox_inside'], _pct(r['thesis_blackbox']),
                         r['blackbox'], r['blackbox_float64'], r['blackbox_inside'],
                         r['zero_grad'], r['zero_grad_float64'], r['source_zero_grad'],
                         r['source_zero_grad_float64']))
    white, black = tally(rows, 'whitebox_inside'), tally(rows, 'blackbox_inside')
    images = sorted({r['images'] for r in rows})
    lines += ['', 'FGSM accuracy in percent at eps {:g} of 255 on {} MNIST test images, '
              'each network\'s final model, batches of {}, Batch Renormalization with batch '
              'statistics (the thesis\'s protocol). float32: the thesis\'s FGSM; float64: the '
              'same attack with the gradient of a float64 copy of the attacking network (the '
              'network itself for white-box, the separately trained source S network for '
              'black-box), the float32 network judging the examples. "thesis inside": the '
              'thesis\'s figure lies within [min, max] of our two widened by {:g} point: '
              'white-box {} of {}, black-box {} of {}. Zero gradient: the share of images whose '
              'input gradient of the thesis loss is exactly zero in every pixel, which FGSM '
              'leaves unchanged.{}'.format(
                  eps, image_text(images), BATCHSIZE, WIDEN, white[0],
                  white[1], black[0], black[1],
                  ' Thesis figures: ' + source_line if source_line else '')]
    return '\n'.join(lines) + '\n'


def format_csv(rows):
    """``fidelity.csv``: :data:`CSV_COLUMNS` of every row, numbers with two decimals."""
    return results_csv([{c: '{:.2f}'.format(v) if isinstance(v, float) else v
                         for c, v in r.items()} for r in rows], CSV_COLUMNS)


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Friendly.fidelity',
        description='FGSM white-box and black-box accuracy with float32 and float64 gradients on '
                    'the runs of Friendly.run_all, beside the thesis\'s figures, with the share '
                    'of images whose gradient is exactly zero.')
    parser.add_argument('--runs', nargs='+', required=True, metavar='ROOT',
                        help='output roots of python -m Friendly.run_all (ROOT/friendly/runs/'
                             '<network> or ROOT/friendly/seed-<S>/runs/<network>)')
    parser.add_argument('--thesis', required=True, metavar='JSON',
                        help='the thesis figures: {"networks": {NAME: {"whitebox_fgsm", '
                             '"blackbox_fgsm", ...}}}')
    parser.add_argument('--out', '-o', required=True,
                        help='folder for fidelity.md, fidelity.csv and fidelity.json')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='thesis',
                        help='the preset the runs were trained with (default: %(default)s)')
    parser.add_argument('--networks', default=','.join(models.VARIANTS),
                        help='comma-separated networks (default: all six; those without a '
                             'finished run are listed as skipped)')
    parser.add_argument('--test-subset', type=cli.positive_int, default=None,
                        help='only the first N test images (default: all 10,000, the thesis)')
    parser.add_argument('--eps', type=float, default=attacks.THESIS_EPS,
                        help='L-infinity budget in pixel units 0..255 (default: %(default)s, the '
                             'thesis)')
    parser.add_argument('--readme', metavar='FILE',
                        help='also put the table between the <!-- fidelity-table:begin --> and '
                             '<!-- fidelity-table:end --> lines of FILE (default: no such file)')
    add_device_argument(parser)
    add_mnist_argument(parser)
    add_progress_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    check_out_arg(parser, args.out)
    networks = parse_networks(parser, args.networks)
    try:
        eps = attacks.check_eps(args.eps)
    except ValueError as e:
        parser.error('--eps: {}'.format(e))
    if args.readme:
        check_readme(parser, args.readme, MARKER)
    thesis, source_line = thesis_arg(parser, args.thesis)
    try:
        found, skipped = discover(args.runs, args.preset, networks)
    except ValueError as e:
        parser.error('--runs: {}'.format(e))
    for line in skipped:
        print('skipped: ' + line, flush=True)
    if not found:
        parser.exit(2, '{}: error: --runs: no finished run of the {} preset in {}\n'.format(
            parser.prog, args.preset, ', '.join(args.runs)))
    device = device_from_args(args, parser)
    x, t = test_arrays(parser, args.mnist_dir, args.test_subset)
    lock.claim_arg(parser, args.out)  # created and locked before the evaluation

    rec = provenance.record('python -m Friendly.fidelity', argv, device)
    rows, seconds = [], {}
    for runs, seed, chosen, source_dir in sorted(found, key=lambda f: f[1]):
        try:
            got, took = evaluate_folder(seed, chosen, source_dir, x, t, eps, device,
                                        args.progress)
        except ValueError as e:    # a model file that does not load: one line
            parser.exit(2, '{}: error: {}\n'.format(parser.prog, e))
        for network in ordered(got):
            row = add_thesis(got[network], thesis)
            row['device'] = str(device)
            rows.append(row)
            print('{} seed {}: white-box {:.2f} / {:.2f}, black-box {:.2f} / {:.2f} (float32 / '
                  'float64)'.format(network, seed, row['fgsm'], row['fgsm_float64'],
                                    row['blackbox'], row['blackbox_float64']), flush=True)
        seconds.update({'seed {} {}'.format(seed, k): v for k, v in took.items()})
    order = {n: i for i, n in enumerate(ordered({r['network'] for r in rows}))}
    rows.sort(key=lambda r: (order[r['network']], r['seed']))

    block = format_block(rows, rec, source_line, eps)
    os.makedirs(args.out, exist_ok=True)
    title = '# Friendly: FGSM in float32 and with float64 gradients, beside the thesis\n\n'
    text = title + block
    if skipped:
        text += '\nNot included:\n\n' + ''.join('- {}\n'.format(s) for s in skipped)
    atomic_write_text(os.path.join(args.out, 'fidelity.md'), text)
    atomic_write_text(os.path.join(args.out, 'fidelity.csv'), format_csv(rows))
    atomic_write_json(os.path.join(args.out, 'fidelity.json'), {
        'rows': rows, 'eps': eps, 'batchsize': BATCHSIZE, 'bn_eval': BN_MODE, 'model': 'final',
        'preset': args.preset, 'widen_points': WIDEN, 'skipped': skipped, 'seconds': seconds,
        'thesis': args.thesis, 'provenance': rec})
    if args.readme:
        write_readme(parser, args.readme, MARKER, block)
    print(text)
    return rows


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
