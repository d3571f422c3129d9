"""The Markdown summary of ``Counting.run_all``: ``summary.md`` of one seed (counters, pictures,
outline measure, detection scores) and, for a sweep over seeds, ``table.md`` (mean +- standard
deviation over the seeds of every counting metric in ``results.csv``)."""
from lenses_common import sweep

#: The summary's record beside summary.md: preset, seed, provenance, data and every counter.
SUMMARY_JSON = 'summary.json'

#: results.csv's metric columns: (column, label, format of the table).
METRIC_COLUMNS = (('mae', 'MAE', '{:.3f}'), ('baseline_mae', 'baseline MAE', '{:.3f}'),
                  ('mae_ratio', 'baseline / ours', '{:.2f}'), ('rmse', 'RMSE', '{:.3f}'),
                  ('exact', 'exact', '{:.3f}'), ('off_by_one', 'off by one', '{:.3f}'))


def result_rows(seed, counters):
    """results.csv's rows of one seed: one per counter and shape type."""
    rows = []
    for c in counters:
        for typ, m in (c.get('metrics') or {}).items():
            o, b = m['ours'], m['baseline']
            values = dict(mae=o['mae'], baseline_mae=b['mae'], mae_ratio=m['mae_ratio'],
                          rmse=o['rmse'], exact=o['exact'], off_by_one=o['off_by_one'])
            rows.append(dict({'seed': seed, 'counter': c['name'], 'type': typ},
                             **{k: '{:.6g}'.format(v) for k, v in values.items()}))
    return rows


RESULT_COLUMNS = ['seed', 'counter', 'type'] + [c for c, _, _ in METRIC_COLUMNS]


def mean_std_markdown(preset, seeds, rows, command):
    lines = ['# Counting over seeds {} (preset `{}`)'.format(', '.join(map(str, seeds)), preset),
             '', 'Made by `{}`. Mean ± sample standard deviation (n - 1) over the seeds; n = '
             'seeds with a result; exact and off by one are fractions of the test images. One '
             'row per seed, counter and type in results.csv; each seed\'s summary in '
             'seed-<S>/summary.md.'.format(command), '',
             '| counter | type | ' + ' | '.join(label for _, label, _ in METRIC_COLUMNS) + ' | n |',
             '| --- | --- | ' + ' | '.join('---:' for _ in METRIC_COLUMNS) + ' | ---: |']
    keys = list(dict.fromkeys((r['counter'], r['type']) for r in rows))
    for counter, typ in keys:
        mine = [r for r in rows if (r['counter'], r['type']) == (counter, typ)]
        lines.append('| {} | {} | '.format(counter, typ) + ' | '.join(
            sweep.format_mean_std([r[k] for r in mine], fmt) for k, _, fmt in METRIC_COLUMNS) +
            ' | {} |'.format(len(mine)))
    return '\n'.join(lines) + '\n'


def _fmt_pct(v):
    return '{:.1%}'.format(v)


def summary_markdown(preset, d, seed, command, counters, elapsed):
    """summary.md of one seed; ``d`` is the preset's dataset options (presets.DATASETS)."""
    lines = ['# Counting (thesis chapter 2): preset `{}`'.format(preset), '',
             'Made by `{}` (seed {}) in {:.0f} s.'.format(command, seed, elapsed), '']
    size = ('one scale in {}..{} px per image (limit scale resampling)'.format(*d['scale'])
            if d['shape_scaling'] else 'every shape at scale {} px'.format(d['scale'][0]))
    lines += ['Data: {} training and {} test images of {}x{}, triangles and squares, at most {} '
              'shapes per image, {}, random rotations. Baseline: always predict the training '
              'set\'s mean count.'.format(d['n_train'], d['n_test'], d['image_size'][0],
                                          d['image_size'][1], d['shape_limit'], size), '']
    lines += ['| counter | arch | BRN | optimizer, lr, epochs | type | MAE | baseline MAE | '
              'baseline / ours | RMSE (baseline) | exact (baseline) | off by one (baseline) |',
              '| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    for c in counters:
        t = c['training']
        if c.get('error'):
            lines.append('| {} | {} | {} | {}, {}, {} | - | {} | | | | | |'.format(
                c['activation'], t['arch'], 'yes' if c['batch_renorm'] else 'no',
                t['optimizer'], t['lr'], t['epoch'], c['error']))
            continue
        for typ, m in c['metrics'].items():
            o, b = m['ours'], m['baseline']
            lines.append('| {} | {} | {} | {}, {}, {} | {} | {:.3f} | {:.3f} | {:.2f}x | '
                         '{:.3f} ({:.3f}) | {} ({}) | {} ({}) |'.format(
                             c['activation'], t['arch'], 'yes' if c['batch_renorm'] else 'no',
                             t['optimizer'], t['lr'], t['epoch'], typ, o['mae'], b['mae'],
                             m['mae_ratio'], o['rmse'], b['rmse'], _fmt_pct(o['exact']),
                             _fmt_pct(b['exact']), _fmt_pct(o['off_by_one']),
                             _fmt_pct(b['off_by_one'])))
    lines += [''] + side_by_side_markdown(counters) + typed_markdown(counters)
    lines += ['## Pictures', '']
    for c in counters:
        if c.get('error'):
            continue
        name = c['name']
        lines.append('### {}'.format(name))
        lines.append('')
        lines.append('- scatter plot: [{0}/scatter.png]({0}/scatter.png)'.format(name))
        for kind in ('saliency', 'detection'):
            pics = c.get(kind, [])
            if pics:
                links = ', '.join('[{0}]({0})'.format(p) for p in pics[:8])
                lines.append('- {} ({}): {}'.format(kind, c.get(kind + '_note', ''), links)
                             if c.get(kind + '_note') else '- {}: {}'.format(kind, links))
            elif c.get(kind + '_error'):
                lines.append('- {}: not made ({})'.format(kind, c[kind + '_error']))
        for tag, sheet in (c.get('contact_sheets') or {}).items():
            lines.append('- contact sheet (image | saliency | detection groups, method {}): '
                         '[{}]({})'.format(tag, sheet, sheet))
        lines.append('')
    lines += outline_markdown(counters) + detection_markdown(counters)
    return '\n'.join(lines)


def _network(c):
    t = c['training']
    return '`{}` {}{}'.format(t['arch'], c['activation'], ' + BRN' if c['batch_renorm'] else '')


def side_by_side_markdown(counters):
    """One table of every counter, whatever its network: counting error against the baseline,
    the outline measure (raw and picture) and the recall of every detection method."""
    rows = [c for c in counters if c.get('metrics')]
    if not rows:
        return []
    methods = list(dict.fromkeys(tag for c in rows for tag in c.get('detection_methods', {})))
    lines = ['## Every counter side by side', '',
             'Test MAE per type (baseline / ours in brackets: how many times the baseline\'s '
             'error ours is), the outline measure (outline/interior, outline/background; medians '
             'over the scored images, of the raw saliency and of its tenth-root picture) and the '
             'detection recall at IoU 0.5 of every method (details below; `-`: not run, the '
             'ReLU counters have no second derivative).', '',
             '| counter | network | MAE ' + ' / '.join(next(iter(
                 [list(c['metrics']) for c in rows]))) + ' | outline raw | outline picture | ' +
             ' | '.join('recall `{}`'.format(m) for m in methods) + ' |',
             '| --- | --- | ---: | ---: | ---: | ' + ' | '.join('---:' for _ in methods) + ' |']
    for c in rows:
        mae = ' / '.join('{:.3f} ({:.2f}x)'.format(m['ours']['mae'], m['mae_ratio'])
                         for m in c['metrics'].values())
        o, g = c.get('outline') or {}, c.get('outline_png') or {}
        recalls = []
        for m in methods:
            d = (c.get('detection_methods') or {}).get(m)
            recalls.append('-' if not d or d.get('error') else fmt_opt(d['recall']))
        lines.append('| {} | {} | {} | {}, {} | {}, {} | {} |'.format(
            c['name'], _network(c), mae, fmt_opt(o.get('outline_interior_median')),
            fmt_opt(o.get('outline_background_median')),
            fmt_opt(g.get('outline_interior_median')),
            fmt_opt(g.get('outline_background_median')), ' | '.join(recalls)))
    return lines + ['']


def typed_markdown(counters):
    """Per-type recall of every method and, for the typed ones, the type accuracy."""
    rows = [(c, tag, s) for c in counters for tag, s in (c.get('detection_methods') or {}).items()
            if not s.get('error') and s.get('recall_by_type')]
    if not rows:
        return []
    seen = set(k for _, _, s in rows for k in s['recall_by_type'])
    kinds = [k for k in ('tri', 'sq') if k in seen] + sorted(seen - {'tri', 'sq'})
    lines = ['## Shapes told apart by type', '',
             'The `_typed` methods run the detection once per output (the saliency and second '
             'derivative of that output alone, round(output) groups) and label every group with '
             'its type; the others differentiate the sum of the outputs (the thesis\'s). Recall '
             'per annotated type (the matching at IoU 0.5 ignores types); type accuracy: the '
             'share of the matched groups whose type is the matched shape\'s.', '',
             '| counter | network | method | recall | ' + ' | '.join(
                 'recall {}'.format(k) for k in kinds) + ' | type accuracy | precision |',
             '| --- | --- | --- | ---: | ' + ' | '.join('---:' for _ in kinds) + ' | ---: | ---: |']
    for c, tag, s in rows:
        lines.append('| {} | {} | {} | {} | {} | {} | {} |'.format(
            c['name'], _network(c), tag, fmt_opt(s['recall']),
            ' | '.join(fmt_opt(s['recall_by_type'].get(k)) for k in kinds),
            fmt_opt(s.get('type_accuracy')), fmt_opt(s['precision'])))
    return lines + ['']


def outline_markdown(counters):
    """The outline measure of every counter (Counting.outline)."""
    rows = [c for c in counters if c.get('outline')]
    if not rows:
        return []
    lines = ['## Does the saliency outline the shapes?', '',
             'Mean saliency on the shapes\' outlines (2 px each side of the boundary) against '
             'the mean inside the shapes (eroded by 2 px) and on the background (farther than '
             '2 px), from the annotations (`Counting.outline`): of the raw saliency, and of its '
             'picture (the 0..255 values of the tenth-root `saliency/*.png`). Goals: '
             'outline/interior >= 3, outline/background >= 1.5; the thesis\'s own figure (a '
             'tenth-root picture) measures about 6.6 and 1.9.', '',
             '| counter | images | raw: outline/interior median (mean) | raw: outline/background '
             'median (mean) | pictured images, raw: medians | picture: outline/interior, '
             'outline/background medians | pictured images, picture: medians |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    for c in rows:
        o, p = c['outline'], c.get('outline_pictured', {})
        g, q = c.get('outline_png', {}), c.get('outline_png_pictured', {})
        lines.append('| {} | {} | {} ({}) | {} ({}) | {}, {} | {}, {} | {}, {} |'.format(
            c['name'], o['images'], fmt_opt(o['outline_interior_median']),
            fmt_opt(o['outline_interior_mean']), fmt_opt(o['outline_background_median']),
            fmt_opt(o['outline_background_mean']), fmt_opt(p.get('outline_interior_median')),
            fmt_opt(p.get('outline_background_median')),
            fmt_opt(g.get('outline_interior_median')), fmt_opt(g.get('outline_background_median')),
            fmt_opt(q.get('outline_interior_median')),
            fmt_opt(q.get('outline_background_median'))))
    return lines + ['']


def detection_markdown(counters):
    """Every detection method's pooled scores per counter."""
    rows = [c for c in counters if c.get('detection_methods')]
    if not rows:
        return []
    from Counting.detection import AUTO_LEVELS, DEFAULT_AUTO_RULE, DEFAULT_THRESHOLD
    rule = {'logsplit': 'the cut between the two K-means clusters of the logarithms of the '
                        'group\'s own importance values',
            'fraction': '{:g} x the group\'s own largest importance'.format(
                AUTO_LEVELS['fraction']),
            'quantile': 'the {:g} quantile of the group\'s own non-zero importance '
                        'values'.format(AUTO_LEVELS['quantile'])}[DEFAULT_AUTO_RULE]
    lines = ['## Detection scores', '',
             'Boxes against the annotated ones, greedy one-to-one matching at IoU >= 0.5, pooled '
             'over the test images. Methods: `second` the thesis\'s loop with its absolute '
             'threshold {:g}; `second_auto` the same loop with `--threshold auto` ({}); '
             '`second_auto_connected` that, keeping of each group only the part that touches its '
             'seed (`--connected`, beyond the thesis); `upper` saliency between 0.05 and 0.5 of '
             'its largest value; `kmeans` the middle of 3 K-means clusters of the '
             'saliency; `_typed`: the same once per output (below).'.format(
                 DEFAULT_THRESHOLD, rule), '',
             '| counter | method | images | predicted | annotated | matched | precision | recall | '
             'mean IoU | detections.json |',
             '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |']
    for c in rows:
        for tag, s in c['detection_methods'].items():
            if s.get('error'):
                lines.append('| {} | {} | {} | | | | | | | |'.format(c['name'], tag, s['error']))
                continue
            lines.append('| {} | {} | {} | {} | {} | {} | {} | {} | {} | [{}]({}) |'.format(
                c['name'], tag, s['images'], s['predicted'], s['truth'], s['matched'],
                fmt_opt(s['precision']), fmt_opt(s['recall']), fmt_opt(s['mean_iou']),
                s['json'], s['json']))
    return lines + ['']


def fmt_opt(v):
    if v is None:
        return '-'
    return '{:.2f}'.format(v) if abs(v) < 1e4 else '{:.2g}'.format(v)
