"""Command line of the test of a trained counter on a held-out set (thesis 2.2; the metrics are
:mod:`Counting.evaluation`).

Example::

    python -m Counting.evaluate --run results/counting/runs/relu --test data/counting/quick/test

Per shape type: MAE, RMSE, exact-count accuracy and off-by-one rate, next to the baseline that
always predicts the training set's mean count. Writes ``metrics.json``, ``metrics.md`` and
``scatter.png`` into ``--out`` (default: ``RUN/eval``).
"""
import os
import sys

from lenses_common import compat  # noqa: F401  (before chainer)

from Counting import models
from Counting.evaluation import evaluate_run, metrics_markdown
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.cli import positive_int
from lenses_common.progress import add_progress_argument
from lenses_common import lock
from lenses_common.seeding import add_seed_argument, seed_everything
from lenses_common import cli


def build_parser():
    p = cli.ArgumentParser(
        description='Evaluate a trained counter: MAE, RMSE, exact and off-by-one per shape type '
                    'against the predict-the-training-mean baseline, and a scatter plot.')
    p.add_argument('--run', required=True, help='run folder written by Counting.train')
    p.add_argument('--test', default=None,
                   help='held-out dataset folder (default: the --test the run was trained with)')
    p.add_argument('--train', default=None,
                   help='training set whose mean count is the baseline (default: the run\'s)')
    p.add_argument('--out', '-o', default=None, help='output folder (default: RUN/eval)')
    p.add_argument('--batchsize', '-b', type=positive_int, default=50,
                   help='images per forward pass (default: %(default)s)')
    p.add_argument('--workers', type=positive_int, default=2,
                   help='processes that read the dataset (default: %(default)s)')
    add_progress_argument(p)
    add_device_argument(p)
    add_seed_argument(p)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)  # every count-like option has an upper bound
    if args.out is None and not os.path.isdir(args.run):
        cli.fail(parser, '--run {}: run folder does not exist'.format(args.run))
    lock.claim_arg(parser, args.out or os.path.join(args.run, 'eval'))  # checked and locked
    device = device_from_args(args, parser)
    seed_everything(args.seed)
    from Counting.datasets import DatasetError
    try:
        _, settings = models.load_counter(args.run)
        test_dir = args.test or settings.get('test')
        if not test_dir:
            parser.error('--test is needed: the run {} was trained without one'.format(args.run))
        result = evaluate_run(args.run, test_dir, train_dir=args.train, out=args.out,
                              batchsize=args.batchsize, device=device, workers=args.workers,
                              progress=args.progress)
    except (models.RunError, DatasetError, ValueError) as e:
        parser.error(str(e))
    print(metrics_markdown(result['metrics'], result['types']), end='')
    print('wrote {}'.format(args.out or os.path.join(args.run, 'eval')))
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
