"""Train one FC-100-100-10 variant on MNIST (thesis 3.3.1): ``python -m Friendly.train -h``.

The training itself is :func:`Friendly.trainer.run` (what it writes into ``--out`` is described
there), the options :mod:`Friendly.train_args`. A non-finite stop exits with status 3.
"""
import sys

from Friendly import trainer
from Friendly.train_args import build_parser, check_args
from lenses_common import cli, distributed


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return trainer.run(parser, args, argv)


if __name__ == '__main__':
    # ChainerMN: a rank failing alone aborts the job
    sys.exit(distributed.guarded(cli.main_guard, main))
