"""The report of :mod:`Friendly.evaluate`: ``table.md`` (thesis Tables 3.2 and 3.3), ``table.csv``,
``results.json`` and ``accuracy_bars.png``.

The evaluator (:func:`Friendly.evaluation.evaluate_set`) names its attacks ``fgsm``,
``blackbox``, ``pgd`` and ``pgd_blackbox``; the report keeps its own keys (:data:`METRICS`:
``fgsm_white``, ``fgsm_black``, ...), which name the columns of ``table.csv`` and of
``Friendly.run_all``'s ``results.csv``; :data:`REPORT_KEYS` maps one onto the other.
"""
import os
import textwrap

import numpy

from Friendly.evaluation import PGD_BLACKBOX
from Friendly.runs import ordered
from lenses_common import provenance
from lenses_common.runfolder import atomic_path, atomic_write_json, atomic_write_text
from lenses_common.sweep import results_csv

#: (report key, label) of each column, in order.
METRICS = (
    ('clean', 'clean'),
    ('fgsm_white', 'white-box FGSM'),
    ('fgsm_black', 'black-box FGSM'),
    ('pgd_white', 'white-box PGD'),
    ('pgd_black', 'black-box PGD'),
)

#: The report key of each result of :func:`Friendly.evaluation.evaluate_set`.
REPORT_KEYS = {'clean': 'clean', 'fgsm': 'fgsm_white', 'blackbox': 'fgsm_black',
               'pgd': 'pgd_white', PGD_BLACKBOX: 'pgd_black'}


def accuracy_pct(result):
    """Percent correct per report key of one network's :func:`~Friendly.evaluation.evaluate_set`
    result (its worst case left out)."""
    pct = {REPORT_KEYS[k]: 100.0 * int(v.sum()) / len(v) for k, v in result.items()
           if k in REPORT_KEYS}
    return {k: pct[k] for k, _ in METRICS if k in pct}


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
    """``table.csv``: one row per network, ``network`` and a ``<key>_pct`` column per metric."""
    names = ordered(results)
    present = [k for k, _ in METRICS if any(k in results[n] for n in names)]
    rows = [dict({'network': n}, **{k + '_pct': '{:.2f}'.format(v) for k, v in results[n].items()
                                    if k in present}) for n in names]
    return results_csv(rows, ['network'] + [k + '_pct' for k in present])


def plot_bars(results, path, eps, test_images=None, footer=None):
    """Grouped bar chart: one group per network, one bar per metric; ``footer`` (the command,
    machine and date) in small print under it."""
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
    ax.set_ylim(0, 114)   # room above 100% for the legend
    ax.set_yticks(range(0, 101, 20))
    images = '' if test_images is None else ', {:,} test images'.format(test_images)
    ax.set_title('MNIST accuracy, clean and under attack (FGSM eps {:g}{})'.format(eps, images))
    ax.legend(loc='upper center', ncol=len(present), fontsize='small')
    ax.grid(axis='y', alpha=0.3)
    foot = textwrap.wrap(footer or '', 130)
    if foot:
        fig.set_size_inches(8, 4 + 0.14 * len(foot))
        fig.text(0.01, 0.01, '\n'.join(foot), fontsize=6, va='bottom', color='dimgrey')
    fig.tight_layout(rect=(0, (0.03 + 0.14 * len(foot)) / (4 + 0.14 * len(foot)) if foot else 0,
                           1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)


def write_outputs(out, results, record, text):
    """``results.json`` (``record`` with ``accuracy_pct``), ``table.md`` (``text``), ``table.csv``
    and ``accuracy_bars.png`` into ``out``."""
    # results.json first: a write that fails (a full disk) never leaves tables without it.
    atomic_write_json(os.path.join(out, 'results.json'), dict({'accuracy_pct': results}, **record))
    atomic_write_text(os.path.join(out, 'table.md'), text)
    atomic_write_text(os.path.join(out, 'table.csv'), format_csv(results))
    rec = provenance.record('python -m Friendly.evaluate', record['command'][1:])
    plot_bars(results, os.path.join(out, 'accuracy_bars.png'), record['eps'],
              record.get('test_images'), provenance.caption(rec).replace('`', ''))
