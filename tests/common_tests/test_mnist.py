import gzip
import os
import shutil

import numpy
import pytest

from Friendly import mnist
from Friendly.mnist import __main__ as mnist_cli

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope='module')
def loaded(mnist_dir):
    return mnist.get_mnist(mnist_dir)


def test_checksums_match_published(mnist_dir):
    paths = mnist.verify(mnist_dir)
    assert sorted(os.path.basename(p) for p in paths.values()) == sorted(mnist.FILES)


def test_shapes_dtypes_and_range(loaded):
    train, test = loaded
    for data, n in ((train, 60000), (test, 10000)):
        x, y = data._datasets
        assert x.shape == (n, 1, 28, 28) and x.dtype == numpy.float32
        assert y.shape == (n,) and y.dtype == numpy.int32
        assert x.min() == 0 and x.max() == 255
        # scale=255 keeps the raw byte values: every pixel is integral
        assert numpy.array_equal(x, numpy.round(x))
        example_x, example_y = data[0]
        assert example_x.shape == (1, 28, 28)


def test_label_counts_and_known_values(loaded):
    train, test = loaded
    assert numpy.bincount(train._datasets[1], minlength=10).tolist() == TRAIN_COUNTS
    assert numpy.bincount(test._datasets[1], minlength=10).tolist() == TEST_COUNTS
    # The first ten training labels of the original MNIST order (SOURCE.md's visual check).
    assert train._datasets[1][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    mean = train._datasets[0].astype(numpy.float64).mean() / 255
    assert abs(mean - 0.1306604762738429) < 1e-12


def test_pixels_match_an_independent_idx_parse(loaded, mnist_dir):
    # Read the test images byte by byte from the gzip with a header parse of our own.
    with gzip.open(os.path.join(mnist_dir, 't10k-images-idx3-ubyte.gz'), 'rb') as f:
        raw = f.read()
    assert int.from_bytes(raw[0:4], 'big') == 2051
    first = numpy.frombuffer(raw[16:16 + 3 * 784], dtype=numpy.uint8).reshape(3, 1, 28, 28)
    assert numpy.array_equal(loaded[1]._datasets[0][:3], first.astype(numpy.float32))


def _copy(mnist_dir, tmp_path):
    target = tmp_path / 'mnist'
    shutil.copytree(mnist_dir, target)
    for p in target.iterdir():
        os.chmod(p, 0o644)
    return target


def test_corrupted_copy_is_refused_by_name(mnist_dir, tmp_path):
    target = _copy(mnist_dir, tmp_path)
    victim = target / 't10k-labels-idx1-ubyte.gz'
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(mnist.MNISTError, match='t10k-labels-idx1-ubyte.gz.*altered'):
        mnist.get_mnist(str(target))


def test_truncated_and_missing_files_are_refused(mnist_dir, tmp_path):
    target = _copy(mnist_dir, tmp_path)
    victim = target / 'train-labels-idx1-ubyte.gz'
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(mnist.MNISTError, match='train-labels-idx1-ubyte.gz.*truncated'):
        mnist.get_mnist(str(target))
    victim.unlink()
    with pytest.raises(mnist.MNISTError, match='train-labels-idx1-ubyte.gz is missing'):
        mnist.get_mnist(str(target))


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(mnist.MNISTError, match='does not exist'):
        mnist.get_mnist(str(tmp_path / 'nowhere'))


def test_environment_variable_and_chainer_fallback(monkeypatch, mnist_dir):
    calls = []
    monkeypatch.setattr(mnist, 'download',
                        lambda *args: calls.append(args) or ('train', 'test'))
    monkeypatch.delenv('MNIST_DIR', raising=False)
    assert mnist.get_mnist() == ('train', 'test')
    assert calls == [(3, 255.)]
    monkeypatch.setenv('MNIST_DIR', mnist_dir)
    assert mnist.resolve_dir() == mnist_dir


def test_cli_reports_a_bad_folder_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        mnist_cli.main(['--mnist-dir', str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.partition('error: ')[2].startswith('MNIST file') and err.count('\n') == 1
