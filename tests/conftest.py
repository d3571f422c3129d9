import os

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
