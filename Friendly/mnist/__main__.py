"""Check and summarise the MNIST files: ``python -m Friendly.mnist [--mnist-dir DIR]``."""
import sys

import numpy

from Friendly.mnist import MNISTError, add_mnist_argument, get_mnist
from lenses_common import cli


def main(argv=None):
    parser = cli.ArgumentParser(description='Check and summarise the MNIST files.')
    add_mnist_argument(parser)
    args = parser.parse_args(argv)
    try:
        train, test = get_mnist(args.mnist_dir)
    except MNISTError as e:
        parser.exit(2, parser.prog + ': error: {}\n'.format(e))
    for name, data in (('train', train), ('test', test)):
        x, y = data._datasets
        print('{}: images {} {} range {:.0f}..{:.0f}, label counts {}'.format(
            name, x.shape, x.dtype, x.min(), x.max(), numpy.bincount(y, minlength=10).tolist()))


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
