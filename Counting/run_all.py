"""Chapter 2 end to end (``make counting``): data, three counters, evaluation, saliency, detection.

    python -m Counting.run_all --preset quick --seed 0 --out results --data-dir data/counting

1. generates the training and test sets into ``<data-dir>/<preset>/{train,test}`` (reused when
   their ``settings.json`` matches the preset);
2. trains the ReLU, SoftPlus and sigmoid (+ Batch Renormalization, as in the thesis) counters into
   ``<out>/counting/runs/<name>`` (skipped when ``model.npz`` exists with matching settings, resumed
   from the newest snapshot when one exists);
3. evaluates each on the test set (``<out>/counting/<name>/metrics.*``, ``scatter.png``);
4. writes saliency pictures and detection pictures for a few test images
   (``<out>/counting/<name>/saliency``, ``.../detection``);
5. writes ``<out>/counting/summary.md``.

Presets (see Counting/README.md for what each one shortens): ``smoke`` for CI (< 3 minutes),
``quick`` (default, <= 30 minutes on a 2-core CPU), ``thesis`` (1000 x 1000 images,
``convolutionallarge``, 100 epochs: meant for a GPU).
"""
import argparse
import glob
import os
import shlex
import sys
import time

from lenses_common import compat  # noqa: F401  (before chainer)

from lenses_common.device import add_device_argument, device_from_args
from lenses_common.runfolder import atomic_write_text, check_out_arg, load_json, move_aside
from lenses_common.seeding import add_seed_argument

#: Dataset options per preset, passed to Counting.datasets.generate_dataset.
#: 87 x 87 is the one image size at which every pixel reaches the small network's output: its
#: last convolution (3 x 3, stride 5) reads a 3 x 3 map there; on larger images it skips two of
#: every five rows and columns of the map before it (at 1000 x 1000 it sees about half the image).
#: quick and smoke draw every shape at one size (the thesis's first experiment, thesis 2.2.3): with
#: a scale drawn per image the small network overfits at this size and does not beat the baseline
#: within the time budget (measured; see Counting/README.md). The `local` counter tried for
#: outlining saliency counted no better than the baseline and stays an option (the README's trials).
DATASETS = {
    'smoke': dict(n_train=1500, n_test=100, image_size=(87, 87), shape_limit=6, scale=(11, 11),
                  shape_scaling=False),
    'quick': dict(n_train=10000, n_test=1000, image_size=(87, 87), shape_limit=10, scale=(11, 11),
                  shape_scaling=False),
    # The loader holds the images as uint8 in memory: 5,500 of 1000 x 1000 take 16.5 GB.
    'thesis': dict(n_train=5000, n_test=500, image_size=(1000, 1000), shape_limit=20,
                   scale=(60, 120), shape_scaling=True),
}
COMMON_DATA = dict(types=('tri', 'sq'), shape_rotations=True, limit_scale_resampling=True)

#: The three counters of the thesis: (run name, activation, Batch Renormalization).
COUNTERS = (
    ('relu', 'relu', False),
    ('softplus', 'softplus', False),
    ('sigmoid_brn', 'sigmoid', True),
)

#: Training options per preset; per-counter overrides below.
TRAINING = {
    'smoke': dict(arch='convolutional', epoch=5, batchsize=20, optimizer='rmsprop', lr=1e-3,
                  snapshot_interval=1),
    'quick': dict(arch='convolutional', epoch=20, batchsize=20, optimizer='rmsprop', lr=1e-3,
                  snapshot_interval=5),
    'thesis': dict(arch='convolutionallarge', epoch=100, batchsize=20, optimizer='sgd',
                   lr=0.07, snapshot_interval=10),
}
#: The author's default optimiser is plain SGD; he added momentum (0.85) for the sigmoid counters.
OVERRIDES = {
    ('thesis', 'sigmoid_brn'): dict(optimizer='momentum'),
    ('quick', 'sigmoid_brn'): dict(lr=1e-2),
    ('smoke', 'sigmoid_brn'): dict(lr=1e-2),
}

#: Test images that get saliency and detection pictures.
N_PICTURES = {'smoke': 2, 'quick': 4, 'thesis': 4}

#: Keys of a dataset's settings.json that must match for it to be reused.
DATA_KEYS = ('count', 'image_size', 'types', 'shape_limit', 'scale', 'shape_scaling',
             'shape_rotations', 'limit_scale_resampling', 'seed', 'min_gap')
#: Keys of a run's settings.json that must match for it to be reused or resumed.
RUN_KEYS = ('arch', 'activation', 'batch_renorm', 'optimizer', 'lr', 'batchsize', 'epoch',
            'seed', 'types', 'image_size', 'n_train', 'train')


def dataset_options(preset, split, seed):
    d = DATASETS[preset]
    opts = dict(COMMON_DATA, image_size=d['image_size'], shape_limit=d['shape_limit'],
                scale=d['scale'], shape_scaling=d['shape_scaling'])
    if d.get('min_gap'):
        opts['min_gap'] = d['min_gap']
        opts['max_attempts'] = d.get('max_attempts', 100000)
    opts['count'] = d['n_train'] if split == 'train' else d['n_test']
    # Different seeds keep the test images apart from the training images.
    opts['seed'] = seed * 2 + (0 if split == 'train' else 1)
    return opts


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _matches(existing, wanted, keys):
    return all(_norm(existing.get(k)) == _norm(wanted.get(k)) for k in keys if k in wanted)


def ensure_dataset(folder, opts, log):
    """Generate ``folder`` unless it already holds a dataset made with the same options."""
    from Counting.datasets import generate_dataset
    settings_path = os.path.join(folder, 'settings.json')
    if os.path.exists(os.path.join(folder, 'truths.json')) and os.path.exists(settings_path):
        try:
            existing = load_json(settings_path)
        except ValueError:
            existing = {}
        if _matches(existing, opts, DATA_KEYS):
            log('dataset {}: reusing ({} images)'.format(folder, opts['count']))
            return False
    if os.path.isdir(folder) and os.listdir(folder):
        log('dataset {}: holds other data; moved to {}'.format(folder, move_aside(folder)))
    log('dataset {}: generating {} images of {}x{}'.format(folder, opts['count'],
                                                           *opts['image_size']))
    kwargs = dict(opts)
    count = kwargs.pop('count')
    generate_dataset(folder, count, workers=2, progress=True, **kwargs)
    return True


def train_argv(preset, name, activation, batch_renorm, train_dir, test_dir, run_dir, seed,
               device):
    t = dict(TRAINING[preset], **OVERRIDES.get((preset, name), {}))
    argv = ['--train', train_dir, '--out', run_dir, '--arch', t['arch'],
            '--activation', activation, '--optimizer', t['optimizer'], '--lr', repr(t['lr']),
            '--batchsize', str(t['batchsize']), '--epoch', str(t['epoch']),
            '--snapshot-interval', str(t['snapshot_interval']), '--seed', str(seed),
            '--eval-interval', str(max(1, t['epoch'] // 5))]
    if test_dir:
        argv += ['--test', test_dir]
    if batch_renorm:
        argv.append('--batch-renorm')
    if device is not None:
        argv += ['--device', device]
    return argv, t


def run_state(run_dir, wanted):
    """'done', 'resume' or 'fresh' for a run folder, given the settings it should have."""
    settings_path = os.path.join(run_dir, 'settings.json')
    if not os.path.exists(settings_path):
        return 'fresh'
    try:
        existing = load_json(settings_path)
    except ValueError:
        return 'fresh'
    if not _matches(existing, wanted, RUN_KEYS):
        return 'fresh'
    if os.path.exists(os.path.join(run_dir, 'model.npz')):
        return 'done'
    if glob.glob(os.path.join(run_dir, 'snapshot_iter_*')):
        return 'resume'
    return 'fresh'


def clear_run(run_dir):
    """Move an earlier run with other settings aside to ``RUN.old-N`` (nothing is deleted);
    returns the new name, or None when ``run_dir`` holds no model or snapshot."""
    if glob.glob(os.path.join(glob.escape(run_dir), 'snapshot_iter_*')) or os.path.exists(
            os.path.join(run_dir, 'model.npz')):
        return move_aside(run_dir)
    return None


def _fmt_pct(v):
    return '{:.1%}'.format(v)


def summary_markdown(preset, seed, command, data, counters, elapsed):
    lines = ['# Counting (thesis chapter 2): preset `{}`'.format(preset), '',
             'Made by `{}` (seed {}) in {:.0f} s.'.format(command, seed, elapsed), '']
    d = DATASETS[preset]
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
    lines += ['', '## Pictures', '']
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
        if c.get('contact_sheet'):
            lines.append('- contact sheet (image | saliency | detection groups, method {}): '
                         '[{}]({})'.format(c['contact_sheet_method'], c['contact_sheet'],
                                            c['contact_sheet']))
        lines.append('')
    lines += outline_markdown(counters) + detection_markdown(counters)
    return '\n'.join(lines)


def outline_markdown(counters):
    """The outline measure of every counter (Counting.outline)."""
    rows = [c for c in counters if c.get('outline')]
    if not rows:
        return []
    lines = ['## Does the saliency outline the shapes?', '',
             'Mean raw saliency on the shapes\' outlines (2 px each side of the boundary) against '
             'the mean inside the shapes (eroded by 2 px) and on the background (farther than '
             '2 px), from the annotations (`Counting.outline`). Goals: outline/interior >= 3, '
             'outline/background >= 1.5; the thesis\'s own figure measures about 6.6 and 1.9.',
             '', '| counter | images | outline/interior median (mean) | outline/background median '
             '(mean) | pictured images: outline/interior, outline/background medians |',
             '| --- | ---: | ---: | ---: | ---: |']
    for c in rows:
        o, p = c['outline'], c.get('outline_pictured', {})
        lines.append('| {} | {} | {} ({}) | {} ({}) | {}, {} |'.format(
            c['name'], o['images'], _fmt_opt(o['outline_interior_median']),
            _fmt_opt(o['outline_interior_mean']), _fmt_opt(o['outline_background_median']),
            _fmt_opt(o['outline_background_mean']), _fmt_opt(p.get('outline_interior_median')),
            _fmt_opt(p.get('outline_background_median'))))
    return lines + ['']


def detection_markdown(counters):
    """Every detection method's pooled scores per counter."""
    rows = [c for c in counters if c.get('detection_methods')]
    if not rows:
        return []
    from Counting.detection import AUTO_LEVELS, DEFAULT_THRESHOLD
    lines = ['## Detection scores', '',
             'Boxes against the annotated ones, greedy one-to-one matching at IoU >= 0.5, pooled '
             'over the test images. Methods: `second` the thesis\'s loop with its absolute '
             'threshold {:g}; `second_auto` the same loop with `--threshold auto` (the {} '
             'quantile of the group\'s own non-zero importance values); `upper` saliency between '
             '0.05 and 0.5 of its largest value; `kmeans` the middle of 3 K-means clusters of '
             'the saliency.'.format(
                 DEFAULT_THRESHOLD, AUTO_LEVELS['quantile']), '',
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
                _fmt_opt(s['precision']), _fmt_opt(s['recall']), _fmt_opt(s['mean_iou']),
                s['json'], s['json']))
    return lines + ['']


#: Detection methods scored on the test images: (tag, Counting.detect options). The thesis's loop
#: needs a non-zero second derivative, so ReLU counters get the first-derivative variants only.
DETECTION_METHODS = (
    ('second', ['--method', 'second']),
    ('second_auto', ['--method', 'second', '--threshold', 'auto']),
    ('upper', ['--method', 'upper']),
    ('kmeans', ['--method', 'kmeans']),
)
#: Test images the detection methods and the outline measure are scored on.
N_SCORED = {'smoke': 10, 'quick': 50, 'thesis': 50}


def _methods_for(activation):
    return [m for m in DETECTION_METHODS if activation != 'relu' or m[0] not in (
        'second', 'second_auto')]


def pictures_and_scores(info, run_dir, test_dir, counter_out, results_dir, n_pictures, dev,
                        log, n_scored=None):
    """Outline measure, every detection method's scores and the contact sheet of one counter,
    into ``info`` (the summary's record of the counter)."""
    from Counting import contact_sheet, outline
    from Counting import detect as detect_mod
    from Counting.models import load_counter
    annotations_path = os.path.join(test_dir, 'annotations.json')
    if not os.path.exists(annotations_path):
        return
    annotations = load_json(annotations_path)
    names = sorted(annotations)
    n_scored = min(len(names), n_scored or max(n_pictures, 50))
    model, settings = load_counter(run_dir)
    try:
        per_image = outline.measure_run(model, settings, test_dir, names[:n_scored], annotations)
        info['outline'] = outline.summarize(list(per_image.values()))
        info['outline_pictured'] = outline.summarize(
            [per_image[n] for n in names[:n_pictures]])
    except ValueError as e:
        info['outline_error'] = str(e)
    info['detection_methods'] = {}
    for tag, options in _methods_for(info['activation']):
        det_dir = os.path.join(counter_out, 'detection', tag)
        det_argv = ['--run', run_dir, '--images', test_dir, '--limit', str(n_scored),
                    '--pictures', str(n_pictures), '--out', det_dir,
                    '--annotations', annotations_path] + options + dev
        try:
            code = detect_mod.main(det_argv)
        except SystemExit as e:
            code = e.code
        det_json = os.path.join(det_dir, 'detections.json')
        if code or not os.path.exists(det_json):
            info['detection_methods'][tag] = {'error': 'Counting.detect exited with {}'.format(
                code)}
            continue
        det = load_json(det_json)
        info['detection_methods'][tag] = dict(det['scores'], json=os.path.relpath(
            det_json, results_dir))
        s = det['scores']
        log('counter {} detection {}: precision {}, recall {}, mean IoU {} ({} images)'.format(
            info['name'], tag, _fmt_opt(s['precision']), _fmt_opt(s['recall']),
            _fmt_opt(s['mean_iou']), s['images']))
    # The contact sheet shows the automatic second-derivative method (upper for ReLU).
    tag, options = _methods_for(info['activation'])[1 if info['activation'] != 'relu' else 0]
    sheet = os.path.join(counter_out, 'contact_sheet.png')
    try:
        code = contact_sheet.main(['--run', run_dir, '--images', test_dir, '--limit',
                                   str(n_pictures), '--out', sheet] + options + dev)
    except SystemExit as e:
        code = e.code
    if not code:
        info['contact_sheet'] = os.path.relpath(sheet, results_dir)
        info['contact_sheet_method'] = tag
    info['detection'] = _pictures(os.path.join(counter_out, 'detection', tag), results_dir,
                                  '_boxes.png')
    info['detection_note'] = 'method {}'.format(tag)


def _fmt_opt(v):
    return '-' if v is None else '{:.2f}'.format(v)


def _pictures(folder, root, suffix):
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.relpath(os.path.join(folder, n), root)
                  for n in os.listdir(folder) if n.endswith(suffix))


def build_parser():
    p = argparse.ArgumentParser(
        description='Thesis chapter 2 end to end: datasets, ReLU/SoftPlus/sigmoid+BRN counters, '
                    'evaluation against the mean baseline, saliency and detection pictures, '
                    'summary.md.')
    p.add_argument('--preset', choices=sorted(DATASETS), default='quick',
                   help='smoke (CI, < 3 min), quick (default, <= 30 min on a 2-core CPU) or '
                        'thesis (1000x1000, convolutionallarge, for a GPU)')
    p.add_argument('--out', '-o', default='results',
                   help='results root; writes <out>/counting (default: %(default)s)')
    p.add_argument('--data-dir', default=os.path.join('data', 'counting'),
                   help='datasets go to <data-dir>/<preset>/{train,test} (default: %(default)s)')
    add_device_argument(p)
    add_seed_argument(p)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out)
    device = device_from_args(args, parser)
    device_spec = None if args.device is None else str(args.device)
    start = time.time()
    command = 'python -m Counting.run_all ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))

    def log(msg):
        print('[run_all {:6.0f}s] {}'.format(time.time() - start, msg), flush=True)

    log('preset {}, seed {}, device {}'.format(args.preset, args.seed, device))
    from Counting import evaluate, train
    from Counting import saliency as saliency_mod

    data_root = os.path.join(args.data_dir, args.preset)
    folders = {}
    for split in ('train', 'test'):
        folders[split] = os.path.join(data_root, split)
        try:
            ensure_dataset(folders[split], dataset_options(args.preset, split, args.seed), log)
        except ValueError as e:
            parser.error('dataset {}: {}'.format(folders[split], e))

    results_dir = os.path.join(args.out, 'counting')
    os.makedirs(results_dir, exist_ok=True)
    counters = []
    for name, activation, batch_renorm in COUNTERS:
        run_dir = os.path.join(results_dir, 'runs', name)
        targv, t = train_argv(args.preset, name, activation, batch_renorm, folders['train'],
                              folders['test'], run_dir, args.seed, device_spec)
        wanted = dict(t, activation=activation, batch_renorm=batch_renorm, seed=args.seed,
                      train=os.path.abspath(folders['train']))
        state = run_state(run_dir, wanted)
        info = dict(name=name, activation=activation, batch_renorm=batch_renorm, training=t,
                    run=run_dir)
        counters.append(info)
        if state == 'done':
            log('counter {}: trained model found, skipping training'.format(name))
        else:
            if state == 'fresh':
                moved = clear_run(run_dir)
                if moved:
                    log('counter {}: {} holds another run; moved to {}'.format(
                        name, run_dir, moved))
            else:
                targv += ['--resume', 'auto']
            log('counter {}: training ({}): python -m Counting.train {}'.format(
                name, 'resuming' if state == 'resume' else 'new',
                ' '.join(shlex.quote(a) for a in targv)))
            code = train.main(targv)
            if code != 0:
                info['error'] = 'training diverged (see {}/log)'.format(run_dir)
                log('counter {}: {}'.format(name, info['error']))
                continue
        counter_out = os.path.join(results_dir, name)
        result = evaluate.evaluate_run(run_dir, folders['test'], out=counter_out,
                                       device=device)
        info['metrics'] = result['metrics']
        for typ, m in result['metrics'].items():
            log('counter {} {}: MAE {:.3f}, baseline {:.3f} ({:.2f}x)'.format(
                name, typ, m['ours']['mae'], m['baseline']['mae'], m['mae_ratio']))

        n = str(N_PICTURES[args.preset])
        dev = [] if device_spec is None else ['--device', device_spec]
        sal_dir = os.path.join(counter_out, 'saliency')
        code = saliency_mod.main(['--run', run_dir, '--images', folders['test'], '--limit', n,
                                  '--out', sal_dir] + dev)
        if code:
            info['saliency_error'] = 'Counting.saliency exited with {}'.format(code)
        info['saliency'] = _pictures(sal_dir, results_dir, '_saliency.png')
        pictures_and_scores(info, run_dir, folders['test'], counter_out, results_dir,
                            N_PICTURES[args.preset], dev, log)

    summary = summary_markdown(args.preset, args.seed, command, folders, counters,
                               time.time() - start)
    atomic_write_text(os.path.join(results_dir, 'summary.md'), summary)
    print(summary)
    log('wrote {}'.format(os.path.join(results_dir, 'summary.md')))
    # A diverged counter is a result (the faithful lr 0.07 can diverge), reported in the summary.
    for c in counters:
        if c.get('error'):
            print('warning: counter {}: {}'.format(c['name'], c['error']), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
