"""The thesis's Tables 3.2 and 3.3 beside ours over seeds, behind
``python -m Friendly.thesis_table``: the rows of ``results.csv`` files (:func:`read_results`),
their summary per network (:func:`summarise`) and the Markdown table (:func:`format_table`).
"""
import csv
import glob
import json
import os

from Friendly.runs import ordered
from Friendly.thesis_figures import image_text
from lenses_common import provenance
from lenses_common.sweep import mean_std

#: Points by which our min–max is widened on either side before asking if the thesis is inside.
WIDEN = 1.0
#: (results.csv column, thesis JSON key, heading) of the three compared columns.
COLUMNS = (
    ('clean_pct', 'clean', 'clean'),
    ('fgsm_white_pct', 'whitebox_fgsm', 'white-box FGSM'),
    ('fgsm_black_pct', 'blackbox_fgsm', 'black-box FGSM'),
)
MARKER = 'thesis-table'


def inside(thesis, values, widen=WIDEN):
    """'yes' / 'no' for the thesis figure inside [min - widen, max + widen] of ``values``;
    'not given' without a thesis figure, '-' without values."""
    if thesis is None:
        return 'not given'
    values = [v for v in values if v is not None]
    if not values:
        return '-'
    return 'yes' if min(values) - widen <= thesis <= max(values) + widen else 'no'


def _number(text, path, line, column, kind=float):
    """``kind(text)``, None for an empty cell; a one-line ``ValueError`` naming the place."""
    if text is None or text.strip() == '':
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError('{} line {}: {} is not {}: {!r}'.format(
            path, line, column, 'an integer' if kind is int else 'a number', text)) from None


def read_results(paths):
    """The rows of every ``results.csv``: ``[{'seed', 'network', 'file', column: float or
    None}]``; raises ``ValueError`` (one line) on a missing file or column, a bad number, or a
    (seed, network) pair given twice."""
    rows, seen = [], {}
    for path in paths:
        try:
            with open(path, newline='', encoding='utf-8') as f:
                reader = csv.DictReader(f)
                fields = reader.fieldnames or []
                missing = [c for c in ('seed', 'network') if c not in fields]
                if missing:
                    raise ValueError('{}: no {} column (a Friendly.run_all results.csv has '
                                     'seed, network, clean_pct, ...)'.format(
                                         path, ' or '.join(missing)))
                for line, raw in enumerate(reader, 2):
                    try:
                        seed = int(raw['seed'])
                    except (TypeError, ValueError):
                        raise ValueError('{} line {}: seed is not an integer: {!r}'.format(
                            path, line, raw['seed'])) from None
                    key = (seed, raw['network'])
                    if key in seen:
                        raise ValueError('seed {} network {} is in {} and again in {} line '
                                         '{}'.format(seed, raw['network'], seen[key], path, line))
                    seen[key] = '{} line {}'.format(path, line)
                    row = {'seed': seed, 'network': raw['network'], 'file': path,
                           'trained_on': (raw.get('trained_on') or '').strip(),
                           'test_images': _number(raw.get('test_images'), path, line,
                                                  'test_images', int)}
                    for column, _, _ in COLUMNS:
                        row[column] = _number(raw.get(column), path, line, column)
                    rows.append(row)
        except OSError as e:
            raise ValueError('cannot read {}: {}'.format(path, e.strerror or e)) from None
    return rows


def summarise(rows, thesis):
    """Per network (thesis order): {'seeds', column: {'thesis', 'mean', 'sd', 'min', 'max', 'n',
    'inside'}}."""
    out = {}
    for network in ordered({r['network'] for r in rows}):
        mine = [r for r in rows if r['network'] == network]
        entry = {'seeds': sorted(r['seed'] for r in mine)}
        for column, key, _ in COLUMNS:
            values = [r[column] for r in mine if r[column] is not None]
            mean, sd, n = mean_std(values)
            figure = thesis.get(network, {}).get(key)
            entry[column] = {'thesis': figure, 'mean': mean, 'sd': sd, 'n': n,
                             'min': min(values) if values else None,
                             'max': max(values) if values else None,
                             'inside': inside(figure, values)}
        out[network] = entry
    return out


def format_cell(c):
    if c['n'] == 0:
        return '-'
    text = '{:.2f}'.format(c['mean']) if c['sd'] is None else '{:.2f} ± {:.2f}'.format(
        c['mean'], c['sd'])
    return '{} ({:.2f}–{:.2f}, n {})'.format(text, c['min'], c['max'], c['n'])


def _beside(paths, networks, name):
    """The files ``name`` of the runs beside each ``results.csv`` (one-seed and sweep layouts):
    ``runs/<network>/name`` for ``networks`` when given, else ``name`` of each seed folder."""
    found = []
    for path in paths:
        root = glob.escape(os.path.dirname(os.path.abspath(path)))
        for seed_root in [root, os.path.join(root, 'seed-*')]:
            if networks is None:
                found += glob.glob(os.path.join(seed_root, name))
            else:
                for network in networks:
                    found += glob.glob(os.path.join(seed_root, 'runs', glob.escape(network),
                                                    name))
    return sorted(set(found))


def _json(path):
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def training_machines(paths, networks, rows=()):
    """The CPU and BLAS threads that trained the table's networks and the black-box source: the
    rows' ``trained_on`` column and the ``settings.json`` of the runs beside each
    ``results.csv``, as sorted text lines."""
    found = {r['trained_on'] for r in rows if r.get('trained_on')}
    for settings_path in _beside(paths, list(networks) + ['source'], 'settings.json'):
        env = _json(settings_path).get('environment')
        if isinstance(env, dict):
            found.add(provenance.machine_text(env))
    return sorted(found)


def test_images(paths, rows=()):
    """The test image counts of the rows (their ``test_images`` column) and of the evaluations
    beside each ``results.csv`` (their ``results.json``); empty when none is found."""
    found = {r['test_images'] for r in rows if r.get('test_images') is not None}
    return sorted(found | {_json(p).get('test_images')
                           for p in _beside(paths, None, 'results.json')} - {None})


def format_table(summary, rec, source, machines, images=()):
    """The Markdown block (no title): provenance, the table, what the columns mean."""
    seeds = sorted({s for e in summary.values() for s in e['seeds']})
    lines = ['Written by {}.'.format(provenance.caption(rec, seeds)), '']
    if machines:
        lines += ['Networks trained on: {}.'.format('; '.join(machines)), '']
    head = ['network', 'seeds']
    for _, _, label in COLUMNS:
        head += ['{}: thesis'.format(label), '{}: ours'.format(label), 'thesis inside']
    lines += ['| ' + ' | '.join(head) + ' |',
              '| --- | --- | ' + ' | '.join(['---:', '---:', ':---:'] * len(COLUMNS)) + ' |']
    for network, entry in summary.items():
        cells = [network, ', '.join(map(str, entry['seeds']))]
        for column, _, _ in COLUMNS:
            c = entry[column]
            cells += ['not given' if c['thesis'] is None else '{:.2f}'.format(c['thesis']),
                      format_cell(c), c['inside']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    images = list(images)
    where = ('{} MNIST test images'.format(image_text(images)) if images
             else 'the MNIST test images')
    lines += ['', 'Accuracy in percent on {} (FGSM at eps 77 of 255). '.format(where) +
              'Ours: mean ± sample standard deviation (n - 1) over the seeds, then min–max and '
              'n. "thesis inside": the thesis\'s figure lies within our min–max widened by {:g} '
              'point on either side.{}'.format(WIDEN, ' Thesis figures: ' + source if source
                                               else '')]
    return '\n'.join(lines) + '\n'
