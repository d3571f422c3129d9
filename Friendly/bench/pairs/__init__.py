"""One PD training iteration in the full and in the pair form, side by side, on the CPU.

``python -m Friendly.bench.pairs`` prints the Markdown section that :func:`run` returns (``make
bench`` includes it). Both networks are the thesis's PD network (``Friendly.models.FC100('PD')``
with its squared-distance loss, batch 20, FastMomentumSGD at lr 0.002, momentum 0.85), the pair
form with its learning-rate factors; the iterations take turns so that a busy spell on a shared
machine hits both. The memory-traffic floor of each form is the bytes its first layer's weights
stream through memory per iteration (forward reads the weights, backward writes their gradient,
the in-place update reads weights, gradient and momentum and writes weights and momentum: 7
passes over an array of the weights' size) divided by the bandwidth of a NumPy copy of a large
array measured in the same run.
"""
import gc
import os
import platform
import statistics
import sys
import time

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly import models
from Friendly.optimizers import FastMomentumSGD, apply_pair_form_lr_factors

WEIGHT_PASSES = 7   # forward read, gradient write, update: 3 reads + 2 writes


def _log(message):
    sys.stderr.write(message + '\n')
    sys.stderr.flush()


def copy_bandwidth(mib=256, repeats=7):
    """(wall, CPU) bytes per second of ``numpy.copyto`` between two ``mib``-MiB float32 arrays
    (read + write counted), each the best of ``repeats``. On a shared machine the CPU-time
    figure is the one comparable with the iterations' CPU time."""
    n = mib * 2 ** 20 // 4
    src = numpy.ones(n, dtype=numpy.float32)
    dst = numpy.ones(n, dtype=numpy.float32)   # both paged in before timing
    best_wall = best_cpu = float('inf')
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        numpy.copyto(dst, src)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        best_wall = min(best_wall, time.perf_counter() - start)
    return 2 * src.nbytes / best_wall, 2 * src.nbytes / max(best_cpu, 1e-9)


def gemm_rate(n=512, repeats=7):
    """(wall, CPU) float32 FLOP per second of an ``n x n`` matrix product, best of ``repeats``."""
    rng = numpy.random.RandomState(0)
    a = rng.rand(n, n).astype(numpy.float32)
    b = rng.rand(n, n).astype(numpy.float32)
    a @ b
    best_wall = best_cpu = float('inf')
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        a @ b
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        best_wall = min(best_wall, time.perf_counter() - start)
    return 2 * n ** 3 / best_wall, 2 * n ** 3 / max(best_cpu, 1e-9)


def _setup(form, seed, chunk_size, sizes):
    numpy.random.seed(seed)
    chunk_size = chunk_size or models.PD_CHUNK_DEFAULTS[form]
    model = models.FriendlyClassifier(models.FC100('PD', sizes=sizes, pd_chunk_size=chunk_size,
                                                   pd_form=form))
    optimizer = FastMomentumSGD(lr=models.VARIANT_SETTINGS['PD']['lr'], momentum=models.MOMENTUM)
    optimizer.setup(model)
    if form == 'pairs':
        apply_pair_form_lr_factors(model, optimizer)
    first = model.predictor.l1
    weights = sum(p.size for p in first.params())
    return model, optimizer, weights * numpy.dtype(numpy.float32).itemsize


def run(repeats=7, warmup=2, chunk_size=None, seed=0, batch=models.BATCHSIZE,
        sizes=models.LAYER_SIZES):
    """Time both forms taking turns; return (Markdown section, figures dict)."""
    rng = numpy.random.RandomState(seed)
    side = int(round(sizes[0] ** 0.5))
    shape = (batch, 1, side, side) if side * side == sizes[0] else (batch, sizes[0])
    x = numpy.where(rng.rand(*shape) < 0.2, rng.randint(0, 256, shape), 0).astype(numpy.float32)
    t = rng.randint(0, 10, batch).astype(numpy.int32)
    forms = ('full', 'pairs')
    setups = {form: _setup(form, seed, chunk_size, sizes) for form in forms}

    def step(form):
        model, optimizer, _ = setups[form]
        with chainer.using_config('train', True):
            optimizer.update(model, x, t)

    _log('bench pairs: PD training iterations, full and pair form taking turns ...')
    for _ in range(warmup):
        for form in forms:
            step(form)
    wall = {form: [] for form in forms}
    cpu = {form: [] for form in forms}
    for _ in range(repeats):
        for form in forms:
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            step(form)
            cpu[form].append(time.process_time() - start_cpu)
            wall[form].append(time.perf_counter() - start)
    bandwidth, bandwidth_cpu = copy_bandwidth()
    _, flops_cpu = gemm_rate()
    figures = {'bandwidth_gb_s': bandwidth / 1e9, 'bandwidth_cpu_gb_s': bandwidth_cpu / 1e9,
               'gemm_cpu_gflop_s': flops_cpu / 1e9, 'load': os.getloadavg()}
    for form in forms:
        nbytes = setups[form][2]
        streamed = WEIGHT_PASSES * nbytes
        figures[form] = {
            'ms': 1e3 * statistics.median(wall[form]),
            'ms_min': 1e3 * min(wall[form]),
            'cpu_ms': 1e3 * statistics.median(cpu[form]),
            'weight_mb': nbytes / 1e6,
            'streamed_mb': streamed / 1e6,
            'floor_ms': 1e3 * streamed / bandwidth,
            'floor_cpu_ms': 1e3 * streamed / bandwidth_cpu,
            # forward T A^T and backward gy^T T: 2 B N (weights) multiply-adds each
            'gemm_gflop': 2 * 2 * batch * nbytes / 4 / 1e9,
        }
        figures[form]['compute_floor_cpu_ms'] = 1e3 * figures[form]['gemm_gflop'] * 1e9 / flops_cpu
        _log('  {}: {:.0f} ms (CPU {:.0f} ms), floor {:.0f} ms (CPU {:.0f} ms)'.format(
            form, figures[form]['ms'], figures[form]['cpu_ms'], figures[form]['floor_ms'],
            figures[form]['floor_cpu_ms']))
    ratio = figures['pairs']['ms'] / figures['full']['ms']
    figures['ratio'] = ratio
    figures['ratio_cpu'] = figures['pairs']['cpu_ms'] / figures['full']['cpu_ms']
    load = ', '.join('{:.1f}'.format(a) for a in figures['load'])
    lines = [
        '## PD training iteration: full form against the pair form (CPU)',
        '',
        'One whole iteration (forward, squared-distance loss, backward, FastMomentumSGD update '
        'with the pair form\'s learning-rate factors) of the PD network {}, batch {}, float32, '
        'chunk_size {} (full form) and {} (pair form); median of {} iterations after {} '
        'warm-up ones, the two forms taking '
        'turns. {}, {} CPUs, NumPy {} (BLAS threads: OPENBLAS_NUM_THREADS={}), Chainer {}; load '
        'average at the end {}.'.format(
            '-'.join(map(str, sizes)), batch, chunk_size or models.PD_CHUNK_DEFAULTS['full'],
            chunk_size or models.PD_CHUNK_DEFAULTS['pairs'], repeats, warmup, platform.processor()
            or platform.machine(), os.cpu_count(), numpy.__version__,
            os.environ.get('OPENBLAS_NUM_THREADS', 'unset'), chainer.__version__, load),
        '',
        '| form | first-layer weights (MB) | iteration (ms) | fastest (ms) | CPU time (ms) | '
        'bytes streamed (MB) | traffic floor, wall (ms) | iteration / floor, wall | '
        'traffic floor, CPU (ms) | CPU time / floor, CPU | matrix products (GFLOP) | '
        'their compute floor, CPU (ms) |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ]
    for form in forms:
        f = figures[form]
        lines.append('| {} | {:.0f} | {:.0f} | {:.0f} | {:.0f} | {:.0f} | {:.0f} | {:.2f} | '
                     '{:.0f} | {:.2f} | {:.2f} | {:.0f} |'.format(
                         form, f['weight_mb'], f['ms'], f['ms_min'], f['cpu_ms'],
                         f['streamed_mb'], f['floor_ms'], f['ms'] / f['floor_ms'],
                         f['floor_cpu_ms'], f['cpu_ms'] / f['floor_cpu_ms'], f['gemm_gflop'],
                         f['compute_floor_cpu_ms']))
    lines += [
        '',
        '- Pair form / full form: **{:.2f}x** in wall-clock time ({:.2f}x in CPU time).'.format(
            ratio, figures['ratio_cpu']),
        '- Traffic floor: {} passes over the first layer\'s weights per iteration (forward read, '
        'gradient write, in-place momentum update: 3 reads and 2 writes) at the bandwidth of a '
        'NumPy copy of a 256 MiB array measured in this run (read + write counted): {:.1f} GB/s '
        'in wall-clock time, {:.1f} GB/s in CPU time (the figure to compare with the CPU '
        'time when other jobs share the machine).'.format(
            WEIGHT_PASSES, bandwidth / 1e9, bandwidth_cpu / 1e9),
        '- The two matrix products of the first layer (forward and weight gradient) are bound by '
        'arithmetic rather than by memory at batch 20: their compute floor is their FLOPs at the '
        'rate of a 512 x 512 float32 product measured in this run, {:.0f} GFLOP/s of CPU '
        'time.'.format(flops_cpu / 1e9),
        '',
    ]
    for form in forms:
        setups[form] = None
    gc.collect()
    return '\n'.join(lines), figures
