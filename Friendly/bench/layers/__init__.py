"""Benchmark of the Pairwise Difference layer and of one PD training iteration, on the CPU.

Measured in one run, side by side:

* Pairwise Difference forward + backward at batch 20, 1x28x28 input, 100 outputs: the fused
  :func:`Friendly.functions.pairwise_difference` against the same layer composed of
  ``chainer.functions`` (flatten, broadcast subtraction, sigmoid, reshape, matmul with ``W``
  transposed): median time, ratio, and peak memory allocated during the pass (``tracemalloc``,
  to which NumPy reports its array allocations).
* One whole training iteration of the PD network (forward, backward of the squared-error loss,
  update) with :class:`Friendly.optimizers.FastMomentumSGD` and with Chainer's ``MomentumSGD``.

``python -m Friendly.bench.layers`` prints the Markdown section that :func:`run` returns.
"""
import gc
import os
import statistics
import sys
import time
import tracemalloc

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
import chainer.links as L
import numpy

from Friendly import links as FL
from Friendly.functions import pairwise_difference
from Friendly.optimizers import FastMomentumSGD
from lenses_common.seeding import seed_everything

BATCH = 20
EVAL_BATCH = 200  # the thesis evaluates in batches of 200
IMAGE = (1, 28, 28)
OUTPUTS = 100


def composed_pairwise_difference(x, W):
    """Pairwise Difference written with ``chainer.functions`` only (holds B x P x P tensors)."""
    B = x.shape[0]
    v = F.reshape(x, (B, -1))
    P = v.shape[1]
    shape = (B, P, P)
    d = (F.broadcast_to(F.reshape(v, (B, P, 1)), shape)
         - F.broadcast_to(F.reshape(v, (B, 1, P)), shape))
    return F.matmul(F.reshape(F.sigmoid(d), (B, P * P)), W, transb=True)


def _log(message):
    sys.stderr.write(message + '\n')
    sys.stderr.flush()


def _median_ms(steps, repeats, warmup):
    """Median wall-clock and CPU time (all threads of this process) of each step, in ms.

    The steps take turns within every repeat, so that a busy spell on a shared machine hits
    all of them rather than only the one that happened to be running.
    """
    for _ in range(warmup):
        for step in steps:
            step()
    wall = [[] for _ in steps]
    cpu = [[] for _ in steps]
    for _ in range(repeats):
        for i, step in enumerate(steps):
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            cpu[i].append(time.process_time() - start_cpu)
            wall[i].append(time.perf_counter() - start)
    return [(1e3 * statistics.median(w), 1e3 * statistics.median(c)) for w, c in zip(wall, cpu)]


def _memory_mib(function, x, W, gy):
    """Memory traced during one forward + backward: (peak, kept from forward to backward).

    Both are measured above what was allocated before the pass. "Kept" is what the graph holds
    after the forward pass, the output itself excluded.
    """
    W.cleargrad()
    if isinstance(x, chainer.Variable):
        x.cleargrad()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        y = function(x, W)
        kept = tracemalloc.get_traced_memory()[0] - base - y.array.nbytes
        y.grad = gy
        y.backward()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak / 2 ** 20, kept / 2 ** 20


def _forward_only(layer_function, x, W):
    def step():
        with chainer.no_backprop_mode():
            layer_function(x, W)
    return step


def _forward_peak_mib(layer_function, x, W):
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        _forward_only(layer_function, x, W)()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak / 2 ** 20


def _layer_step(layer_function, x, W, gy):
    def step():
        W.cleargrad()
        if isinstance(x, chainer.Variable):
            x.cleargrad()
        y = layer_function(x, W)
        y.grad = gy
        y.backward()
        del y
    return step


class _PDNet(chainer.Chain):
    """The PD network: PD / linear / linear, each with Batch Renormalization and sigmoid."""

    def __init__(self, chunk_size, in_size, outputs):
        super(_PDNet, self).__init__()
        with self.init_scope():
            self.l1 = FL.PairwiseDifference(in_size, outputs, chunk_size)
            self.l2 = L.Linear(outputs, 100)
            self.l3 = L.Linear(100, 10)
            self.n1 = L.BatchRenormalization(outputs, decay=0.8)
            self.n2 = L.BatchRenormalization(100, decay=0.8)
            self.n3 = L.BatchRenormalization(10, decay=0.8)

    def forward(self, x):
        h = F.sigmoid(self.n1(self.l1(x)))
        h = F.sigmoid(self.n2(self.l2(h)))
        return F.sigmoid(self.n3(self.l3(h)))


def _iteration_ms(optimizer_classes, x, t, repeats, warmup, chunk_size, outputs):
    """Median times of one training iteration of the PD network, one per optimizer class."""
    steps = []
    for optimizer_class in optimizer_classes:
        model = _PDNet(chunk_size, x.size // len(x), outputs)
        optimizer = optimizer_class(lr=0.002, momentum=0.85)
        optimizer.setup(model)

        def loss(x, t, model=model):
            # The loss: (1/s) sum over the batch of ||onehot - output||^2.
            return F.sum(F.square(model(x) - t)) / len(x)

        steps.append(lambda optimizer=optimizer, loss=loss: optimizer.update(loss, x, t))
    ms = _median_ms(steps, repeats, warmup)
    del steps
    gc.collect()
    return ms


def run(repeats=5, warmup=1, chunk_size=64, seed=0, batch=BATCH, image=IMAGE,
        outputs=OUTPUTS):
    """Run the benchmark on the CPU; print progress to stderr and return a Markdown section.

    The defaults are the measured setting (batch 20 MNIST images, 100 outputs); smaller sizes
    give a quick smoke run.
    """
    seed_everything(seed)
    rng = numpy.random.RandomState(seed)
    image = tuple(image)
    P = int(numpy.prod(image))
    # MNIST-like input: mostly background 0, some ink up to 255.
    x = numpy.where(rng.rand(batch, *image) < 0.2, rng.uniform(0, 255, (batch,) + image), 0)
    x = x.astype(numpy.float32)
    W = chainer.Parameter(rng.uniform(-1, 1, (outputs, P * P)).astype(numpy.float32))
    gy = rng.randn(batch, outputs).astype(numpy.float32)

    fused = ('fused `pairwise_difference`',
             lambda x, W: pairwise_difference(x, W, chunk_size))
    composed = ('composed of `chainer.functions`', composed_pairwise_difference)
    rows = []
    agree = True
    for needs_gx in (False, True):
        # False: the first layer in training (the image needs no gradient); True: attacks,
        # saliency and GMR, which differentiate with respect to the image.
        xin = chainer.Variable(x) if needs_gx else x
        _log('bench_layers: PD forward+backward, input gradient {}: fused and composed, '
             'taking turns ...'.format('yes' if needs_gx else 'no'))
        times = _median_ms([_layer_step(function, xin, W, gy) for _, function in
                            (fused, composed)], repeats, warmup)
        results = []
        for (name, function), ms in zip((fused, composed), times):
            peak, kept = _memory_mib(function, xin, W, gy)
            results.append((W.grad.copy(), None if not needs_gx else xin.grad.copy()))
            rows.append((name, needs_gx, ms, peak, kept))
            _log('  {}: {:.0f} ms (CPU {:.0f} ms), peak {:.0f} MiB, kept {:.1f} MiB'.format(
                name, ms[0], ms[1], peak, kept))
        (gW_f, gx_f), (gW_c, gx_c) = results
        agree &= numpy.allclose(gW_f, gW_c, rtol=1e-4, atol=1e-3)
        if needs_gx:
            agree &= numpy.allclose(gx_f, gx_c, rtol=1e-3, atol=1e-3)
    W.cleargrad()

    # Evaluation (and attacks) run in batches of 200: forward only, no graph kept.
    eval_batch = batch * EVAL_BATCH // BATCH
    x_eval = numpy.concatenate([x] * (EVAL_BATCH // BATCH))[:eval_batch]
    eval_rows = []
    _log('bench_layers: PD forward only, batch {}: fused and composed ...'.format(eval_batch))
    times = _median_ms([_forward_only(function, x_eval, W) for _, function in (fused, composed)],
                       max(1, repeats // 2), warmup)
    for (name, function), ms in zip((fused, composed), times):
        peak = _forward_peak_mib(function, x_eval, W)
        eval_rows.append((name, ms, peak))
        _log('  {}: {:.0f} ms (CPU {:.0f} ms), peak {:.0f} MiB'.format(
            name, ms[0], ms[1], peak))
    del W, x_eval
    gc.collect()

    onehot = numpy.eye(10, dtype=numpy.float32)[rng.randint(0, 10, batch)]
    names = ('`FastMomentumSGD`', '`chainer.optimizers.MomentumSGD`')
    _log('bench_layers: PD network training iterations, {} and {}, taking turns ...'.format(
        *names))
    times = _iteration_ms((FastMomentumSGD, chainer.optimizers.MomentumSGD), x, onehot,
                          repeats, max(warmup, 1) + 1, chunk_size, outputs)
    iterations = list(zip(names, times))
    for name, ms in iterations:
        _log('  {}: {:.0f} ms (CPU {:.0f} ms)'.format(name, *ms))

    gw_mib = outputs * P * P * 4 / 2 ** 20
    load = ', '.join('{:.1f}'.format(a) for a in os.getloadavg())
    lines = [
        '## Pairwise Difference layer (CPU)',
        '',
        'Batch {}, input {}, {} outputs (W: {:.1f} M weights, {:.0f} MiB), float32, NumPy '
        '{}, Chainer {}; wall-clock median of {} runs after {} warm-up, the compared forms '
        'taking turns; chunk_size {}; '
        'load average at the end {} on {} CPUs.'.format(
            batch, 'x'.join(map(str, image)), outputs, outputs * P * P / 1e6, gw_mib,
            numpy.__version__, chainer.__version__, repeats, warmup, chunk_size, load,
            os.cpu_count()),
        '',
        '| PD forward + backward | input gradient | time (ms) | CPU time (ms) | peak memory '
        'during the pass (MiB) | kept from forward to backward (MiB) |',
        '| --- | --- | ---: | ---: | ---: | ---: |',
    ]
    for name, needs_gx, ms, peak, kept in rows:
        lines.append('| {} | {} | {:.0f} | {:.0f} | {:.0f} | {:.1f} |'.format(
            name, 'yes' if needs_gx else 'no', ms[0], ms[1], peak, kept))
    lines.append('')
    for i in (0, 2):
        f, c = rows[i], rows[i + 1]
        lines.append(
            '- {}: fused is **{:.1f}x** as fast as composed ({:.1f}x in CPU time); peak '
            '{:.0f} MiB against {:.0f} MiB (both include the {:.0f} MiB weight '
            'gradient).'.format(
                'without input gradient (first layer in training)' if i == 0 else
                'with input gradient (attacks, saliency, GMR)',
                c[2][0] / f[2][0], c[2][1] / f[2][1], f[3], c[3], gw_mib))
    lines += [
        '',
        '| PD forward only, batch {} (evaluation) | time (ms) | CPU time (ms) | peak memory '
        '(MiB) |'.format(eval_batch),
        '| --- | ---: | ---: | ---: |',
    ]
    for name, ms, peak in eval_rows:
        lines.append('| {} | {:.0f} | {:.0f} | {:.0f} |'.format(name, ms[0], ms[1], peak))
    lines += [
        '',
        '- Gradients of the two forms {}. Memory: `tracemalloc` (NumPy reports its array '
        'allocations to it), above what was allocated before the pass; "kept" excludes the '
        'output.'.format('agree' if agree else '**DISAGREE**'),
        '',
        '| one PD-network training iteration (forward, backward, update) | time (ms) | '
        'CPU time (ms) |',
        '| --- | ---: | ---: |',
    ]
    for name, ms in iterations:
        lines.append('| {} | {:.0f} | {:.0f} |'.format(name, *ms))
    lines += [
        '',
        'PD network: pairwise difference {}->{}, linear {}->100, linear 100->10, each followed '
        'by Batch Renormalization and sigmoid; loss (1/s) sum ||onehot - output||^2; '
        'lr 0.002, momentum 0.85. CPU time is `time.process_time()` summed over the process\'s '
        'threads (BLAS may use several), so it can exceed the wall-clock time; it is less '
        'sensitive than wall-clock time to other jobs on the machine.'.format(P, outputs, outputs),
        '',
    ]
    return '\n'.join(lines)
