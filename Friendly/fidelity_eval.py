"""The FGSM fidelity comparison behind ``python -m Friendly.fidelity`` (what it measures: that
module's text): the run folders of the roots (:func:`discover`), the evaluation of one runs folder
(:func:`evaluate_folder`, through :func:`Friendly.evaluation.evaluate_set`), the thesis's figures
beside ours (:func:`add_thesis`) and the report (:func:`format_block`, :func:`format_csv`).
"""
import glob
import os
import time


from lenses_common import compat  # noqa: F401  (before chainer)

from Friendly import attacks
from Friendly.evaluation import evaluate_set, float64_copy, source_sets
from Friendly.pipeline import SOURCE, SOURCE_SEED_OFFSET, run_state
from Friendly.pipeline import train_argv, train_options, wanted_settings
from Friendly.runs import load_run, network_name, ordered
from Friendly.thesis_figures import image_text
from lenses_common import provenance
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
