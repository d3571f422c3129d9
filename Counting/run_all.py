"""Chapter 2 end to end (``make counting``): data, three counters, evaluation, saliency, detection.

    python -m Counting.run_all --preset quick --seed 0 --out results --data-dir data/counting

1. generates the training and test sets into ``<data-dir>/<preset>/{train,test}`` (reused when
   their ``settings.json`` matches the preset);
2. trains the ReLU, SoftPlus and sigmoid (+ Batch Renormalization, as in the thesis) counters
   (on ``smoke`` and ``quick`` also the thesis's ``convolutional`` SoftPlus and sigmoid + BRN) into
   ``<out>/counting/runs/<name>`` (skipped when ``model_final.npz`` exists with matching settings,
   resumed from the newest snapshot when one exists, a folder of another configuration moved
   aside), each
   a ``python -m Counting.train`` process with one BLAS thread, log ``<out>/counting/logs``,
   ``--jobs N`` at a time or on ``mpi4py.futures`` workers (``--executor mpi``,
   ``lenses_common.sweep``);
3. evaluates each on the test set (``<out>/counting/<name>/metrics.*``, ``scatter.png``);
4. writes saliency pictures and detection pictures for a few test images (library calls in this
   process: :mod:`Counting.gradients`, :mod:`Counting.detection.folder`)
   (``<out>/counting/<name>/saliency``, ``.../detection``), scores every detection method, typed
   ones included, and draws the contact sheets from the pictured detections;
5. writes ``<out>/counting/summary.md``, its figures as data in ``summary.json`` (read by
   ``Counting.readme_table``), and ``results.csv`` (one row per seed, counter and type).

``--seeds 0,1,2`` runs all this for each seed (data, initialisation and order); with more than one
seed, seed S's data go to ``<data-dir>/<preset>/seed-S`` and its results to
``<out>/counting/seed-S``, and ``<out>/counting/table.md`` holds the mean +- standard deviation.

Presets (:mod:`Counting.presets`; Counting/README.md says what each one shortens): ``smoke``
for CI, ``quick`` (default, <= 30 minutes on a 2-core CPU), ``thesis`` (meant for a GPU),
``gpu-lease`` (sized for 8 minutes on one H100/H200) and ``gpu-lease-smoke`` (its smoke version).
``smoke`` and ``quick`` train the thesis's small ``convolutional`` network (SoftPlus, sigmoid +
BRN) beside the three ``edgepool`` counters.
"""
import json
import os
import shlex
import sys
import time

from lenses_common import compat  # noqa: F401  (before chainer)

from lenses_common import provenance, sweep
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.runfolder import atomic_write_text, check_out_arg, load_json, move_aside
from lenses_common import cli
from Counting.datasets.annotations import load_annotations
from Counting.functions import ACTIVATIONS
from Counting.models import load_counter
from lenses_common.snapshots import FINAL_MODEL, SNAPSHOT_PREFIX

from Counting import run_summary
from Counting.presets import (COMMON_DATA, DATASETS, DETECTION_METHODS, N_PICTURES,
                              N_SCORED, PRESET_COUNTERS, PRESET_METHODS, SHEET_METHOD,
                              TRAINING, TYPED_SHEET_METHOD)
from Counting.run_summary import SUMMARY_JSON, fmt_opt


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
    t = sweep.preset_options(TRAINING[preset], name)
    argv = ['--train', train_dir, '--out', run_dir, '--arch', t['arch'],
            '--activation', activation, '--optimizer', t['optimizer'], '--lr', repr(t['lr']),
            '--batchsize', str(t['batchsize']), '--epoch', str(t['epoch']),
            '--snapshot-interval', str(t['snapshot_interval']), '--seed', str(seed),
            '--eval-interval', str(max(1, t['epoch'] // 5))]
    if test_dir:
        argv += ['--test', test_dir]
    if batch_renorm:
        argv.append('--batch-renorm')
    if t.get('stream'):   # 5,000 images of 1000 x 1000 would take ~15 GB in memory
        argv.append('--stream')
    if device is not None:
        argv += ['--device', device]
    return argv, t


def run_state(run_dir, wanted):
    """'done', 'resume', 'fresh' or 'other' (the folder holds another configuration)."""
    return sweep.run_state(run_dir, wanted, lambda old, new: _matches(old, new, RUN_KEYS),
                           FINAL_MODEL, SNAPSHOT_PREFIX['epoch'] + '*')


def smooth(activation):
    """Whether the second-derivative detection works for ``activation`` (the registry's flag)."""
    return ACTIVATIONS[activation].smooth


def _methods_for(activation, preset=None):
    wanted = PRESET_METHODS.get(preset)
    return [m for m in DETECTION_METHODS
            if (smooth(activation) or m[1]['method'] != 'second')
            and (wanted is None or m[0] in wanted)]


def pictures_and_scores(info, model, settings, run_dir, test_dir, counter_out, results_dir,
                        n_pictures, log, n_scored=None, title='', preset=None):
    """Outline measure, every detection method's scores and the contact sheets of one counter,
    into ``info`` (the summary's record of the counter). The sheets are drawn from the
    detections of their method's scored run (no detection runs again)."""
    from Counting import outline_measure
    from Counting.detection import sheet
    from Counting.detection.folder import detect_folder, detection_options
    annotations_path = os.path.join(test_dir, 'annotations.json')
    if not os.path.exists(annotations_path):
        return
    annotations = load_annotations(annotations_path)  # checked against truths and images
    names = sorted(annotations)
    n_scored = min(len(names), n_scored or max(n_pictures, 50))
    try:
        per_image = outline_measure.measure_run(model, settings, test_dir, names[:n_scored],
                                                annotations)
        scored = list(per_image.values())
        pictured = [per_image[n] for n in names[:n_pictures]]
        info['outline'] = outline_measure.summarize(scored)
        info['outline_pictured'] = outline_measure.summarize(pictured)
        info['outline_png'] = outline_measure.summarize_pictures(scored)
        info['outline_png_pictured'] = outline_measure.summarize_pictures(pictured)
    except ValueError as e:
        info['outline_error'] = str(e)
    kind = smooth(info['activation'])
    sheets = {SHEET_METHOD[kind]: 'contact_sheet.png',
              TYPED_SHEET_METHOD[kind]: 'contact_sheet_typed.png'}
    info['detection_methods'] = {}
    info['contact_sheets'] = {}
    for tag, options in _methods_for(info['activation'], preset):
        det_dir = os.path.join(counter_out, 'detection', tag)
        try:
            _, s = detect_folder(model, settings, run_dir, test_dir, names[:n_scored], det_dir,
                                 detection_options(**options), annotations, annotations_path,
                                 pictures=n_pictures)
        except ValueError as e:  # SecondDerivativeError included
            info['detection_methods'][tag] = {'error': 'detection {}: {}'.format(tag, e)}
            log('counter {} detection {}: {}'.format(info['name'], tag, e))
            continue
        det_json = os.path.join(det_dir, 'detections.json')
        info['detection_methods'][tag] = dict(s, json=os.path.relpath(det_json, results_dir))
        log('counter {} detection {}: precision {}, recall {}, mean IoU {}{} ({} images)'.format(
            info['name'], tag, fmt_opt(s['precision']), fmt_opt(s['recall']),
            fmt_opt(s['mean_iou']), ', type accuracy {}'.format(fmt_opt(s['type_accuracy']))
            if 'type_accuracy' in s else '', s['images']))
        if tag in sheets:
            path = os.path.join(counter_out, sheets[tag])
            sheet.write_contact_sheet(path, sheet.entries_from_folder(det_dir, test_dir),
                                      '{}, method {}'.format(title or info['name'], tag))
            info['contact_sheets'][tag] = os.path.relpath(path, results_dir)
    wanted = SHEET_METHOD[kind]
    if wanted in info['contact_sheets']:
        info['contact_sheet'] = info['contact_sheets'][wanted]
        info['contact_sheet_method'] = wanted
    else:
        log('counter {}: no contact sheet (its detection failed)'.format(info['name']))
    info['detection'] = _pictures(os.path.join(counter_out, 'detection', wanted), results_dir,
                                  '_boxes.png')
    info['detection_note'] = 'method {}'.format(wanted)


def _pictures(folder, root, suffix):
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.relpath(os.path.join(folder, n), root)
                  for n in os.listdir(folder) if n.endswith(suffix))


def build_parser():
    p = cli.ArgumentParser(
        description='Thesis chapter 2 end to end: datasets, ReLU/SoftPlus/sigmoid+BRN counters, '
                    'evaluation against the mean baseline, saliency and detection pictures, '
                    'summary.md.')
    p.add_argument('--preset', choices=sorted(DATASETS), default='quick',
                   help='smoke (CI, < 3 min), quick (default, <= 30 min on a 2-core CPU), '
                        'thesis (1000x1000, convolutionallarge, for a GPU), gpu-lease (the '
                        'thesis\'s data and network sized for 8 minutes on one H100/H200) or '
                        'gpu-lease-smoke (its CPU smoke version at 835x835)')
    p.add_argument('--out', '-o', default='results',
                   help='results root; writes <out>/counting (default: %(default)s)')
    p.add_argument('--data-dir', default=os.path.join('data', 'counting'),
                   help='datasets go to <data-dir>/<preset>/{train,test} (default: %(default)s)')
    p.add_argument('--counters', default=None, metavar='NAME,...',
                   help='comma-separated run names: train, evaluate and summarise only these of '
                        'the preset\'s counters (default: all of them; quick and smoke: relu, '
                        'softplus, sigmoid_brn, conv_softplus, conv_sigmoid_brn)')
    add_device_argument(p)
    sweep.add_sweep_arguments(p, 'seed of the data, the initialisation and the order')
    return p


def selected_counters(parser, args):
    """The preset's counters, or those ``--counters`` names (parser.error for a name the preset
    does not train)."""
    counters = PRESET_COUNTERS[args.preset]
    if args.counters is None:
        return counters
    wanted = [n.strip() for n in args.counters.split(',') if n.strip()]
    names = [c[0] for c in counters]
    unknown = [n for n in wanted if n not in names]
    if unknown or not wanted:
        parser.error('--counters: preset {} trains {}; got {!r}'.format(
            args.preset, ', '.join(names), args.counters))
    return tuple(c for c in counters if c[0] in wanted)


def evaluate_counter(info, folders, root, preset, device, log):
    """Evaluation, saliency, outline measure and detection of one trained counter, into ``info``
    (the summary's record of the counter)."""
    from Counting import evaluation, gradients, images
    name, run_dir = info['name'], info['run']
    counter_out = os.path.join(root, name)
    result = evaluation.evaluate_run(run_dir, folders['test'], out=counter_out, device=device)
    info['metrics'] = result['metrics']
    for typ, m in result['metrics'].items():
        log('counter {} {}: MAE {:.3f}, baseline {:.3f} ({:.2f}x)'.format(
            name, typ, m['ours']['mae'], m['baseline']['mae'], m['mae_ratio']))
    sal_dir = os.path.join(counter_out, 'saliency')
    model, settings = load_counter(run_dir, device)
    try:
        gradients.write_saliency_pictures(
            model, settings, folders['test'],
            images.image_names(folders['test'])[:N_PICTURES[preset]], sal_dir)
    except ValueError as e:
        info['saliency_error'] = 'saliency: {}'.format(e)
    info['saliency'] = _pictures(sal_dir, root, '_saliency.png')
    t = info['training']
    title = 'preset {}, counter {} ({} {}{}), seed {}'.format(
        preset, name, t['arch'], info['activation'], ' + BRN' if info['batch_renorm'] else '',
        info.get('seed', 0))
    pictures_and_scores(info, model, settings, run_dir, folders['test'], counter_out, root,
                        N_PICTURES[preset], log, n_scored=N_SCORED[preset], title=title,
                        preset=preset)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out)
    check_out_arg(parser, args.data_dir, '--data-dir')
    seeds = sweep.check_sweep_args(parser, args)
    device = device_from_args(args, parser)
    device_spec = None if args.device is None else str(args.device)
    chosen = selected_counters(parser, args)
    start = time.time()
    command = 'python -m Counting.run_all ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))

    def log(msg):
        print('[run_all {:6.0f}s] {}'.format(time.time() - start, msg), flush=True)

    log('preset {}, seeds {}, device {}'.format(args.preset, ', '.join(map(str, seeds)), device))
    top = os.path.join(args.out, 'counting')
    folders, roots, counters, jobs = {}, {}, {}, []
    for seed in seeds:
        data_root = sweep.seed_root(os.path.join(args.data_dir, args.preset), seed, seeds)
        roots[seed] = sweep.seed_root(top, seed, seeds)
        prefix = '' if len(seeds) == 1 else 'seed-{}/'.format(seed)
        folders[seed] = {}
        for split in ('train', 'test'):
            folders[seed][split] = os.path.join(data_root, split)
            try:
                ensure_dataset(folders[seed][split], dataset_options(args.preset, split, seed),
                               log)
            except ValueError as e:
                parser.error('dataset {}: {}'.format(folders[seed][split], e))
        counters[seed] = []
        for name, activation, batch_renorm in chosen:
            run_dir = os.path.join(roots[seed], 'runs', name)
            targv, t = train_argv(args.preset, name, activation, batch_renorm,
                                  folders[seed]['train'], folders[seed]['test'], run_dir, seed,
                                  device_spec)
            wanted = dict(t, activation=activation, batch_renorm=batch_renorm, seed=seed,
                          train=os.path.abspath(folders[seed]['train']))
            state = run_state(run_dir, wanted)
            counters[seed].append(dict(name=name, activation=activation,
                                       batch_renorm=batch_renorm, training=t, run=run_dir,
                                       seed=seed))
            if sweep.prepare_run('counter ' + prefix + name, run_dir, state, log):
                if state == 'resume':
                    targv += ['--resume', 'auto']
                jobs.append((prefix + name, 'Counting.train', targv,
                             os.path.join(roots[seed], 'logs', name + '.log')))
    with sweep.make_executor(args.executor, args.jobs) as executor:
        done = sweep.run_jobs(executor, jobs, log)

    rows = []
    for seed in seeds:
        prefix = '' if len(seeds) == 1 else 'seed-{}/'.format(seed)
        for info in counters[seed]:
            if done.get(prefix + info['name'], (0,))[0] != 0:
                info['error'] = 'training failed or diverged (see {})'.format(
                    os.path.join(roots[seed], 'logs', info['name'] + '.log'))
                log('counter {}: {}'.format(prefix + info['name'], info['error']))
                continue
            evaluate_counter(info, folders[seed], roots[seed], args.preset, device, log)
        summary = run_summary.summary_markdown(args.preset, DATASETS[args.preset], seed,
                                               command, counters[seed], time.time() - start)
        atomic_write_text(os.path.join(roots[seed], 'summary.md'), summary)
        atomic_write_text(os.path.join(roots[seed], SUMMARY_JSON), json.dumps(dict(
            preset=args.preset, seed=seed, elapsed_s=round(time.time() - start, 1),
            provenance=provenance.record('python -m Counting.run_all', argv, device_spec),
            data=DATASETS[args.preset], counters=counters[seed]), indent=1, default=str))
        print(summary)
        log('wrote {}'.format(os.path.join(roots[seed], 'summary.md')))
        rows += run_summary.result_rows(seed, counters[seed])
    atomic_write_text(os.path.join(top, 'results.csv'),
                      sweep.results_csv(rows, run_summary.RESULT_COLUMNS))
    if len(seeds) > 1:
        table = run_summary.mean_std_markdown(args.preset, seeds, rows, command)
        atomic_write_text(os.path.join(top, 'table.md'), table)
        print(table)
    log('wrote {}'.format(os.path.join(top, 'results.csv')))
    # A diverged counter is a result (the faithful lr 0.07 can diverge), reported in the summary.
    for seed in seeds:
        for c in counters[seed]:
            if c.get('error'):
                print('warning: counter {}: {}'.format(c['name'], c['error']), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
