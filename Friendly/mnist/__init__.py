"""MNIST as ``chainer.datasets.get_mnist(ndim=3, scale=255)`` returns it, read from local files.

The four standard ``*-idx?-ubyte.gz`` files are read from ``--mnist-dir`` or ``$MNIST_DIR`` and
checked against the published md5 sums before use; with neither, Chainer's own ``get_mnist``
downloads and caches them. :func:`test_arrays` gives the test images and labels of an evaluation
command. ``python -m Friendly.mnist`` (:mod:`Friendly.mnist.__main__`) checks the files.
"""
import gzip
import hashlib
import os

import numpy

from lenses_common import compat  # noqa: F401
import chainer
from chainer.datasets._mnist_helper import preprocess_mnist

# Published md5 sums of the compressed files (the same as ../shared/data/mnist/SOURCE.md).
FILES = {
    'train-images-idx3-ubyte.gz': 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
    'train-labels-idx1-ubyte.gz': 'd53e105ee54ea40749a09fcbcd1e9432',
    't10k-images-idx3-ubyte.gz': '9fb629c4189551a2d022fa330f9573f3',
    't10k-labels-idx1-ubyte.gz': 'ec29112dd5afa0611ce80d1b7f02629c',
}
SPLITS = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 60000),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', 10000),
}
FIX = ('replace it with the original file from the MNIST distribution (md5 {md5}), '
       'or leave --mnist-dir/MNIST_DIR unset to let Chainer download MNIST')


class MNISTError(ValueError):
    """A missing, truncated or altered MNIST file."""


def md5sum(path, chunk=1 << 20):
    digest = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def verify(directory):
    """Check that the four files are present with their published md5 sums; return their paths."""
    paths = {}
    for name, md5 in FILES.items():
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise MNISTError('MNIST file {} is missing; {}'.format(path, FIX.format(md5=md5)))
        actual = md5sum(path)
        if actual != md5:
            raise MNISTError('MNIST file {} is truncated or altered (md5 {}, expected {}); '
                             '{}'.format(path, actual, md5, FIX.format(md5=md5)))
        paths[name] = path
    return paths


def _read_idx(path, magic, count, item_shape):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    ndim = len(item_shape) + 1
    header = 4 + 4 * ndim
    head = numpy.frombuffer(data[:header], dtype='>i4')
    expected = (magic, count) + tuple(item_shape)
    if tuple(int(v) for v in head) != expected or len(data) != header + count * int(
            numpy.prod(item_shape, dtype=numpy.int64)):
        raise MNISTError('MNIST file {} does not hold {} items of shape {}'.format(
            path, count, item_shape))
    return numpy.frombuffer(data, dtype=numpy.uint8, offset=header).reshape((count,) + item_shape)


def load_raw(directory, split):
    """Return ``{'x': (N, 784) uint8, 'y': (N,) uint8}`` for 'train' or 'test' from verified
    files."""
    images, labels, count = SPLITS[split]
    x = _read_idx(os.path.join(directory, images), 2051, count, (28, 28))
    y = _read_idx(os.path.join(directory, labels), 2049, count, ())
    return {'x': x.reshape(count, 784), 'y': y}


def resolve_dir(mnist_dir=None):
    """The folder to read: the argument, else ``$MNIST_DIR``, else None (Chainer's download)."""
    if mnist_dir:
        return mnist_dir
    return os.environ.get('MNIST_DIR') or None


def download(ndim, scale):
    """Chainer's own ``get_mnist`` (its download cache), used when no folder is given."""
    return chainer.datasets.get_mnist(ndim=ndim, scale=scale)


def get_mnist(mnist_dir=None, ndim=3, scale=255.):
    """(train, test) TupleDatasets exactly as ``chainer.datasets.get_mnist(ndim=3, scale=255)``."""
    directory = resolve_dir(mnist_dir)
    if directory is None:
        try:
            return download(ndim, scale)
        except (OSError, EOFError, ValueError) as e:  # URLError is an OSError
            raise MNISTError(
                'MNIST is not in Chainer\'s download cache and cannot be downloaded ({}); put the '
                'four files {} into a folder and pass --mnist-dir FOLDER (or set MNIST_DIR)'.format(
                    str(e).splitlines()[0] if str(e) else type(e).__name__,
                    ', '.join(FILES))) from None
    if not os.path.isdir(directory):
        raise MNISTError('MNIST folder {} does not exist (from --mnist-dir or MNIST_DIR); put the '
                         'four files {} there'.format(directory, ', '.join(FILES)))
    verify(directory)
    dtype = chainer.get_dtype(None)
    return tuple(preprocess_mnist(load_raw(directory, split), True, ndim, scale, dtype,
                                  numpy.int32, False) for split in ('train', 'test'))


def add_mnist_argument(parser):
    parser.add_argument(
        '--mnist-dir', default=None,
        help='folder with the four MNIST *-idx?-ubyte.gz files (md5-checked); default: $MNIST_DIR, '
             "else Chainer's get_mnist download cache")
    return parser


def test_arrays(parser, mnist_dir, n=None):
    """The test images (float32, contiguous) and labels (int32), the first ``n`` only when given;
    a missing or damaged MNIST is one line through ``parser`` (exit status 2)."""
    try:
        _, test = get_mnist(mnist_dir)
    except MNISTError as e:
        parser.exit(2, '{}: error: {}\n'.format(parser.prog, e))
    x, t = test._datasets
    if n:
        x, t = x[:n], t[:n]
    return numpy.ascontiguousarray(x, dtype=numpy.float32), numpy.asarray(t, dtype=numpy.int32)
