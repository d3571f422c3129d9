"""``python -m Friendly.bench.pairs``: print the Markdown section of
:func:`Friendly.bench.pairs.run`.
"""
from Friendly import models
from Friendly.bench.pairs import run
from lenses_common import cli


def build_parser():
    parser = cli.ArgumentParser(
        description='Time one PD training iteration in the full and the pair form.')
    parser.add_argument('--repeats', type=cli.positive_int, default=7,
                        help='timed iterations of each form (default: %(default)s)')
    parser.add_argument('--chunk-size', type=cli.positive_int, default=None,
                        help='the chunk_size of both forms (default: each form\'s own, {} for '
                             'full and {} for pairs)'.format(models.PD_CHUNK_DEFAULTS['full'],
                                                             models.PD_CHUNK_DEFAULTS['pairs']))
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    text, _ = run(repeats=args.repeats, chunk_size=args.chunk_size)
    print(text)
    return text


if __name__ == '__main__':
    main()
