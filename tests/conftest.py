import os
import pickle

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
from lenses_common.device import gpu_available

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MNIST = os.path.join(os.path.dirname(REPO), 'shared', 'data', 'mnist')


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason='needs CuPy and a GPU')
    for item in items:
        # The marker itself, not `'gpu' in item.keywords`: keywords also hold the names of the
        # folders above the test, and a checkout in a folder named gpu would skip every test.
        if item.get_closest_marker('gpu') is not None:
            item.add_marker(skip)


@pytest.fixture(scope='session')
def mnist_dir():
    """The genuine MNIST folder: $MNIST_DIR, else ../shared/data/mnist; skip when neither exists."""
    directory = os.environ.get('MNIST_DIR') or SHARED_MNIST
    if not os.path.isdir(directory):
        pytest.skip('no MNIST folder (set MNIST_DIR)')
    return directory


# ---------------------------------------------------------------------------------------------
# Booby-trapped model files: loading them the unsafe way runs code that creates a file.

class Payload:
    """Unpickling this creates ``marker``: the stand-in for code run from a model file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


def write_pickle_payload(path, marker):
    """A plain pickle (named like a model file) that creates ``marker`` when loaded."""
    with open(path, 'wb') as f:
        pickle.dump({'W': Payload(marker)}, f)


def write_object_npz(path, marker):
    """An .npz whose ``W`` member is an object array that creates ``marker`` when unpickled."""
    obj = numpy.empty(1, dtype=object)
    obj[0] = Payload(marker)
    with open(path, 'wb') as f:
        numpy.savez(f, W=obj)


@pytest.fixture
def payloads():
    """``(write_pickle_payload, write_object_npz)``, each ``(path, marker)``."""
    return write_pickle_payload, write_object_npz
