"""``python -m Friendly.bench.layers``: print the Markdown section of
:func:`Friendly.bench.layers.run`.
"""
import sys

from Friendly.bench.layers import BATCH, OUTPUTS, run
from lenses_common import cli
from lenses_common.seeding import add_seed_argument


def main(argv=None):
    parser = cli.ArgumentParser(
        description='Time the fused Pairwise Difference layer against its chainer.functions '
                    'form, and one PD training iteration, on the CPU; print Markdown.')
    parser.add_argument('--repeats', type=cli.positive_int, default=5,
                        help='timed runs per measurement; the median is reported '
                             '(default: %(default)s)')
    parser.add_argument('--warmup', type=cli.bounded_int(0, cli.MAX_STEPS), default=1,
                        help='untimed runs before timing (default: %(default)s)')
    parser.add_argument('--batchsize', '-b', type=cli.positive_int, default=BATCH,
                        help='images per batch (default: %(default)s, the thesis\'s)')
    parser.add_argument('--outputs', type=cli.positive_int, default=OUTPUTS,
                        help='outputs of the Pairwise Difference layer (default: %(default)s)')
    parser.add_argument('--chunk-size', type=cli.positive_int, default=64,
                        help='rows per chunk of the fused layer (default: %(default)s)')
    parser.add_argument('--out', default=None,
                        help='also write the Markdown to this file (atomically)')
    add_seed_argument(parser)
    args = parser.parse_args(argv)
    from lenses_common.runfolder import check_out_arg
    check_out_arg(parser, args.out, is_file=True)
    text = run(args.repeats, args.warmup, args.chunk_size, args.seed, batch=args.batchsize,
               outputs=args.outputs)
    print(text)
    if args.out:
        from lenses_common.runfolder import atomic_write_text
        atomic_write_text(args.out, text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
