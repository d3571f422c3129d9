"""Check a Counting dataset folder and print a summary (the loader is
:mod:`Counting.datasets.loader`).

    python -m Counting.check_dataset DIR [--types tri sq] [--workers 2] [--image-size W H]
"""
import sys

from Counting.datasets.loader import DatasetError, load_dataset
from Counting.datasets.shapes import TYPES
from lenses_common.cli import positive_int
from lenses_common.progress import add_progress_argument
from lenses_common import cli


def main(argv=None):
    parser = cli.ArgumentParser(
        prog='python -m Counting.check_dataset',
        description='Check a Counting dataset folder (every PNG and truths.json) and print a '
                    'summary.')
    parser.add_argument('folder', help='dataset folder written by python -m Counting.generate')
    parser.add_argument('--types', nargs='+', choices=TYPES, default=None,
                        help='shape types to load (default: those of the dataset)')
    parser.add_argument('--workers', '-j', type=positive_int, default=2,
                        help='worker processes (default: %(default)s)')
    parser.add_argument('--image-size', type=int, nargs=2, metavar=('WIDTH', 'HEIGHT'),
                        default=None, help='size every image must have (default: as the first)')
    add_progress_argument(parser)
    args = parser.parse_args(argv)
    try:
        data = load_dataset(args.folder, types=args.types, workers=args.workers,
                            expect_size=args.image_size, progress=args.progress)
    except DatasetError as e:
        print('{}: error: {}'.format(parser.prog, e), file=sys.stderr)
        return 2
    width, height = data.image_size
    print('{}: {} images of {}x{}, types {}'.format(args.folder, len(data), width, height,
                                                    ', '.join(data.types)))
    for k, kind in enumerate(data.types):
        column = data.counts[:, k]
        print('  {}: mean {:.3f}, min {}, max {}'.format(kind, float(column.mean()),
                                                         int(column.min()), int(column.max())))
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
