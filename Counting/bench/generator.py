"""Command line of the generator benchmark (:mod:`Counting.bench.generator_timing`).

    python -m Counting.bench.generator [--count 100] [--out results/bench]
"""
import os
import sys

from Counting.bench.generator_timing import run
from lenses_common.cli import positive_int
from lenses_common.runfolder import atomic_write_text, check_out_arg
from lenses_common import cli


def main(argv=None):
    parser = cli.ArgumentParser(
        prog='python -m Counting.bench.generator',
        description='Images per second of the Counting generator (1 and 2 workers) against a '
                    'plain single-process rejection loop, and the share of merged blobs.')
    parser.add_argument('--count', type=positive_int, default=100,
                        help='images per timed run (default: %(default)s)')
    parser.add_argument('--blob-count', type=positive_int, default=300,
                        help='images for the merged-blob share (default: %(default)s)')
    parser.add_argument('--repeats', type=positive_int, default=3,
                        help='timed runs per generator, the best is kept (default: %(default)s)')
    parser.add_argument('--out', default=None,
                        help='folder for generator.md (default: print only)')
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out)
    text = run(args.count, args.blob_count, args.repeats)
    print(text)
    if args.out:
        atomic_write_text(os.path.join(args.out, 'generator.md'), text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
