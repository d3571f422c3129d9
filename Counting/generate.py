"""Generate a Counting dataset of triangles and squares (thesis 2.2).

    python -m Counting.generate --out data/counting/train --count 1000 --scale 60 120

Writes ``0000.png, 0001.png, ...``, ``truths.json``, ``annotations.json`` and ``settings.json``;
the generator and its placement rule are described in :mod:`Counting.datasets.generator`.
"""
import glob
import os
import shutil
import sys
import tempfile

from Counting.datasets import limits
from Counting.datasets import shapes
from Counting.datasets.generator import DEFAULT_COLOR, DEFAULT_IMAGE_SIZE, DEFAULT_MAX_ATTEMPTS
from Counting.datasets.generator import DEFAULT_SCALE, DEFAULT_SHAPE_LIMIT
from Counting.datasets.generator import generate_dataset
from Counting.datasets.png import DEFAULT_PNG_LEVEL
from lenses_common.cli import positive_int
from lenses_common.runfolder import OutError, check_out_dir, current_umask, move_aside
from lenses_common import cli, lock

#: The hidden folder beside ``--out`` that a generation writes into (``.NAME.partial-XXXX``).
PARTIAL_PREFIX = '.{}.partial-'


def partial_folders(out):
    """The hidden folders of unfinished generations of ``out`` (see :data:`PARTIAL_PREFIX`)."""
    out = os.path.abspath(out)
    return sorted(glob.glob(os.path.join(glob.escape(os.path.dirname(out)),
                                         glob.escape(PARTIAL_PREFIX.format(
                                             os.path.basename(out))) + '*')))


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Counting.generate',
        description='Generate a Counting dataset: PNG images of triangles and squares on a black '
                    'canvas with truths.json (counts), annotations.json (polygons and boxes) and '
                    'settings.json (thesis chapter 2).')
    parser.add_argument('--out', '-o', required=True,
                        help='output folder (created; refused when not empty, unless --force)')
    parser.add_argument('--count', '-n', type=positive_int, required=True,
                        help='number of images (at most {:,})'.format(limits.MAX_COUNT))
    parser.add_argument('--force', action='store_true',
                        help='--out is not empty: move it aside to OUT.old-N first (nothing is '
                             'deleted); without it a non-empty --out is refused')
    parser.add_argument('--image-size', type=positive_int, nargs=2, metavar=('WIDTH', 'HEIGHT'),
                        default=list(DEFAULT_IMAGE_SIZE),
                        help='canvas size in pixels, each at most {:,} (default: '
                             '%(default)s)'.format(limits.MAX_IMAGE_SIDE))
    parser.add_argument('--types', nargs='+', default=list(shapes.TYPES), choices=shapes.TYPES,
                        help='shape types to draw (default: %(default)s)')
    parser.add_argument('--shape-limit', type=cli.bounded_int(0, limits.MAX_SHAPES),
                        default=DEFAULT_SHAPE_LIMIT,
                        help='largest total number of shapes in an image, at most {:,}; counts '
                             'are drawn uniformly over all combinations up to it (default: '
                             '%(default)s)'.format(limits.MAX_SHAPES))
    parser.add_argument('--scale', type=int, nargs=2, metavar=('LO', 'HI'),
                        default=list(DEFAULT_SCALE),
                        help='inclusive bounds of the integer shape size in pixels (default: '
                             '%(default)s, the original generator\'s; the thesis used larger)')
    parser.add_argument('--no-shape-scaling', dest='shape_scaling', action='store_false',
                        help='give every shape the lower scale bound')
    parser.add_argument('--no-shape-rotations', dest='shape_rotations', action='store_false',
                        help='keep every shape axis-aligned (default: 0..359 degrees per shape)')
    parser.add_argument('--limit-scale-resampling', action='store_true',
                        help='draw one scale per image instead of one per shape (the thesis\'s '
                             'final choice)')
    parser.add_argument('--color', type=int, nargs=3, metavar=('R', 'G', 'B'),
                        default=list(DEFAULT_COLOR),
                        help='fill and outline colour (default: %(default)s)')
    parser.add_argument('--min-gap', type=cli.finite_float(0), default=0.0, metavar='PIXELS',
                        help='beyond the thesis: keep drawn shapes at least this many pixels '
                             'apart; 2 or more keeps every shape a separate blob (default: 0, the '
                             'thesis\'s rule, where non-intersecting shapes may still touch once '
                             'drawn)')
    parser.add_argument('--seed', type=cli.bounded_int(0, 2 ** 63 - 1), default=0,
                        help='random seed; the same seed gives byte-identical files '
                             '(default: %(default)s)')
    parser.add_argument('--workers', '-j', type=positive_int, default=2,
                        help='worker processes (default: %(default)s)')
    parser.add_argument('--max-attempts', type=positive_int, default=DEFAULT_MAX_ATTEMPTS,
                        help='offsets tried for one shape before giving up with an error, at '
                             'most {:,} (default: %(default)s)'.format(cli.MAX_ATTEMPTS))
    parser.add_argument('--png-compress-level', type=int, default=DEFAULT_PNG_LEVEL,
                        choices=range(10), metavar='0..9',
                        help='zlib level of the PNG files, same pixels at every level; 6 (zlib\'s '
                             'default) writes files about 2.5 times smaller at twice the encoding '
                             'time (default: %(default)s)')
    parser.add_argument('--no-progress', dest='progress', action='store_false',
                        help='do not show the progress bar')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)
    checks = [
        (len(set(args.types)) != len(args.types), '--types lists a type twice'),
        (not 1 <= args.scale[0] <= args.scale[1], '--scale needs 1 <= LO <= HI'),
        (not all(0 <= c <= 255 for c in args.color) or not any(args.color),
         '--color needs three integers in 0..255, not black'),
    ]
    for bad, message in checks:
        if bad:
            parser.error(message)
    try:
        limits.check_bounds(args.count, args.image_size[0], args.image_size[1], args.shape_limit,
                            args.scale[1], args.workers)
        out = check_out_dir(args.out)
        # One generator per dataset: the folder does not exist under its name until it is
        # complete, so its lock file lies beside it (.NAME.lock).
        lock.claim_beside(out)
    except (ValueError, OutError) as e:
        cli.fail(parser, e)
    for stale in partial_folders(out):  # left by a killed generation of this folder
        shutil.rmtree(stale, ignore_errors=True)
    if os.path.isdir(out) and os.listdir(out):
        if not args.force:
            parser.error('--out {} is not empty; pass --force to move it aside to {}.old-N '
                         'first'.format(args.out, os.path.normpath(args.out)))
        try:
            print('moved {} aside to {}'.format(args.out, move_aside(out)), file=sys.stderr)
        except OutError as e:
            cli.fail(parser, e)
    print('Generating {} images into {} (size {}x{}, types {}, shape limit {}, scale {}..{}, '
          'seed {})'.format(args.count, args.out, args.image_size[0], args.image_size[1],
                            ' '.join(args.types), args.shape_limit, args.scale[0],
                            args.scale[1], args.seed), file=sys.stderr)
    # Written into a hidden folder beside --out and renamed to it when complete: an interrupted
    # or failed generation leaves no half-written dataset under the final name.
    try:
        partial = tempfile.mkdtemp(prefix=PARTIAL_PREFIX.format(os.path.basename(out)),
                                   dir=os.path.dirname(out))
        os.chmod(partial, 0o777 & ~current_umask())
    except OSError as e:
        cli.fail(parser, 'cannot write to {}: {}'.format(os.path.dirname(out), e.strerror or e))
    try:
        generate_dataset(
            partial, args.count, image_size=args.image_size, types=args.types,
            shape_limit=args.shape_limit, scale=args.scale, shape_scaling=args.shape_scaling,
            shape_rotations=args.shape_rotations,
            limit_scale_resampling=args.limit_scale_resampling, color=args.color,
            min_gap=args.min_gap, seed=args.seed, workers=args.workers,
            max_attempts=args.max_attempts, progress=args.progress,
            png_compress_level=args.png_compress_level)
        if os.path.isdir(out):
            os.rmdir(out)  # empty (checked above)
        os.rename(partial, out)
    except BaseException as e:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(e, ValueError):
            print('{}: error: {}'.format(parser.prog, e), file=sys.stderr)
            return 2
        if isinstance(e, OSError):
            print('{}: error: cannot write to {}: {}'.format(parser.prog, args.out, e),
                  file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
