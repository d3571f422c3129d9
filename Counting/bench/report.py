"""Counting benchmarks (``make bench``): generator, detection, training, memory, as one report
(the command line is ``python -m Counting.bench``, which writes ``<out>/counting.md``).

The generator and detection sections come from :mod:`Counting.bench.generator_timing` and
:mod:`Counting.bench.detection_timing`; a section whose module
is missing or fails says so instead of stopping the others. (``make bench`` also runs
``tools/bench_libraries.py``: SciPy's labelling and K-means against the hand-written code they
replaced, kept there outside the packages, and the ``upper`` and ``kmeans`` detection methods
before and after, into ``<out>/bench_libraries.md``.) The training section
(:mod:`Counting.bench.training`) times full training steps (forward, MSE loss, backward,
momentum SGD update) of each network and activation at the thesis's size: 1000 x 1000 images,
batch 4. The memory section (:mod:`Counting.bench.memory_cases`) compares the peak memory of a few
training iterations at 1000 x 1000 with the dataset in memory and streamed from disk
(``Counting.train --stream``), for two dataset sizes (``--memory-sizes``).
"""
import platform
import traceback

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting.bench.training import training_section


def _section(title, module_name, call):
    """Run another engineer's benchmark; a missing module or a failure becomes a note."""
    try:
        module = __import__(module_name, fromlist=['run'])
    except ImportError as e:
        return '## {}\n\nNot run: module {} is missing ({}).\n'.format(title, module_name, e)
    try:
        return call(module).rstrip('\n') + '\n'
    except Exception as e:
        traceback.print_exc()
        return '## {}\n\nNot run: {}.run() failed ({}: {}).\n'.format(
            title, module_name, type(e).__name__, e)


def counting_report(device, image_size=1000, batchsize=4, iterations=3, skip=(),
                    memory_sizes=(40, 160), seed=0):
    """The report (markdown): every section not in ``skip`` (``generator``, ``detection``,
    ``training``, ``memory``)."""
    parts = ['# Counting benchmarks', '',
             'Python {}, Chainer {}, NumPy {}, {}.'.format(
                 platform.python_version(), chainer.__version__, numpy.__version__,
                 platform.processor() or platform.machine()), '']
    if 'generator' not in skip:
        parts.append(_section('Counting: dataset generator', 'Counting.bench.generator_timing',
                              lambda m: m.run()))
    if 'detection' not in skip:
        parts.append(_section('Counting: second-derivative detection',
                              'Counting.bench.detection_timing', lambda m: m.run(device=device)))
    if 'training' not in skip:
        parts.append(training_section(device, image_size=image_size,
                                      batchsize=batchsize, iterations=iterations))
    if 'memory' not in skip:
        from Counting.bench.memory_cases import memory_section
        parts.append(memory_section(sizes=memory_sizes, seed=seed))
    return '\n'.join(parts)
