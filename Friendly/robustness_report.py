"""The report of :mod:`Friendly.robustness`: gradient-masking flags, the Markdown and CSV tables,
the eps curve's picture, the files written, and ``--combine``'s merge of partial reports.
"""
import os

from Friendly import attacks
from Friendly.runs import ordered
from Friendly.evaluation import ATTACKS
from lenses_common import provenance
from lenses_common.runfolder import atomic_path, atomic_write_json, atomic_write_text, load_json
from lenses_common.sweep import results_csv

COLUMNS = ('clean',) + ATTACKS + ('worst_case', 'zero_grad_fraction',
                                  'zero_grad_fraction_float64', 'source_zero_grad_fraction',
                                  'source_zero_grad_fraction_float64')
CURVE_EPS = (0, 8, 16, 32, 48, 64, 77, 96, 128)
UNBOUNDED_EPS = 255
# Flag thresholds, in percentage points / percent.
WORST_GAP = 5.0
ZERO_GRAD_MAX = 5.0
BN_GAP = 5.0
UNBOUNDED_MAX = 5.0


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
    source_zero = row.get('source_zero_grad_fraction')
    if source_zero is not None and source_zero > ZERO_GRAD_MAX:
        lines.append('{}: the black-box source\'s float32 input gradient is exactly zero on '
                     '{:.2f}% of the images ({:.2f}% in float64): its FGSM examples leave them '
                     'unchanged (black-box {:.2f}%, with float64 source gradients {:.2f}%).'.format(
                         name, source_zero, row.get('source_zero_grad_fraction_float64', 0.0),
                         row['blackbox'], row.get('blackbox_float64', float('nan'))))
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
                 else 'running averages'), '']
    if settings.get('provenance'):
        lines += ['Made by ' + provenance.caption(settings['provenance'], [settings['seed']]
                                                  if settings.get('seed') is not None else None)
                  + '.', '']
    lines += ['| network | images | pgd steps x restarts | ' + ' | '.join(COLUMNS) + ' |',
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
              'copy\'s gradients; `blackbox` is FGSM from a separate S network, '
              '`blackbox_float64` the same with the gradient of that network\'s float64 copy; '
              '`worst_case` counts an image only if it survives all of them (and is correct '
              'clean); `zero_grad_fraction` is the share of images whose float32 input gradient '
              'of the thesis loss is exactly zero (`_float64`: of the float64 copy), '
              '`source_zero_grad_fraction` the same share for the black-box source network.', '',
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
    """``robustness.csv``: network, images and the :data:`COLUMNS` of every row."""
    return results_csv([dict({'network': n, 'images': images[n]},
                             **{k: '{:.2f}'.format(rows[n][k]) for k in COLUMNS})
                        for n in ordered(rows)], ('network', 'images') + COLUMNS)


def curve_caption(curve, settings):
    """The eps curve's heading: preset, image count(s) and seed, then the provenance line."""
    counts = sorted({curve[n]['images'] for n in curve})
    images = ('first {} test images'.format(counts[0]) if len(counts) == 1 else
              'first {} test images (per network)'.format('/'.join(map(str, counts))))
    seed = settings.get('seed')
    head = 'Friendly.robustness, preset {}, {}, seed {}{}'.format(
        settings.get('preset'), images, '?' if seed is None else seed,
        '' if settings.get('source_seed') is None else
        ' (black-box source seed {})'.format(settings['source_seed']))
    prov = settings.get('provenance')
    return head, (provenance.caption(prov) if prov else '')


def plot_curve(curve, path, settings=None):
    """Two panels against eps, one line per network: the thesis's white-box FGSM, and the worst
    case per image over the curve's attacks. The heading names preset, images and seed."""
    import textwrap
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    settings = settings or {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharey=True)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    counts = {curve[n]['images'] for n in curve}
    for i, n in enumerate(ordered(curve)):
        c = curve[n]
        eps = [float(e) for e in c['eps']]
        label = n if len(counts) == 1 else '{} ({} images)'.format(n, c['images'])
        for ax, kind in zip(axes, ('white_box', 'worst_case')):
            ax.plot(eps, [c['accuracy'][str(e)][kind] for e in c['eps']], '-o', ms=3,
                    color=colors[i % len(colors)], label=label)
    titles = ('white-box FGSM (the thesis\'s attack)',
              'worst case per image over every attack of the table')
    for ax, title in zip(axes, titles):
        ax.axvline(attacks.THESIS_EPS, color='grey', lw=1, ls=':')
        ax.text(attacks.THESIS_EPS + 1, 101, 'thesis eps 77', color='grey', fontsize='small',
                va='bottom')
        ax.set_xlabel('eps (L-infinity, pixel units 0..255)')
        ax.set_ylim(0, 108)
        ax.set_xlim(left=0)
        ax.set_title(title, fontsize='medium')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('test accuracy (%)')
    axes[1].legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize='small')
    head, foot = curve_caption(curve, settings)
    fig.suptitle('MNIST accuracy against attack budget: ' + head, fontsize='medium')
    foot_lines = textwrap.wrap(foot, 160)
    if foot_lines:
        fig.set_size_inches(11, 5 + 0.16 * len(foot_lines))
        fig.text(0.01, 0.01, '\n'.join(foot_lines), fontsize='x-small', va='bottom',
                 color='dimgrey')
    bottom = (0.025 + 0.16 * len(foot_lines)) / (5 + 0.16 * len(foot_lines)) if foot_lines else 0
    fig.tight_layout(rect=(0, bottom, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)


# What must agree between reports that --combine merges.
SHARED_KEYS = ('eps', 'bn_eval', 'batchsize', 'preset', 'curve_eps', 'unbounded_eps', 'model',
               'source', 'source_seed', 'seed', 'thresholds')
MERGED_KEYS = ('budgets', 'accuracy_pct', 'images', 'eps_curve', 'runs')


def write_outputs(out, report):
    os.makedirs(out, exist_ok=True)
    text = format_markdown(report['accuracy_pct'], report['images'], report['flags'],
                           report['eps_curve'], report)
    atomic_write_text(os.path.join(out, 'robustness.md'), text)
    atomic_write_text(os.path.join(out, 'robustness.csv'),
                      format_csv(report['accuracy_pct'], report['images']))
    plot_curve(report['eps_curve'], os.path.join(out, 'eps_curve.png'), report)
    atomic_write_json(os.path.join(out, 'robustness.json'), report)
    print(text)
    return report


def combine(paths):
    """One report from several ``robustness.json`` of disjoint networks (evaluated apart, say in
    parallel); raises ``ValueError`` when their settings differ or a network repeats."""
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
