"""Counting training benchmark: full training steps (forward, MSE loss, backward, momentum SGD
update) of each network and activation at the thesis's size, 1000 x 1000 images, batch 4 (a
section of ``python -m Counting.bench``)."""
import os
import sys
import time

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting import models
from lenses_common.seeding import seed_everything

#: (arch, activation, batch_renorm) combinations timed by default.
CASES = (
    ('convolutional', 'relu', False),
    ('convolutional', 'softplus', False),
    ('convolutional', 'sigmoid', True),
    ('convolutional', 'modsoftplus', False),
    ('convolutionallarge', 'relu', False),
    ('convolutionallarge', 'softplus', False),
    ('convolutionallarge', 'sigmoid', True),
)


def time_training(arch, activation, batch_renorm, device, image_size=1000, batchsize=4,
                  iterations=3, warmup=1, seed=0):
    """Seconds per training iteration (median over ``iterations``, after ``warmup``)."""
    seed_everything(seed)
    model = models.build_counter(arch, activation, batch_renorm=batch_renorm)
    loss_fn = models.CountingLoss(model)
    loss_fn.to_device(device)
    optimizer = chainer.optimizers.MomentumSGD(lr=1e-6, momentum=0.85)
    optimizer.setup(loss_fn)
    rng = numpy.random.RandomState(seed)
    x = device.send(rng.randint(0, 256, (batchsize, 3, image_size, image_size))
                    .astype(numpy.float32))
    t = device.send(rng.randint(0, 10, (batchsize, 2)).astype(numpy.float32))
    times = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        optimizer.update(loss_fn, x, t)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(numpy.median(times))


def _sync(device):
    if device.xp is not numpy:
        device.xp.cuda.Stream.null.synchronize()


def training_section(device, cases=CASES, image_size=1000, batchsize=4, iterations=3,
                     progress=True):
    lines = ['## Counting: training throughput', '',
             'Full training steps (forward, MSE, backward, momentum SGD update) on random '
             '{0}x{0} images, batch {1}, median of {2} iterations after one warm-up, device {3}, '
             '{4} CPU cores reported by the OS.'.format(image_size, batchsize, iterations, device,
                                                      os.cpu_count()), '',
             '| network | activation | BRN | s / iteration | images / s |',
             '| --- | --- | --- | ---: | ---: |']
    for arch, activation, brn in cases:
        if progress:
            print('training benchmark: {} {}{} ...'.format(arch, activation,
                                                          ' + BRN' if brn else ''),
                  file=sys.stderr, flush=True)
        sec = time_training(arch, activation, brn, device, image_size, batchsize, iterations)
        lines.append('| {} | {} | {} | {:.3f} | {:.2f} |'.format(
            arch, activation, 'yes' if brn else 'no', sec, batchsize / sec))
    return '\n'.join(lines) + '\n'
