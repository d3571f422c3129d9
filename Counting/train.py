"""Train a shape counter (thesis 2.2).

Example::

    python -m Counting.train --train data/counting/quick/train --out results/counting/runs/relu \\
        --arch convolutional --activation relu --epoch 100 --batchsize 20

Writes into ``--out``: ``settings.json``, ``command.txt``, Chainer's ``log``, ``loss.png`` and
``mae.png`` (PlotReport), ``snapshot_epoch_N`` every ``--snapshot-interval`` epochs (resume with
``--resume`` alone, ``--resume auto`` or ``--resume PATH``) and, at the end, ``model_final.npz``
(written atomically).

A NaN or infinite loss, gradient or parameter stops the run at that iteration with a one-line error
naming the epoch, the iteration and the last good snapshot, and exit status 3
(``lenses_common.cli.EXIT_NONFINITE``); no ``model_final.npz`` is written. The Trainer assembly
shared with ``Friendly.train`` (run folder, resume, snapshots, reports, the non-finite stop, the
final save) is :mod:`lenses_common.training`.
"""
import math
import os
import re
import sys

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
from chainer import training
from chainer.training import extensions
from chainer.training import triggers

from Counting import models
from Counting.architectures import ARCHITECTURES
from Counting import train_checks
from Counting.datasets.loader import DatasetError
from lenses_common import distributed
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.cli import positive_int
from lenses_common.seeding import add_seed_argument, seed_everything
from lenses_common.snapshots import SNAPSHOT_PREFIX
from lenses_common.snapshots import latest_snapshot as _latest_snapshot
from lenses_common.training import TrainingScaffold
from lenses_common import cli

OPTIMIZERS = ('sgd', 'momentum', 'rmsprop')


def build_parser():
    p = cli.ArgumentParser(
        description='Train a counter of triangles and squares (thesis chapter 2).')
    p.add_argument('--train', required=True,
                   help='training set folder written by Counting.generate (PNGs + truths.json)')
    p.add_argument('--test', default=None,
                   help='optional held-out folder, evaluated every --eval-interval epochs')
    p.add_argument('--types', default=None,
                   help='shape types to count, e.g. "tri,sq" (default: those of the training set)')
    p.add_argument('--arch', default='convolutional', choices=sorted(ARCHITECTURES),
                   help='network (default: %(default)s)')
    p.add_argument('--activation', default='relu', choices=models.ACTIVATIONS,
                   help='hidden activation (default: %(default)s)')
    p.add_argument('--base', type=cli.finite_float(0, low_open=True), default=1.1,
                   help='base b of the modsoftplus activation (default: %(default)s)')
    p.add_argument('--softplus', default='stable', choices=models.SOFTPLUS_IMPLEMENTATIONS,
                   help='implementation of --activation softplus: stable (this project\'s, finite '
                        'second derivative) or chainer (F.softplus, the author\'s, whose second '
                        'derivative is NaN above 89: the thesis\'s "numerical issues") '
                        '(default: %(default)s)')
    p.add_argument('--batch-renorm', action='store_true',
                   help='Batch Renormalization after every convolution (the thesis used it for '
                        'the sigmoid counter)')
    p.add_argument('--renorm-threshold', type=cli.non_negative_number, default=3.0,
                   help='training loss below which the rmax/dmax schedule starts '
                        '(default: %(default)s)')
    p.add_argument('--optimizer', default='sgd', choices=OPTIMIZERS,
                   help='sgd (plain SGD, the author\'s default), momentum (MomentumSGD, which the '
                        'author added for the sigmoid counters) or rmsprop (default: %(default)s)')
    p.add_argument('--lr', type=cli.finite_float(0, low_open=True), default=0.07,
                   help='initial learning rate, multiplied by 0.1 after each third of the run '
                        '(default: %(default)s, the thesis\'s)')
    p.add_argument('--momentum', type=cli.finite_float(0, 1, high_open=True), default=0.85,
                   help='momentum of --optimizer momentum (default: %(default)s)')
    p.add_argument('--batchsize', '-b', type=positive_int, default=20,
                   help='images per minibatch (default: %(default)s)')
    p.add_argument('--epoch', '-e', type=positive_int, default=100,
                   help='epochs to train (default: %(default)s)')
    p.add_argument('--snapshot-interval', type=positive_int, default=10,
                   help='epochs between snapshots (default: %(default)s)')
    p.add_argument('--eval-interval', type=positive_int, default=1,
                   help='epochs between evaluations on --test (default: %(default)s)')
    p.add_argument('--out', '-o', default='result',
                   help='run folder to write (default: %(default)s)')
    cli.add_resume_argument(p)
    p.add_argument('--workers', type=positive_int, default=2,
                   help='processes that read the dataset folder (default: %(default)s)')
    p.add_argument('--stream', action='store_true',
                   help='read the images from disk batch by batch (--workers processes) instead of '
                        'holding the dataset in memory: memory does not grow with the dataset; '
                        'same batches and results')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    train_checks.add_force_argument(p)
    add_device_argument(p)
    add_seed_argument(p)
    distributed.add_communicator_argument(p)  # ChainerMN
    return p


def latest_snapshot(out):
    """The snapshot ``snapshot_epoch_N`` with the largest epoch N in ``out``, or None."""
    return _latest_snapshot(out, SNAPSHOT_PREFIX['epoch'])


def make_optimizer(name, lr, momentum):
    if name == 'sgd':
        return chainer.optimizers.SGD(lr=lr)
    if name == 'momentum':
        return chainer.optimizers.MomentumSGD(lr=lr, momentum=momentum)
    if name == 'rmsprop':
        return chainer.optimizers.RMSprop(lr=lr)
    raise ValueError('unknown optimizer {}'.format(name))


def load_sets(args, parser):
    """Load --train (and --test) with the dataset engineer's loader; one-line errors."""
    from Counting.datasets import DatasetError, load_dataset, stream_dataset
    try:
        types = None if args.types is None else [
            t for t in re.split(r'[,\s]+', args.types) if t]
        if getattr(args, 'stream', False):
            train = stream_dataset(args.train, types=types)
            test = stream_dataset(args.test, types=train.types) if args.test else None
        else:
            train = load_dataset(args.train, types=types, workers=args.workers)
            test = None
            if args.test:
                test = load_dataset(args.test, types=train.types, workers=args.workers)
    except (DatasetError, ValueError, OSError) as e:
        parser.error(str(e))
    if len(train) == 0:
        parser.error('--train {}: the training set is empty'.format(args.train))
    if test is not None and tuple(test.image_size) != tuple(train.image_size):
        parser.error('--test {}: images are {} but the training images are {}'.format(
            args.test, tuple(test.image_size), tuple(train.image_size)))
    try:
        models.output_size(args.arch, train.image_size[::-1])
    except ValueError as e:
        parser.error('--arch {}: {}'.format(args.arch, e))
    return train, test


def run_settings(args, train):
    """The settings.json of a run (what load_counter and run_all read)."""
    settings = dict(vars(args))
    for key in ('resume', 'no_progress', 'workers', 'device', 'force', 'stream'):
        settings.pop(key, None)
    settings['types'] = list(train.types)
    settings['image_size'] = [int(s) for s in train.image_size]
    settings['n_train'] = len(train)
    settings['renorm_decay'] = ARCHITECTURES[args.arch].renorm_decay
    settings['train'] = os.path.abspath(args.train)
    if args.test:
        settings['test'] = os.path.abspath(args.test)
    return settings


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)
    if args.activation == 'modsoftplus' and (args.base <= 0 or args.base == 1):
        parser.error('--base must be positive and not 1, got {}'.format(args.base))
    scaffold = TrainingScaffold(parser, args.out,
                                dist=distributed.from_args(args, parser))  # ChainerMN
    # --resume auto with no snapshot yet starts a new run (Counting.run_all relies on it).
    resume = scaffold.resolve_resume(args.resume, missing_ok=True)
    moved = scaffold.guard(resume, force=args.force)
    device = device_from_args(args, parser)
    seed_everything(args.seed)

    train, test = load_sets(args, parser)
    settings = run_settings(args, train)
    scaffold.check_identity(resume, settings, train_checks.RESUME_KEYS)
    if moved:
        print(moved, flush=True)
    scaffold.open(settings, resume, argv=[sys.executable, '-m', 'Counting.train'] + list(
        sys.argv[1:] if argv is None else argv), header=(
        'Counting.train: {} training images of {}x{}, types {}, {} {}{}, {} lr {} '
        'batch {} epochs {}{}'.format(
            len(train), train.image_size[0], train.image_size[1], ','.join(train.types),
            args.arch, args.activation, ' + BRN' if args.batch_renorm else '',
            args.optimizer, args.lr, args.batchsize, args.epoch,
            ', resuming ' + resume if resume else '')))

    model = models.build_counter(args.arch, args.activation, n_types=len(train.types),
                                 batch_renorm=args.batch_renorm, base=args.base,
                                 softplus=args.softplus)
    loss = models.CountingLoss(model)
    loss.to_device(device)
    optimizer = scaffold.setup_optimizer(make_optimizer(args.optimizer, args.lr, args.momentum),
                                         loss)
    if args.stream:
        from Counting.datasets import stream_iterator
        scaffold.check_batchsize(args.batchsize, len(train))
        train_iter = stream_iterator(scaffold.train_dataset(train),
                                     scaffold.local_batchsize(args.batchsize), args.seed,
                                     n_processes=args.workers)
    else:
        train_iter = scaffold.train_iterator(train, args.batchsize, args.seed)
    updater = training.updaters.StandardUpdater(train_iter, optimizer, device=device)
    trainer = scaffold.make_trainer(updater, (args.epoch, 'epoch'), loss)

    # x0.1 after each third of the run (counted in iterations, so short runs step too).
    total = args.epoch * int(math.ceil(len(train) / args.batchsize))
    points = sorted({max(1, int(round(total * k / 3.0))) for k in (1, 2)})
    trainer.extend(extensions.ExponentialShift('lr', 0.1, init=args.lr),
                   trigger=triggers.ManualScheduleTrigger(points, 'iteration'))
    if args.batch_renorm:
        trainer.extend(models.RenormSchedule(model, threshold=args.renorm_threshold),
                       name='renorm_schedule')
    if test is not None:
        scaffold.add_evaluator(scaffold.eval_iterator(test, args.batchsize), loss, device,
                               trigger=(args.eval_interval, 'epoch'))
    trainer.extend(extensions.observe_lr(), trigger=(1, 'epoch'))
    columns = ['epoch', 'iteration', 'main/loss', 'main/mae', 'lr', 'elapsed_time']
    if test is not None:
        columns[4:4] = ['validation/main/loss', 'validation/main/mae']
    scaffold.add_reports(columns, plots=[(['main/loss', 'validation/main/loss'], 'loss.png'),
                                         (['main/mae', 'validation/main/mae'], 'mae.png')],
                         snapshot_interval=args.snapshot_interval, n_retains=2,
                         progress=not args.no_progress, progress_interval=5)

    if resume:
        width, height = train.image_size
        models._initialize_lazy(model, (height, width))
        scaffold.load_snapshot(resume)
        # Trainer.run skips initialize() of an extension whose trigger has finished, so after the
        # last step ExponentialShift would not put the lr back; set it from the iteration.
        optimizer.lr = args.lr * 0.1 ** sum(updater.iteration >= p for p in points)
    try:
        failure = scaffold.run()
    except DatasetError as e:   # a PNG damaged past its header, read by --stream
        parser.exit(2, parser.prog + ': error: {}\n'.format(e))
    if failure is not None:
        print('{}; try a smaller --lr ({} lr {})'.format(failure, args.optimizer, args.lr),
              file=sys.stderr)
        return cli.EXIT_NONFINITE
    model.to_device('@numpy')
    print('saved {}'.format(scaffold.save_final(model, meta=models.network_meta(settings))),
          flush=True)
    return 0


if __name__ == '__main__':
    # ChainerMN: a rank failing alone aborts the job
    sys.exit(distributed.guarded(cli.main_guard, main))
