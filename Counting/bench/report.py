"""Counting benchmarks (``make bench``): generator, detection, training.

    python -m Counting.bench --out results/bench

Writes ``<out>/counting.md`` (atomically) and prints it. The generator and detection sections come
from :mod:`Counting.bench.generator` and :mod:`Counting.bench.detection`; a section whose module
is missing or fails says so instead of stopping the others. (``make bench`` also runs
``tools/bench_libraries.py``: SciPy's labelling and K-means against the hand-written code they
replaced, kept there outside the packages, and the ``upper`` and ``kmeans`` detection methods
before and after, into ``<out>/bench_libraries.md``.) The training section
(:mod:`Counting.bench.training`) times full training steps (forward, MSE loss, backward,
momentum SGD update) of each network and activation at the thesis's size: 1000 x 1000 images,
batch 4. The memory section (:mod:`Counting.bench.memory`) compares the peak memory of a few
training iterations at 1000 x 1000 with the dataset in memory and streamed from disk
(``Counting.train --stream``), for two dataset sizes (``--memory-sizes``).
"""
import os
import platform
import sys
import traceback

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting.bench.training import training_section
from lenses_common.device import add_device_argument, device_from_args, positive_int
from lenses_common.runfolder import atomic_write_text, check_out_arg
from lenses_common.seeding import add_seed_argument, seed_everything
from lenses_common import cli


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


def build_parser():
    p = cli.ArgumentParser(
        prog='python -m Counting.bench',
        description='Counting benchmarks: dataset generator, detection, training throughput, '
                    'training memory in memory vs streamed; '
                    'writes <out>/counting.md.')
    p.add_argument('--out', '-o', default=os.path.join('results', 'bench'),
                   help='folder for counting.md (default: %(default)s)')
    p.add_argument('--iterations', type=positive_int, default=3,
                   help='timed training iterations per network (default: %(default)s)')
    p.add_argument('--batchsize', '-b', type=positive_int, default=4,
                   help='training batch size (default: %(default)s)')
    p.add_argument('--image-size', type=positive_int, default=1000,
                   help='side of the square training images (default: %(default)s, the '
                        'thesis\'s)')
    p.add_argument('--skip', nargs='*', default=[],
                   choices=('generator', 'detection', 'training', 'memory'),
                   help='sections to leave out')
    p.add_argument('--memory-sizes', type=positive_int, nargs=2, default=[40, 160],
                   metavar='N', help='dataset sizes of the memory section (default: 40 160)')
    add_device_argument(p)
    add_seed_argument(p)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out)
    if args.image_size < 835 and 'training' not in args.skip:
        parser.error('--image-size {}: the convolutionallarge network needs at least 835 '
                     'pixels'.format(args.image_size))
    device = device_from_args(args, parser)
    seed_everything(args.seed)
    parts = ['# Counting benchmarks', '',
             'Python {}, Chainer {}, NumPy {}, {}.'.format(
                 platform.python_version(), chainer.__version__, numpy.__version__,
                 platform.processor() or platform.machine()), '']
    if 'generator' not in args.skip:
        parts.append(_section('Counting: dataset generator', 'Counting.bench.generator',
                              lambda m: m.run()))
    if 'detection' not in args.skip:
        parts.append(_section('Counting: second-derivative detection', 'Counting.bench.detection',
                              lambda m: m.run(device=device)))
    if 'training' not in args.skip:
        parts.append(training_section(device, image_size=args.image_size,
                                      batchsize=args.batchsize, iterations=args.iterations))
    if 'memory' not in args.skip:
        # Imported here: its cases run as ``python -m Counting.bench.memory``, which must not
        # find the module already imported by the package.
        from Counting.bench.memory import memory_section
        parts.append(memory_section(sizes=args.memory_sizes, seed=args.seed))
    text = '\n'.join(parts)
    path = os.path.join(args.out, 'counting.md')
    atomic_write_text(path, text)
    print(text)
    print('wrote {}'.format(path), file=sys.stderr)
    return 0
