"""Counting memory benchmark: peak memory of a few training iterations at 1000 x 1000 with the
dataset held in memory (``load_dataset``) and streamed from disk (``Counting.train --stream``),
for two dataset sizes, against the same iterations on one random batch without a dataset (a
section of ``python -m Counting.bench``; alone: ``python -m Counting.bench.memory``).

Each case runs in a fresh process (``--child``), so that its peak is its own. Two measures:

* **PSS, sampled**: every 20 ms the benchmark sums the proportional set size
  (``/proc/PID/smaps_rollup``) of the case's process and all its descendants (the loader's or the
  iterator's worker processes). PSS splits pages shared between processes (the loader's shared
  image buffer, the pages a forked worker still shares with its parent) among them, so the sum is
  what the process tree holds, without double counting. A peak shorter than 20 ms can be missed.
* **ru_maxrss**: ``resource.getrusage(RUSAGE_SELF)`` of the training process (exact peak of that
  process alone), and ``RUSAGE_CHILDREN`` (the largest single worker's peak RSS, shared pages
  counted in full).

The in-memory case reads its whole image array once after loading, as the first epoch does: the
loader's workers write the pixels into a shared buffer whose pages count in the training
process's RSS and PSS only once it touches them, and a few iterations would touch only a few.

"Beyond the model" subtracts the same measure of the ``model`` case: the network, optimizer and
the training iterations' activations, built and run on one random batch with no dataset.

The network is the thesis's ``convolutionallarge`` (``--arch``): the figures beyond the model
measure the data path only and are the same with ``convolutional`` (within 10 MiB on 2 cores),
but the whole section takes under a minute on a quiet 2-core CPU even with the large network.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy

#: Dataset sizes compared by default (images of 1000 x 1000).
SIZES = (40, 160)


def _pss_kb(pid):
    try:
        with open('/proc/{}/smaps_rollup'.format(pid)) as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(root):
    """``root`` and every process below it (from the parent ids in ``/proc/*/stat``)."""
    children = {}
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open('/proc/{}/stat'.format(name)) as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(')') + 2:].split()[1])
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def measure_child(argv, interval=0.02):
    """Run ``python -m Counting.bench.memory --child ...argv``; returns its JSON report with
    ``peak_pss_mib``, the largest sampled PSS sum of its process tree."""
    process = subprocess.Popen([sys.executable, '-m', 'Counting.bench.memory', '--child'] + argv,
                               stdout=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while process.poll() is None:
            peak[0] = max(peak[0], sum(_pss_kb(p) for p in _descendants(process.pid)))
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError('memory benchmark case {} failed (exit status {})'.format(
            argv, process.returncode))
    report = json.loads(out.strip().splitlines()[-1])
    report['peak_pss_mib'] = peak[0] / 1024.0
    return report


def run_child(mode, data, arch, batchsize, iterations, workers, seed):
    """One case in this process: ``model`` (random batch, no dataset), ``memory`` or ``stream``.
    Prints a JSON line with the ru_maxrss figures."""
    from lenses_common import compat  # noqa: F401  (before chainer)
    import chainer
    from chainer.dataset import concat_examples

    from Counting import models
    from Counting.datasets import load_dataset, stream_dataset, stream_iterator
    from lenses_common.seeding import seed_everything
    from lenses_common.training import EpochSeededOrder

    seed_everything(seed)
    model = models.build_counter(arch, 'relu')
    loss = models.CountingLoss(model)
    optimizer = chainer.optimizers.SGD(lr=1e-7)
    optimizer.setup(loss)
    iterator = None
    if mode == 'model':
        rng = numpy.random.RandomState(seed)
        # The batch as the iterators give it (uint8 pixels as float32), without int64 temporaries.
        batches = [concat_examples([
            (rng.randint(0, 256, (3, 1000, 1000), dtype=numpy.uint8).astype(numpy.float32),
             numpy.zeros(2, numpy.float32)) for _ in range(batchsize)])] * iterations
    elif mode == 'memory':
        dataset = load_dataset(data, workers=workers)
        # Read every image once, as an epoch does: the loader's workers wrote the pixels into a
        # shared buffer, whose pages count in this process's RSS and PSS only once touched.
        dataset.images.max()
        order = EpochSeededOrder(seed)
        iterator = chainer.iterators.SerialIterator(dataset, batchsize, order_sampler=order)
        order.iterator = iterator
    else:
        iterator = stream_iterator(stream_dataset(data), batchsize, seed, n_processes=workers)
    start = time.perf_counter()
    for i in range(iterations):
        x, t = batches[i] if iterator is None else concat_examples(next(iterator))
        optimizer.update(loss, x, t)
    seconds = time.perf_counter() - start
    if iterator is not None and hasattr(iterator, 'finalize'):
        iterator.finalize()   # joins the workers, so RUSAGE_CHILDREN counts them
    print(json.dumps({
        'mode': mode, 'seconds': seconds,
        'maxrss_self_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        'maxrss_children_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}))


def _generate(folder, count, seed):
    from Counting.datasets import generate_dataset
    generate_dataset(folder, count, image_size=(1000, 1000), scale=(60, 120), shape_limit=20,
                     seed=seed, workers=2, progress=False)


def memory_section(sizes=SIZES, arch='convolutionallarge', batchsize=4, iterations=2, workers=2,
                   seed=0, progress=True):
    """The report section (markdown): one row per case."""
    def say(text):
        if progress:
            print('memory benchmark: ' + text, file=sys.stderr, flush=True)

    root = tempfile.mkdtemp(prefix='counting_memory_')
    rows = []
    try:
        common = ['--arch', arch, '--batchsize', str(batchsize), '--iterations',
                  str(iterations), '--workers', str(workers), '--seed', str(seed)]
        say('model only ...')
        base = measure_child(['model'] + common)
        for n in sizes:
            folder = os.path.join(root, str(n))
            say('generating {} images of 1000 x 1000 ...'.format(n))
            _generate(folder, n, seed)
            for mode in ('memory', 'stream'):
                say('{} images, {} ...'.format(n, mode))
                rows.append((n, measure_child([mode, '--data', folder] + common)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = ['## Counting: training memory, dataset in memory vs streamed from disk', '',
             'Peak memory of {it} training iterations ({arch}, batch {b}, 1000 x 1000 images, '
             '{w} worker processes, seed {s}), each case in a fresh process. "PSS" is the largest '
             'sum of the proportional set sizes of the training process and its worker processes '
             '(sampled every 20 ms); "RSS" is `ru_maxrss` of the training process alone '
             '(`getrusage(RUSAGE_SELF)`). "Beyond the model" subtracts the same iterations on '
             'one random batch without a dataset: PSS {bp:.0f} MiB, RSS {br:.0f} MiB. {cpu} CPU '
             'cores reported by the OS.'.format(it=iterations, arch=arch, b=batchsize, w=workers,
                                                s=seed, bp=base['peak_pss_mib'],
                                                br=base['maxrss_self_mib'], cpu=os.cpu_count()),
             '', '| images | mode | peak PSS, MiB | beyond the model, MiB | peak RSS (process), '
             'MiB | beyond the model, MiB | largest worker RSS, MiB | s / iteration |',
             '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    for n, r in rows:
        lines.append('| {} | {} | {:.0f} | {:.0f} | {:.0f} | {:.0f} | {:.0f} | {:.2f} |'.format(
            n, 'in memory' if r['mode'] == 'memory' else 'streamed (`--stream`)',
            r['peak_pss_mib'], r['peak_pss_mib'] - base['peak_pss_mib'], r['maxrss_self_mib'],
            r['maxrss_self_mib'] - base['maxrss_self_mib'], r['maxrss_children_mib'],
            r['seconds'] / iterations))
    return '\n'.join(lines) + '\n'
