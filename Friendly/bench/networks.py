"""Speed and memory of chapter 3: ``python -m Friendly.bench --out results/bench`` (``make bench``).

Writes ``OUT/friendly.md`` (and prints it): the layer section of :mod:`Friendly.bench.layers`, the
PD iteration in the full and the pair form side by side (:mod:`Friendly.bench.pairs`), then

* one training iteration of each variant (batch 20, forward + loss (+ GMR double backprop) +
  backward + FastMomentumSGD update): median milliseconds and the peak memory NumPy allocated
  during it (``tracemalloc``; CPU only);
* one epoch of the FGSM evaluation (clean, white-box FGSM and the black-box forward pass, batches
  of 200, Batch Renormalization with batch statistics): images per second.

The images are random integers in 0..255 (speed does not depend on what they show), so the
benchmark needs no MNIST files.
"""
import gc
import os
import platform
import statistics
import time
import tracemalloc

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly import models
from Friendly import trainer
from Friendly.evaluation import evaluate_set
from lenses_common.seeding import seed_everything


def _images(n, seed):
    rng = numpy.random.RandomState(seed)
    x = rng.randint(0, 256, (n, 1, 28, 28)).astype(numpy.float32)
    t = rng.randint(0, 10, n).astype(numpy.int32)
    return x, t


def _sync(device):
    if device.xp is not numpy:
        device.device.synchronize()


def training_iteration(variant, device, repeats, warmup=2, seed=0):
    """(median ms, peak MiB or None) of one training iteration of ``variant`` at batch 20."""
    seed_everything(seed)
    model = models.FriendlyClassifier(models.FC100(variant))
    model.to_device(device)
    optimizer = trainer.make_optimizer('fast', models.VARIANT_SETTINGS[variant]['lr'],
                                       models.MOMENTUM)
    optimizer.setup(model)
    x, t = _images(models.BATCHSIZE, seed)
    x, t = device.send(x), device.send(t)

    def step():
        with chainer.using_config('train', True):
            optimizer.update(model, x, t)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(1000 * (time.perf_counter() - start))
    peak = None
    if device.xp is numpy:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        step()
        peak = (tracemalloc.get_traced_memory()[1] - base) / 2 ** 20
        tracemalloc.stop()
    model = optimizer = None  # frees them (a del would leave step() a name undefined)
    gc.collect()
    return statistics.median(times), peak


def fgsm_epoch(variant, device, n_images, batchsize=200, seed=0):
    """Images per second of clean + white-box FGSM + black-box forward over ``n_images``."""
    seed_everything(seed)
    model = models.FC100(variant)
    model.to_device(device)
    x, t = _images(n_images, seed + 1)
    black = numpy.clip(x + 77 * numpy.sign(numpy.random.RandomState(seed).randn(*x.shape)),
                       0, 255).astype(numpy.float32)
    start = time.perf_counter()
    evaluate_set(model, None, x, t, 77, batchsize, 'batch', device, ['fgsm', 'blackbox'], black,
                 progress=True, desc='{} clean/white/black'.format(variant))
    _sync(device)
    elapsed = time.perf_counter() - start
    del model
    gc.collect()
    return n_images / elapsed, elapsed


def run(device, repeats=20, pd_repeats=5, fgsm_images=2000, pd_fgsm_images=400,
        variants=models.VARIANTS):
    lines = ['## Friendly networks: training iteration and FGSM evaluation', '',
             'Device {}; {}, Python {}, Chainer {}, NumPy {}, {} CPU cores. Batch 20 for '
             'training (median of {} iterations, {} for PD, after 2 warm-up ones); FGSM '
             'evaluation = clean + white-box FGSM + black-box forward in batches of 200, Batch '
             'Renormalization with batch statistics, over {} random images ({} for PD).'.format(
                 device, platform.machine(), platform.python_version(), chainer.__version__,
                 numpy.__version__, os.cpu_count(), repeats, pd_repeats, fgsm_images,
                 pd_fgsm_images), '',
             '| network | training iteration (ms) | peak memory of an iteration (MiB) '
             '| FGSM evaluation (images/s) |',
             '| --- | ---: | ---: | ---: |']
    for variant in variants:
        is_pd = variant == 'PD'
        ms, peak = training_iteration(variant, device, pd_repeats if is_pd else repeats)
        rate, _ = fgsm_epoch(variant, device, pd_fgsm_images if is_pd else fgsm_images)
        lines.append('| {} | {:.1f} | {} | {:.0f} |'.format(
            variant, ms, 'n/a' if peak is None else '{:.1f}'.format(peak), rate))
        print(lines[-1], flush=True)
    return '\n'.join(lines) + '\n'
