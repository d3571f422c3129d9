"""The thesis's Tables 3.2 and 3.3 beside ours, over seeds, written from ``results.csv``.

``python -m Friendly.thesis_table --results OUT/friendly/results.csv [more.csv ...]
--thesis thesis_tables.json --out thesis_table.md [--readme README.md]``

Every ``results.csv`` is the one ``Friendly.run_all`` writes (one row per seed and network;
columns ``seed``, ``network``, ``clean_pct``, ``fgsm_white_pct``, ``fgsm_black_pct``); several
files (say one per seed folder) are read as one set of rows, and a (seed, network) pair that
comes twice is refused. For every network and column (clean, white-box FGSM, black-box FGSM) the
table gives the thesis's figure and ours as mean ± sample standard deviation over the seeds, with
min–max and n, and whether the thesis's figure lies inside our min–max widened by
:data:`WIDEN` point on either side. A network the thesis JSON does not give (PD, held back until
measured) reads "not given". With ``--readme FILE`` the table also replaces what lies between the
``<!-- thesis-table:begin -->`` and ``<!-- thesis-table:end -->`` lines of that file.
"""
import csv
import glob
import json
import os
import sys

from Friendly.runs import ordered
from Friendly.thesis_figures import check_readme, image_text, thesis_arg, write_readme
from lenses_common import cli
from lenses_common import provenance
from lenses_common.runfolder import atomic_write_text, check_out_arg
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


def _number(text, path, line, column):
    if text is None or text.strip() == '':
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError('{} line {}: {} is not a number: {!r}'.format(
            path, line, column, text)) from None


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
                    row = {'seed': seed, 'network': raw['network'], 'file': path}
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


def training_machines(paths, networks):
    """The CPU and BLAS threads that trained the table's networks and the black-box source
    beside each ``results.csv`` (their ``settings.json``), as sorted text lines."""
    found = set()
    for settings_path in _beside(paths, list(networks) + ['source'], 'settings.json'):
        env = _json(settings_path).get('environment')
        if isinstance(env, dict):
            found.add(provenance.machine_text(env))
    return sorted(found)


def test_images(paths):
    """The test image counts of the evaluations beside each ``results.csv`` (their
    ``results.json``); empty when none is found."""
    return sorted({_json(p).get('test_images') for p in _beside(paths, None, 'results.json')}
                  - {None})


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


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Friendly.thesis_table',
        description='The thesis\'s Tables 3.2 and 3.3 beside ours over seeds, from '
                    'Friendly.run_all\'s results.csv files and the thesis figures (JSON).')
    parser.add_argument('--results', nargs='+', required=True, metavar='CSV',
                        help='results.csv files of Friendly.run_all (one or several, e.g. one '
                             'per seed folder); a (seed, network) pair may come only once')
    parser.add_argument('--thesis', required=True, metavar='JSON',
                        help='the thesis figures: {"networks": {NAME: {"clean", '
                             '"whitebox_fgsm", "blackbox_fgsm"}}}')
    parser.add_argument('--out', '-o', required=True, metavar='FILE.md',
                        help='the Markdown file to write (replaced if it exists)')
    parser.add_argument('--readme', metavar='FILE',
                        help='also put the table between the <!-- thesis-table:begin --> and '
                             '<!-- thesis-table:end --> lines of FILE (default: no such file)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out, is_file=True)
    if args.readme:
        check_readme(parser, args.readme, MARKER)
    thesis, source = thesis_arg(parser, args.thesis)
    try:
        rows = read_results(args.results)
    except ValueError as e:
        parser.error('--results: {}'.format(e))
    if not rows:
        parser.error('--results: {} hold no rows'.format(', '.join(args.results)))
    summary = summarise(rows, thesis)
    rec = provenance.record('python -m Friendly.thesis_table',
                            argv if argv is not None else sys.argv[1:])
    block = format_table(summary, rec, source, training_machines(args.results, summary),
                         test_images(args.results))
    atomic_write_text(args.out, '# Friendly: the thesis\'s figures beside ours\n\n' + block)
    if args.readme:
        write_readme(parser, args.readme, MARKER, block)
    print(block)
    return summary


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
