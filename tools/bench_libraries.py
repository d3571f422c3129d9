"""Benchmark of the library calls that replaced hand-written code, before and after.

    python tools/bench_libraries.py [--out results/bench]     (a part of ``make bench``)

On one process, same inputs, side by side:

* 8-connected labelling of 1000 x 1000 random masks (30% and 60% of the pixels set):
  :func:`scipy.ndimage.label` (what :func:`Counting.datasets.shapes.label_blobs` calls now)
  against the union-find over runs that the project used to write itself; whether the label
  arrays are equal;
* K-means with k = 3 over the 10^6 saliency values of the benchmark image:
  :func:`scipy.cluster.vq.kmeans2` run to convergence (:func:`Counting.detection.kmeans`) against
  the hand-written Lloyd loop; the largest relative gap between their centres and the share of
  values put in the same cluster;
* the whole first-derivative detection, ``Counting.detection.detect_shapes(method='upper')`` and
  ``method='kmeans'``, on the 1000 x 1000 benchmark image of :mod:`Counting.bench.detection` with
  its untrained small counter: once as it is, once with the two hand-written versions put back
  into :mod:`Counting.detect` for the call ("before"); whether the boxes are the same.

The "before" code below (``reference_label_blobs``, ``reference_kmeans``) is the project's former
implementation, kept only here, outside the product packages, as the reference the speed-ups are
measured against. Nothing imports it.
"""
import contextlib
import os
import sys
import time

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting import detection
from Counting.detection import first_derivative
from Counting import gradients
from Counting.datasets import shapes
from lenses_common.runfolder import atomic_write_text, check_out_arg
from lenses_common.seeding import add_seed_argument
from lenses_common import cli


# ---------------------------------------------------------------------------------------------
# BEFORE: the hand-written versions that SciPy replaced. Benchmark reference only.

def _reference_runs(mask):
    """Horizontal runs of True: arrays row, start, end (inclusive), sorted by row then start."""
    padded = numpy.zeros((mask.shape[0], mask.shape[1] + 2), dtype=numpy.int8)
    padded[:, 1:-1] = mask
    step = numpy.diff(padded, axis=1)
    rows, starts = numpy.nonzero(step == 1)
    _, ends = numpy.nonzero(step == -1)
    return rows, starts, ends - 1


def reference_label_blobs(mask):
    """BEFORE (reference only): 8-connected labelling by a union-find over horizontal runs."""
    mask = numpy.asarray(mask, dtype=bool)
    rows, starts, ends = _reference_runs(mask)
    n_runs = len(rows)
    parent = list(range(n_runs))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    bounds = numpy.searchsorted(rows, numpy.arange(mask.shape[0] + 1))
    for y in range(1, mask.shape[0]):
        a, a_end = bounds[y - 1], bounds[y]
        b, b_end = bounds[y], bounds[y + 1]
        while a < a_end and b < b_end:
            if ends[a] + 1 < starts[b]:
                a += 1
            elif ends[b] + 1 < starts[a]:
                b += 1
            else:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
                if ends[a] < ends[b]:
                    a += 1
                else:
                    b += 1
    roots = numpy.array([find(i) for i in range(n_runs)], dtype=numpy.int64)
    _, first, inverse = numpy.unique(roots, return_index=True, return_inverse=True)
    order = numpy.argsort(first)
    rank = numpy.empty_like(order)
    rank[order] = numpy.arange(len(order))
    run_label = rank[inverse] + 1
    labels = numpy.zeros(mask.shape, dtype=numpy.int32)
    for r, s, e, lab in zip(rows, starts, ends, run_label):
        labels[r, s:e + 1] = lab
    return labels, len(order)


def reference_kmeans(values, k=3, seed=0, iterations=100):
    """BEFORE (reference only): Lloyd's K-means with k-means++ seeding written in NumPy."""
    data = numpy.asarray(values, dtype=numpy.float64)
    if data.ndim == 1:
        data = data[:, None]
    n = len(data)
    if len(numpy.unique(data, axis=0)) < k:
        raise ValueError('K-means needs at least {} distinct values'.format(k))
    rng = numpy.random.RandomState(seed)
    centres = [data[rng.randint(n)]]
    closest = ((data - centres[0]) ** 2).sum(axis=1)
    while len(centres) < k:
        c = data[rng.choice(n, p=closest / closest.sum())]
        centres.append(c)
        closest = numpy.minimum(closest, ((data - c) ** 2).sum(axis=1))
    centres = numpy.array(centres)
    labels = None
    for _ in range(iterations):
        dist = ((data[:, None, :] - centres[None]) ** 2).sum(axis=2)
        new_labels = dist.argmin(axis=1)
        if labels is not None and numpy.array_equal(new_labels, labels):
            break
        labels = new_labels
        for j in range(k):
            members = data[labels == j]
            if len(members):
                centres[j] = members.mean(axis=0)
            else:
                far = int(dist[numpy.arange(n), labels].argmax())
                centres[j] = data[far]
    order = numpy.argsort(centres[:, 0], kind='stable')
    rank = numpy.empty(k, dtype=numpy.int64)
    rank[order] = numpy.arange(k)
    return centres[order], rank[labels]


@contextlib.contextmanager
def hand_written_detection():
    """Within the block, :mod:`Counting.detect` labels and clusters with the BEFORE versions."""
    saved = first_derivative.label_blobs, first_derivative.kmeans
    first_derivative.label_blobs, first_derivative.kmeans = reference_label_blobs, reference_kmeans
    try:
        yield
    finally:
        first_derivative.label_blobs, first_derivative.kmeans = saved


# ---------------------------------------------------------------------------------------------
# Timing

def best_of(function, repeats):
    """``(seconds, result)``: the fastest of ``repeats`` calls and the last result."""
    best, result = float('inf'), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(repeats=2, seed=0, progress=True):
    """Run the benchmark on the CPU and return a Markdown section (progress goes to stderr)."""
    from Counting.bench import detection_timing as bench_detection

    def say(text):
        if progress:
            print(text, file=sys.stderr, flush=True)

    rows = []
    rng = numpy.random.RandomState(seed)
    for density in (0.3, 0.6):
        mask = rng.random_sample((1000, 1000)) < density
        say('labelling benchmark: 1000x1000 mask, {:.0%} set...'.format(density))
        before, (old, n_old) = best_of(lambda: reference_label_blobs(mask), repeats)
        after, (new, n_new) = best_of(lambda: shapes.label_blobs(mask), repeats)
        same = 'yes' if n_old == n_new and numpy.array_equal(old, new) else 'NO'
        rows.append(('labelling, 1000x1000 mask, {:.0%} set ({} components)'.format(
            density, n_new), before, after, same))

    image = bench_detection.bench_image(seed)
    model = bench_detection.bench_counter('convolutional', seed)
    x = gradients.as_batch(model, image)
    say('K-means benchmark: saliency of the benchmark image...')
    values = _saliency(model, x).ravel()
    before, (c_old, l_old) = best_of(lambda: reference_kmeans(values, 3, seed), repeats)
    after, (c_new, l_new) = best_of(lambda: first_derivative.kmeans(values, 3, seed), repeats)
    gap = float(numpy.max(numpy.abs(c_new - c_old) / numpy.abs(c_old)))
    agree = float(numpy.mean(l_old == l_new))
    same = 'yes' if agree == 1 else 'NO: {:.4%} of the values'.format(agree)
    rows.append(('K-means, k = 3, 10^6 saliency values', before, after,
                 'clusters: {}; centres apart by at most {:.1e} (relative)'.format(same, gap)))

    for method in ('upper', 'kmeans'):
        say('detection benchmark: method {}...'.format(method))

        def call():
            return detection.detect_shapes(model, x, method=method, count=10, seed=seed)

        with hand_written_detection():
            before, old = best_of(call, repeats)
        after, new = best_of(call, repeats)
        same = 'yes' if old.boxes == new.boxes else '{} of {} boxes equal'.format(
            sum(a == b for a, b in zip(old.boxes, new.boxes)), len(old.boxes))
        rows.append(('`detect(method={!r})`, 1000x1000 image, 10 groups'.format(method),
                     before, after, 'boxes: ' + same))

    lines = ['## Counting: library calls against the former hand-written code', '',
             'Best of {} runs each, one process, CPU, seed {}, OPENBLAS_NUM_THREADS={}. "before": '
             'the hand-written union-find labelling and Lloyd K-means the project used to ship '
             '(kept in `tools/bench_libraries.py` as the reference); "after": '
             '`scipy.ndimage.label` and `scipy.cluster.vq.kmeans2` run to convergence. Detection '
             'runs the untrained small softplus counter of the detection benchmark on its '
             'image; its forward and backward passes are in both times.'.format(
                 repeats, seed, os.environ.get('OPENBLAS_NUM_THREADS', 'unset')), '',
             '| job | before (s) | after (s) | speed-up | same result |',
             '| --- | ---: | ---: | ---: | --- |']
    for job, before, after, same in rows:
        lines.append('| {} | {:.3f} | {:.3f} | {:.1f}x | {} |'.format(
            job, before, after, before / after, same))
    return '\n'.join(lines) + '\n'


def _saliency(model, x):
    _, _, g = gradients.input_gradient(model, x)
    return numpy.asarray(chainer.backend.CpuDevice().send(
        gradients.channel_max_abs(g.array[0])), dtype=numpy.float64)


def build_parser():
    parser = cli.ArgumentParser(
        prog='python tools/bench_libraries.py',
        description='Time SciPy\'s labelling and K-means, and the first-derivative detection '
                    'methods, against the hand-written code they replaced.')
    parser.add_argument('--repeats', type=int, default=2,
                        help='runs of each job; the fastest counts (default: %(default)s)')
    parser.add_argument('--out', default=None,
                        help='folder to write bench_libraries.md into (default: print only)')
    add_seed_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error('--repeats must be at least 1, got {}'.format(args.repeats))
    check_out_arg(parser, args.out)
    text = run(repeats=args.repeats, seed=args.seed)
    print(text)
    if args.out:
        atomic_write_text(os.path.join(args.out, 'bench_libraries.md'), text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
