"""Benchmark of the second-derivative detection loop (thesis 2.2.2) on one 1000 x 1000 image
(the command line is ``python -m Counting.bench.detection``; a section of
``python -m Counting.bench``).

For an untrained softplus counter of each architecture (seeded; the last bias raised so the final
ReLU passes the counts and the saliency is not zero), measures side by side:

* one second-derivative step from scratch: forward pass, first backward pass with its graph kept,
  second backward pass for one pixel; this is what the thesis's loop pays for every shape;
* the thesis's loop as written (:mod:`Counting.detection.second` with ``reuse_graph=False``),
  seconds per detected shape;
* the loop keeping the first-order graph (``support=None, sparse=False``), seconds per shape;
* the same with sparse tangents (:mod:`Counting.functions.sparse_tangent_convolution`: the
  tangent a row pushes through the first layers is almost all zeros);
* the default: both, and the rows of pixels whose receptive-field boxes are disjoint packed into
  one backward pass (:class:`Counting.detection.Support`; helps the small network, whose units
  see separate 87 x 87 blocks, not the large one, whose units each see the whole image);
* K stacked copies of the image per backward pass (``batch=K``), seconds per shape;

with the ratio of each to one step and whether every variant finds the same groups (seeds and
masks) as the thesis's loop. The loop is asked for ``--groups`` groups (``count``), so the untrained
network's count does not matter.
"""
import os
import resource
import shutil
import sys
import tempfile
import time

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import numpy

from Counting import detection as detect_lib
from Counting import images
from lenses_common.seeding import seed_everything

IMAGE_SIZE = (1000, 1000)
ARCHS = ('convolutional', 'convolutionallarge')


def bench_image(seed=0):
    """One generated 1000 x 1000 image (both types, up to 10 shapes, scale 60..120)."""
    from Counting.datasets import generate_dataset
    folder = tempfile.mkdtemp(prefix='bench_detection_')
    try:
        generate_dataset(folder, 1, image_size=IMAGE_SIZE, shape_limit=10, scale=(60, 120),
                         seed=seed, workers=1, progress=False)
        name = sorted(n for n in os.listdir(folder) if n.endswith('.png'))[0]
        return images.load_image(os.path.join(folder, name))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_counter(arch, seed=0, device=None):
    """An untrained softplus counter whose counts are positive on the benchmark image."""
    from Counting.models import build_counter
    seed_everything(seed)
    model = build_counter(arch, 'softplus')
    with chainer.using_config('train', False):
        model(numpy.zeros((1, 3) + IMAGE_SIZE[::-1], numpy.float32))
    model.fc.b.array[:] += 10.0
    if device is not None:
        model.to_device(device)
    return model


def _sync(model):
    if model.xp is not numpy:
        model.device.device.synchronize()


def one_step(model, image, repeats=5):
    """Median seconds of one second-derivative row computed from scratch."""
    times = []
    for _ in range(repeats):
        _sync(model)
        start = time.perf_counter()
        engine = detect_lib.SecondDerivativeRows(model, image, copies=1)
        p = numpy.unravel_index(int(engine.saliency.argmax()), engine.saliency.shape)
        engine.rows([p])
        _sync(model)
        times.append(time.perf_counter() - start)
    return float(numpy.median(times))


def _same(a, b):
    """'yes' for the same seeds and masks; else how they differ."""
    if len(a) != len(b) or any(ga.seed != gb.seed for ga, gb in zip(a, b)):
        return 'NO (other seeds)'
    pixels = sum(int((ga.mask != gb.mask).sum()) for ga, gb in zip(a, b))
    return 'yes' if pixels == 0 else 'seeds yes, {} mask pixels differ'.format(pixels)


def bench_arch(arch, image, groups, batches, threshold, seed=0, device=None, say=print):
    model = bench_counter(arch, seed, device)
    x = model.device.send(image)
    say('{}: one second-derivative step from scratch...'.format(arch))
    step = one_step(model, x)
    say('  {:.3f} s'.format(step))
    plain = dict(support=None, sparse=False)
    variants = [('thesis loop (recompute every step)', dict(plain, reuse_graph=False)),
                ('keep the first-order graph', plain),
                ('keep the graph, sparse convolutions', dict(support=None)),
                ('keep the graph, sparse, pack disjoint rows (default)', dict())]
    variants += [('keep the graph, K stacked copies', dict(plain, batch=k)) for k in batches]
    results = []
    reference = None
    for label, options in variants:
        batch = options.get('batch', 1)
        _sync(model)
        start = time.perf_counter()
        found = detect_lib.detect_shapes(model, x, threshold=threshold, count=groups, **options)
        _sync(model)
        seconds = time.perf_counter() - start
        if reference is None:
            reference = found
        per_shape = seconds / max(len(found), 1)
        results.append({'label': label, 'batch': batch, 'seconds': seconds,
                        'per_shape': per_shape, 'ratio': per_shape / step,
                        'groups': len(found), 'rows': found.rows, 'passes': found.passes,
                        'same': _same(reference, found)})
        say('  {}, K={}: {} groups, {:.3f} s/shape ({:.2f} x one step), {} rows in {} passes, '
            'same groups: {}'.format(label, batch, len(found), per_shape, per_shape / step,
                                     found.rows, found.passes, results[-1]['same']))
    pixels = [int(g.mask.sum()) for g in reference]
    return {'arch': arch, 'step': step, 'variants': results, 'pixels': pixels}


def _peak_rss_mib():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != 'darwin' else peak / 2.0 ** 20


def run(archs=ARCHS, groups=16, batches=(2, 4), threshold=detect_lib.DEFAULT_THRESHOLD, seed=0,
        device=None, progress=True):
    """Run the benchmark and return a Markdown section (progress goes to stderr)."""
    def say(text):
        if progress:
            print(text, file=sys.stderr, flush=True)

    device = chainer.get_device('@numpy') if device is None else device
    say('detection benchmark: one {}x{} image, {} groups, threshold {:g}, device {}'.format(
        IMAGE_SIZE[0], IMAGE_SIZE[1], groups, threshold, device))
    image = bench_image(seed)
    reports = [bench_arch(arch, image, groups, batches, threshold, seed, device, say)
               for arch in archs]
    lines = [
        '## Counting: second-derivative detection',
        '',
        'One generated {}x{} image, untrained softplus counters (seed {}), {} groups asked for, '
        'threshold {:g}, device `{}`. "s/shape" is wall time of `Counting.detection.detect_shapes` '
        'divided by the groups found; "x step" divides it by one second-derivative step done from '
        'scratch (forward, first backward with its graph, second backward for one pixel), which '
        'is what the thesis\'s loop pays per shape. "same" compares seeds and masks with the '
        'thesis\'s loop (sparse convolutions round differently, so a pixel whose importance is '
        'within rounding of the threshold could change sides).'.format(
            IMAGE_SIZE[0], IMAGE_SIZE[1], seed, groups, threshold, device),
        '',
        '| network | variant | K | s/shape | x step | rows / passes | same groups |',
        '| --- | --- | --- | --- | --- | --- | --- |',
    ]
    for report in reports:
        lines.append('| {} | one step from scratch | 1 | {:.3f} | 1.00 | 1 / 1 | |'.format(
            report['arch'], report['step']))
        for v in report['variants']:
            lines.append('| {} | {} | {} | {:.3f} | {:.2f} | {} / {} | {} |'.format(
                report['arch'], v['label'], v['batch'], v['per_shape'], v['ratio'], v['rows'],
                v['passes'], v['same']))
    lines += ['', 'Group sizes (pixels) found by the thesis\'s loop: ' + '; '.join(
        '{}: {}'.format(r['arch'], ', '.join(str(p) for p in r['pixels'])) for r in reports),
        '', 'Peak resident memory of the benchmark process: {:.0f} MiB.'.format(_peak_rss_mib()),
        '']
    return '\n'.join(lines)
