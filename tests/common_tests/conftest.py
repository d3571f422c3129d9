"""Set-up shared by the tests of this folder: the global random states fixed around every test, and
for the bad-input tests a tiny Counting dataset and run, a tiny Friendly run, and the command
lines that make them."""
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)

from Counting import generate as c_generate
from Counting import train as c_train
from Friendly import train as f_train
from lenses_common import lock, seeding


def counting_command(train_dir, out, *extra):
    """A ``Counting.train`` command line of one quick epoch on ``train_dir`` into ``out``."""
    return ['--train', train_dir, '--out', out, '--batchsize', '4', '--no-progress', '--device',
            '@numpy', '--workers', '1', '--epoch', '1', '--lr', '1e-4', '--snapshot-interval',
            '1'] + list(extra)


def friendly_command(out, mnist_dir, *extra):
    """A ``Friendly.train`` command line of one epoch of S on 200 images into ``out``."""
    return ['--variant', 'S', '--seed', '0', '--out', str(out), '--epoch', '1',
            '--train-subset', '200', '--val-subset', '200', '--no-progress', '--mnist-dir',
            mnist_dir] + list(extra)


@pytest.fixture
def counting_args():
    """:func:`counting_command`."""
    return counting_command


@pytest.fixture
def friendly_args():
    """:func:`friendly_command`."""
    return friendly_command


@pytest.fixture(scope='module')
def counting(tmp_path_factory):
    """A tiny generated Counting dataset (12 training, 4 test images) and a run trained on it, one
    per test module: {'train', 'test', 'run', 'root'}."""
    root = tmp_path_factory.mktemp('counting')
    train_dir, test_dir, run = str(root / 'train'), str(root / 'test'), str(root / 'run')
    c_generate.generate_dataset(train_dir, 12, image_size=(100, 100), scale=(12, 16),
                                shape_limit=4, seed=0, workers=1, progress=False)
    c_generate.generate_dataset(test_dir, 4, image_size=(100, 100), scale=(12, 16),
                                shape_limit=4, seed=1, workers=1, progress=False)
    assert c_train.main(counting_command(train_dir, run, '--test', test_dir)) == 0
    lock.release(run)
    return {'train': train_dir, 'test': test_dir, 'run': run, 'root': root}


@pytest.fixture(scope='module')
def friendly(tmp_path_factory, mnist_dir):
    """A Friendly S run trained for one epoch on 200 images, one per test module."""
    out = tmp_path_factory.mktemp('friendly') / 'S'
    f_train.main(friendly_command(out, mnist_dir))
    lock.release(str(out))
    return out


@pytest.fixture(autouse=True)
def fixed_random():
    """``chainer.testing.fix_random`` for test functions (``lenses_common.seeding``)."""
    with seeding.fixed_random_states(0):
        yield
