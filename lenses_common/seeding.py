"""One ``--seed`` for Python's, NumPy's and CuPy's generators."""
import contextlib
import os
import random

import numpy


def seed_everything(seed):
    """Seed ``random``, NumPy's global generator and, when importable, CuPy's generator.

    Chainer's initializers draw from NumPy's global generator (and CuPy's on a GPU), so this alone
    makes a CPU run repeatable. ``CHAINER_SEED`` is set too for code that reads it.
    """
    seed = int(seed)
    if not 0 <= seed < 2 ** 32:
        raise ValueError('--seed must be in 0..2**32-1, got {}'.format(seed))
    random.seed(seed)
    numpy.random.seed(seed)
    os.environ['CHAINER_SEED'] = str(seed)
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            cupy.random.seed(seed)
    except Exception:
        pass
    return seed


@contextlib.contextmanager
def fixed_random_states(seed=0):
    """Inside: Python's and NumPy's global generators seeded with ``seed``; after: both as they
    were (what ``chainer.testing.fix_random`` does around a test method)."""
    numpy_state, python_state = numpy.random.get_state(), random.getstate()
    numpy.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        numpy.random.set_state(numpy_state)
        random.setstate(python_state)


def add_seed_argument(parser, default=0):
    parser.add_argument('--seed', type=int, default=default,
                        help='seed for Python, NumPy and CuPy (default: %(default)s)')
    return parser
