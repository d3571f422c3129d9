"""Train one FC-100-100-10 variant on MNIST (thesis 3.3.1): ``python -m Friendly.train -h``.

Momentum SGD (0.85), batch 20, the learning rate of thesis Table 3.1, a 4,200-image validation split
drawn from ``--seed``, early stopping on the epoch's mean training loss, penalty included, as the
author's code does (``--early-stop-on validation`` for the thesis text's validation loss; patience
20 epochs, at most 100), the Batch Renormalization rmax/dmax schedule, snapshots every epoch
(``--resume`` continues from the last one), and, in ``--out``: ``settings.json``, ``command.txt``,
Chainer's ``log``, ``loss.png``, ``accuracy.png``, ``model_final.npz`` (the model the thesis
evaluates) and ``model_best.npz`` (the model with the best validation loss).

A NaN or infinite loss, gradient or parameter stops the run at that iteration with a one-line error
and exit status 1; the last epoch snapshot stays and no ``model_final.npz`` is written.
"""
import argparse
import functools
import glob
import json
import math
import os
import re
import sys
import time

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
from chainer import training
from chainer.training import extensions
from chainer.training import triggers

from Friendly import models
from Friendly.mnist import MNISTError, add_mnist_argument, get_mnist
from lenses_common.device import add_device_argument, device_from_args
from lenses_common import distributed  # ChainerMN (issue 14)
from lenses_common import safe_npz
from lenses_common.runfolder import RunFolder, atomic_path, atomic_write_json, load_json
from lenses_common.runfolder import OutError, check_out_dir, guard_run_folder, out_error
from lenses_common.seeding import add_seed_argument, seed_everything

VALIDATION_SIZE = 4200
FINAL_MODEL = 'model_final.npz'
BEST_MODEL = 'model_best.npz'
SNAPSHOT_PATTERN = 'snapshot_epoch_{.updater.epoch}'
RENORM_STEPS = (1.1, 10.0, 100.0, 1000.0)
# The settings that define a trained network; a resumed run or a model file must agree on them.
IDENTITY_KEYS = ('variant', 'seed', 'lr', 'momentum', 'batchsize', 'train_subset', 'val_size',
                 'gmr_weight', 'optimizer', 'sizes', 'stabilize')
IDENTITY_KEYS += ('adversarial',)   # absent (None) for every network but the PGD-trained one
# What a settings.json written before a key existed meant.
IDENTITY_DEFAULTS = {'stabilize': False}
RENORM_RULES = ('last-batch', 'epoch-mean')
EARLY_STOP_KEYS = {'training': 'main/loss', 'validation': 'validation/main/loss'}
# --stabilize: chainer.optimizer_hooks.GradientClipping threshold (L2 norm of all gradients).
STABLE_CLIP_NORM = 10.0
EXIT_NONFINITE = 1


# Uncompressed: PD's 61.5 M random weights hardly compress, and zlib takes ~15 s per save.
save_npz_fast = functools.partial(chainer.serializers.save_npz, compression=False)


def save_model(path, model):
    """Write ``model`` to ``path`` (uncompressed .npz) through a temporary file."""
    with atomic_path(path, suffix='.npz') as tmp:
        save_npz_fast(tmp, model)


class RenormSchedule(training.Extension):
    """SPEC renorm schedule as a Trainer extension (its state is saved in snapshots).

    rmax and dmax start at 1 and 0. At the end of the first epoch whose training loss (``key``) is
    under ``threshold`` both become 1.1; every ``step_epochs`` epochs after that they step to 10,
    100 and 1000. ``rule='last-batch'`` (the author's code) compares the loss of the epoch's last
    minibatch, ``rule='epoch-mean'`` the mean over the epoch. Each stage's start is printed.
    """

    trigger = 1, 'iteration'
    priority = training.PRIORITY_READER

    def __init__(self, links, threshold=0.01, key='main/loss', step_epochs=20,
                 steps=RENORM_STEPS, rule='last-batch'):
        if rule not in RENORM_RULES:
            raise ValueError('rule must be one of {}, got {!r}'.format(RENORM_RULES, rule))
        self.links = list(links)
        self.threshold = float(threshold)
        self.rule = rule
        self.key = key
        self.step_epochs = int(step_epochs)
        self.steps = tuple(steps)
        self.start_epoch = -1      # the epoch at whose end the threshold was first crossed
        self.loss_sum = 0.0
        self.loss_count = 0

    def current(self, epoch):
        """(rmax, dmax) for the number of completed ``epoch``s."""
        if self.start_epoch < 0:
            return 1.0, 0.0
        stage = min(len(self.steps) - 1, (epoch - self.start_epoch) // self.step_epochs)
        return self.steps[stage], self.steps[stage]

    def apply(self, epoch):
        rmax, dmax = self.current(epoch)
        for link in self.links:
            link.rmax, link.dmax = rmax, dmax
        return rmax, dmax

    def initialize(self, trainer):
        self.apply(trainer.updater.epoch)

    def __call__(self, trainer):
        value = trainer.observation.get(self.key)
        if value is not None:
            value = float(chainer.as_array(value))
            if self.rule == 'epoch-mean':
                self.loss_sum += value
                self.loss_count += 1
            else:
                self.loss_sum, self.loss_count = value, 1
        updater = trainer.updater
        if not updater.is_new_epoch:
            return
        checked = self.loss_sum / self.loss_count if self.loss_count else None
        if self.start_epoch < 0 and checked is not None and checked < self.threshold:
            self.start_epoch = updater.epoch
            print('renorm schedule: the {} training loss of epoch {} is {:.6g} < {:g}'.format(
                self.rule, updater.epoch, checked, self.threshold))
        self.loss_sum, self.loss_count = 0.0, 0
        before = (self.links[0].rmax, self.links[0].dmax) if self.links else None
        rmax, dmax = self.apply(updater.epoch)
        if self.links and (rmax, dmax) != before:
            print('renorm schedule: rmax = {:g}, dmax = {:g} from epoch {}'.format(
                rmax, dmax, updater.epoch + 1))
        chainer.reporter.report({'rmax': rmax, 'dmax': dmax})

    def serialize(self, serializer):
        self.start_epoch = int(serializer('start_epoch', self.start_epoch))
        self.loss_sum = float(serializer('loss_sum', self.loss_sum))
        self.loss_count = int(serializer('loss_count', self.loss_count))


class NonFiniteError(RuntimeError):
    """A NaN or infinite loss, gradient or parameter during training."""


class NonFiniteCheck(training.Extension):
    """Stops training at the first iteration with a non-finite loss, gradient or parameter.

    Runs after every update and before every other extension (so the iteration's evaluation,
    snapshots and model files never see the bad values) and raises :class:`NonFiniteError` naming
    the epoch and iteration. The gradients are the ones of the update just made.
    """

    trigger = 1, 'iteration'
    priority = training.PRIORITY_WRITER + 1000

    def __init__(self, model, keys=('main/loss',)):
        self.model = model
        self.keys = tuple(keys)

    @staticmethod
    def _finite(array):
        xp = chainer.backend.get_array_module(array)
        # A sum is one cheap pass; only when it is not finite are the entries themselves checked
        # (a sum of finite float32 values can overflow).
        with numpy.errstate(over='ignore', invalid='ignore'):
            return bool(xp.isfinite(array.sum())) or bool(xp.isfinite(array).all())

    def problem(self, observation):
        """A description of the first non-finite value, or None."""
        for key in self.keys:
            value = observation.get(key)
            if value is not None:
                value = float(chainer.as_array(value))
                if not math.isfinite(value):
                    return 'non-finite {} ({})'.format(key, value)
        params = sorted(self.model.namedparams())
        for what in ('grad', 'array'):
            for name, param in params:
                array = getattr(param, what)
                if array is not None and not self._finite(array):
                    return 'non-finite {} of {}'.format(
                        'gradient' if what == 'grad' else 'parameter', name.lstrip('/'))
        return None

    def __call__(self, trainer):
        found = self.problem(trainer.observation)
        if found is not None:
            updater = trainer.updater
            epoch = updater.epoch if updater.is_new_epoch else updater.epoch + 1
            raise NonFiniteError('{} in epoch {}, iteration {}'.format(
                found, epoch, updater.iteration))


class EpochSeededOrder(object):
    """Order sampler for SerialIterator: epoch ``e`` is shuffled by ``RandomState([seed, e])``.

    Each epoch's order depends only on the seed and the epoch number, so a run resumed from a
    snapshot sees the same batches as an uninterrupted one (Chainer's default sampler draws from a
    generator whose state snapshots do not keep).
    """

    def __init__(self, seed):
        self.seed = int(seed)
        self.iterator = None    # set once the iterator exists; its epoch counter picks the order

    def __call__(self, current_order, current_position):
        # Called when an epoch ends, before the iterator counts it: the next epoch is epoch + 1.
        epoch = 0 if self.iterator is None else self.iterator.epoch + 1
        return numpy.random.RandomState([self.seed, epoch]).permutation(len(current_order))


class ResumableEarlyStopping(triggers.EarlyStoppingTrigger):
    """Chainer's EarlyStoppingTrigger with its best value and patience counter in snapshots."""

    def serialize(self, serializer):
        self.best = float(serializer('best', self.best))
        self.count = int(serializer('count', self.count))
        self._interval_trigger.serialize(serializer['interval_trigger'])
        self._max_trigger.serialize(serializer['max_trigger'])
        self._summary.serialize(serializer['summary'])

    def __call__(self, trainer):
        if not trainer.observation:
            # Right after --resume the trainer has observed nothing yet, while the interval
            # trigger (saved just before the epoch's check) fires once: nothing to compare.
            self._interval_trigger(trainer)
            return bool(self._max_trigger(trainer))
        return super(ResumableEarlyStopping, self).__call__(trainer)

    def stopped_early(self, trainer):
        return self._stop_condition() and not self._max_trigger(trainer)


class BatchModeEvaluator(extensions.Evaluator):
    """Evaluator that treats Batch Renormalization as the final evaluation does (``bn_mode``)."""

    def __init__(self, iterator, target, bn_mode='batch', **kwargs):
        super(BatchModeEvaluator, self).__init__(iterator, target, **kwargs)
        self.bn_mode = bn_mode

    def evaluate(self):
        target = self.get_target('main')
        with models.evaluation_mode(target.predictor, self.bn_mode):
            return super(BatchModeEvaluator, self).evaluate()


def split_mnist(train, seed, val_size=VALIDATION_SIZE, train_subset=None, val_subset=None):
    """(train, validation) from the 60,000 training images: a random ``val_size`` split by ``seed``.

    ``train_subset``/``val_subset`` keep only the first N of each (already random) part.
    """
    val, rest = chainer.datasets.split_dataset_random(train, val_size, seed=seed)
    if train_subset:
        rest = chainer.datasets.SubDataset(rest, 0, min(train_subset, len(rest)))
    if val_subset:
        val = chainer.datasets.SubDataset(val, 0, min(val_subset, len(val)))
    return rest, val


def make_optimizer(name, lr, momentum):
    if name == 'fast':
        from Friendly.optimizers import FastMomentumSGD
        return FastMomentumSGD(lr=lr, momentum=momentum)
    if name == 'stock':
        return chainer.optimizers.MomentumSGD(lr=lr, momentum=momentum)
    raise ValueError('unknown optimizer {!r}'.format(name))


def setup_optimizer(optimizer, model, stabilize=False):
    """``optimizer.setup(model)``; with ``stabilize`` the gradient norm is clipped (--stabilize)."""
    optimizer.setup(model)
    if stabilize:
        optimizer.add_hook(chainer.optimizer_hooks.GradientClipping(STABLE_CLIP_NORM))
    return optimizer


def make_early_stopping(on, patience, max_epochs):
    """Early stopping on the epoch's mean training loss or the validation loss (``on``)."""
    return ResumableEarlyStopping(check_trigger=(1, 'epoch'), monitor=EARLY_STOP_KEYS[on],
                                  patience=patience, mode='min',
                                  max_trigger=(max_epochs, 'epoch'))


def latest_snapshot(out):
    """The snapshot with the highest epoch in ``out``, or None."""
    found = []
    for path in glob.glob(os.path.join(out, 'snapshot_epoch_*')):
        match = re.search(r'snapshot_epoch_(\d+)$', path)
        if match:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def identity(settings):
    return {k: settings.get(k, IDENTITY_DEFAULTS.get(k)) for k in IDENTITY_KEYS}


def settings_from_args(args):
    spec = models.VARIANT_SETTINGS[args.variant]
    lr = args.lr if args.lr is not None else spec['lr']
    gmr_weight = args.gmr_weight if args.gmr_weight is not None else (
        models.GMR_WEIGHT if spec['gmr'] else 0.0)
    settings = {
        'kind': 'friendly-train',
        'variant': args.variant,
        'seed': args.seed,
        'lr': lr,
        'momentum': args.momentum,
        'batchsize': args.batchsize,
        'epoch': args.epoch,
        'patience': args.patience,
        'train_subset': args.train_subset,
        'val_size': args.val_size,
        'val_subset': args.val_subset,
        'gmr_weight': gmr_weight,
        'optimizer': args.optimizer,
        'stabilize': args.stabilize,
        'early_stop_on': args.early_stop_on,
        'renorm_rule': args.renorm_rule,
        'renorm_threshold': args.renorm_threshold,
        'renorm_step_epochs': args.renorm_step_epochs,
        'bn_eval': args.bn_eval,
        'eval_batchsize': args.eval_batchsize,
        'pd_chunk_size': args.pd_chunk_size,
        'sizes': list(models.LAYER_SIZES),
        'mnist_dir': args.mnist_dir or os.environ.get('MNIST_DIR'),
        'device': args.device,
    }
    if args.adversarial:   # only then, so that earlier runs' settings still match
        settings['adversarial'] = args.adversarial
    return settings


def build_parser():
    parser = argparse.ArgumentParser(
        description='Train one FC-100-100-10 variant of thesis chapter 3 on MNIST.')
    parser.add_argument('--variant', required=True,
                        help='network: one of ' + ', '.join(models.VARIANTS))
    parser.add_argument('--batchsize', '-b', type=int, default=models.BATCHSIZE,
                        help='minibatch size (default: %(default)s, the thesis)')
    parser.add_argument('--epoch', '-e', type=int, default=100,
                        help='most epochs; early stopping may end sooner (default: %(default)s)')
    parser.add_argument('--patience', type=int, default=20,
                        help='epochs without a better monitored loss (--early-stop-on) before '
                             'stopping (default: %(default)s)')
    parser.add_argument('--early-stop-on', choices=sorted(EARLY_STOP_KEYS), default='training',
                        help="loss that early stopping watches: training (the epoch's mean "
                             "training loss, GMR penalty included, as the author's code) or "
                             "validation (the thesis text and the SPEC) (default: %(default)s)")
    parser.add_argument('--lr', type=float, default=None,
                        help='learning rate (default: the variant\'s, thesis Table 3.1)')
    parser.add_argument('--momentum', type=float, default=models.MOMENTUM,
                        help='momentum of momentum SGD (default: %(default)s)')
    parser.add_argument('--optimizer', choices=('fast', 'stock'), default='fast',
                        help="fast: Friendly.optimizers.FastMomentumSGD (same update, in place); "
                             "stock: chainer.optimizers.MomentumSGD (default: %(default)s)")
    parser.add_argument('--gmr-weight', type=float, default=None,
                        help='weight of the GMR gradient-norm penalty (default: 0.5 for GMR and '
                             'GMRES, 0 otherwise)')
    parser.add_argument('--stabilize', action='store_true',
                        help='not the thesis: compute the GMR penalty as sqrt(sum g^2 + 1e-20), '
                             'finite gradient where the input gradient g is 0 (the faithful norm '
                             'gives NaN there), and clip the L2 norm of all parameter gradients '
                             'to {:g} (chainer.optimizer_hooks.GradientClipping); what GMRES '
                             'needs to survive the full protocol'.format(STABLE_CLIP_NORM))
    parser.add_argument('--renorm-threshold', type=float, default=0.01,
                        help='training loss under which the renorm schedule starts '
                             '(default: %(default)s)')
    parser.add_argument('--renorm-rule', choices=RENORM_RULES, default='last-batch',
                        help="which training loss the renorm schedule checks at each epoch's "
                             "end: the epoch's last minibatch (the author's code) or the epoch "
                             "mean (default: %(default)s)")
    parser.add_argument('--renorm-step-epochs', type=int, default=20,
                        help='epochs between renorm rmax/dmax steps (default: %(default)s)')
    parser.add_argument('--val-size', type=int, default=VALIDATION_SIZE,
                        help='validation images split off the 60,000 (default: %(default)s)')
    parser.add_argument('--train-subset', type=int, default=None,
                        help='train on only the first N of the (shuffled) training part '
                             '(default: all 55,800)')
    parser.add_argument('--val-subset', type=int, default=None,
                        help='validate on only the first N validation images (default: all)')
    parser.add_argument('--bn-eval', choices=models.BN_MODES, default='batch',
                        help='Batch Renormalization at validation: batch statistics (the thesis) '
                             'or running averages (default: %(default)s)')
    parser.add_argument('--eval-batchsize', type=int, default=200,
                        help='validation batch size (default: %(default)s, the thesis)')
    parser.add_argument('--pd-chunk-size', type=int, default=64,
                        help='rows per chunk inside the Pairwise Difference layer '
                             '(default: %(default)s)')
    parser.add_argument('--out', '-o', required=True, help='run folder')
    parser.add_argument('--resume', '-r', nargs='?', const='auto', default=None,
                        help='resume from a snapshot: a path, or with no value the latest '
                             'snapshot_epoch_* in --out')
    parser.add_argument('--force', action='store_true',
                        help='--out holds a run (a final model or snapshots): move it aside to '
                             'OUT.old-N and start anew (nothing is deleted)')
    parser.add_argument('--snapshot-interval', type=int, default=1,
                        help='epochs between snapshots (default: %(default)s)')
    parser.add_argument('--no-progress', action='store_true',
                        help='print one log line per epoch instead of the progress bar')
    parser.add_argument('--adversarial', choices=('pgd',), default=None,
                        help="pgd: Madry et al.'s PGD adversarial training (eps 77, 40 steps of "
                             "3 pixel units, random start; Friendly.adversarial) "
                             "(default: none, the thesis)")
    add_seed_argument(parser)
    add_device_argument(parser)
    add_mnist_argument(parser)
    distributed.add_communicator_argument(parser)  # ChainerMN
    return parser


def _check_args(parser, args):
    try:
        models.check_variant(args.variant)
    except models.VariantError as e:
        parser.error('--variant: {}'.format(e))
    for name in ('batchsize', 'epoch', 'patience', 'val_size', 'eval_batchsize',
                 'pd_chunk_size', 'snapshot_interval', 'renorm_step_epochs'):
        if getattr(args, name) <= 0:
            parser.error('--{} must be positive, got {}'.format(name.replace('_', '-'),
                                                               getattr(args, name)))
    for name in ('train_subset', 'val_subset'):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error('--{} must be positive, got {}'.format(name.replace('_', '-'), value))
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        parser.error('--lr must be finite and positive, got {}'.format(args.lr))
    if args.gmr_weight is not None and not (math.isfinite(args.gmr_weight)
                                            and args.gmr_weight >= 0):
        parser.error('--gmr-weight must be finite and >= 0, got {}'.format(args.gmr_weight))
    if not math.isfinite(args.renorm_threshold):
        parser.error('--renorm-threshold must be finite, got {}'.format(args.renorm_threshold))
    if not 0 <= args.momentum < 1:
        parser.error('--momentum must be in [0, 1), got {}'.format(args.momentum))
    if not 0 < args.val_size < 60000:
        parser.error('--val-size must be in 1..59999, got {}'.format(args.val_size))


def _resolve_resume(parser, args, settings):
    """The snapshot path to load, or None; exits with a one-line error on a mismatch."""
    if args.resume is None:
        return None
    path = latest_snapshot(args.out) if args.resume == 'auto' else args.resume
    if path is None:
        parser.error('--resume: no snapshot_epoch_* in {}'.format(args.out))
    if not os.path.isfile(path):
        parser.error('--resume: snapshot {} does not exist'.format(path))
    settings_path = os.path.join(os.path.dirname(os.path.abspath(path)), RunFolder.SETTINGS)
    if os.path.exists(settings_path):
        try:
            previous = load_json(settings_path)
        except ValueError as e:
            parser.error('--resume: {}'.format(e))
        if identity(previous) != identity(settings):
            old, new = identity(previous), identity(settings)
            diff = sorted(k for k in IDENTITY_KEYS if old[k] != new[k])
            parser.error('--resume: {} belongs to another network ({} differ: {})'.format(
                settings_path, ', '.join(diff),
                ', '.join('{}={!r} there'.format(k, old[k]) for k in diff)))
    return path


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    dist = distributed.from_args(args, parser, ('batchsize', 'eval_batchsize'))  # ChainerMN
    settings = dist.record(settings_from_args(args))  # ChainerMN: communicator, comm_size
    resume_path = _resolve_resume(parser, args, settings)
    args.out = dist.out(args.out)  # ChainerMN: rank 0 writes the run folder, others a temp one
    try:
        check_out_dir(args.out)
        moved = guard_run_folder(args.out, finished=(FINAL_MODEL,),
                                 in_progress=('snapshot_epoch_*',),
                                 resume=resume_path is not None, force=args.force)
    except OutError as e:
        out_error(parser, e)
    if moved:
        print(moved)
    device = device_from_args(args, parser)
    try:
        seed_everything(args.seed)
    except ValueError as e:
        parser.error(str(e))

    try:
        train_all, _ = get_mnist(args.mnist_dir)
    except MNISTError as e:
        parser.exit(2, 'error: {}\n'.format(e))
    train, val = split_mnist(train_all, args.seed, args.val_size, args.train_subset,
                             args.val_subset)
    train, val = dist.shard(train), dist.shard(val)  # ChainerMN: this rank's part

    run = RunFolder(args.out, settings, resume=resume_path is not None,
                    argv=[sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]))
    print('Friendly.train: {}'.format(json.dumps(settings, sort_keys=True)))
    print('training images: {}, validation images: {}'.format(len(train), len(val)))

    predictor = models.FC100(args.variant, pd_chunk_size=args.pd_chunk_size)
    model = models.FriendlyClassifier(predictor, gmr_weight=settings['gmr_weight'],
                                      stabilize=args.stabilize)
    model.norm = dist.gradient_norm(models.STABLE_NORM_EPS)  # ChainerMN: GMR's global norm
    model.to_device(device)
    optimizer = setup_optimizer(make_optimizer(args.optimizer, settings['lr'], args.momentum),
                                model, args.stabilize)
    optimizer = dist.optimizer(optimizer)  # ChainerMN: gradients averaged over the ranks

    order = EpochSeededOrder(args.seed)
    train_iter = chainer.iterators.SerialIterator(train, dist.local(args.batchsize),  # ChainerMN
                                                 order_sampler=order)
    order.iterator = train_iter
    val_iter = chainer.iterators.SerialIterator(val, dist.local(args.eval_batchsize),  # ChainerMN
                                                repeat=False, shuffle=False)
    loss_func = None
    if args.adversarial:
        from Friendly.adversarial import PGDTrainingLoss
        loss_func = PGDTrainingLoss(model, args.seed, lambda: updater.iteration)
    updater = training.updaters.StandardUpdater(train_iter, optimizer, device=device,
                                                loss_func=loss_func)
    stop = make_early_stopping(args.early_stop_on, args.patience, args.epoch)
    trainer = training.Trainer(updater, stop, out=args.out)
    trainer.extend(NonFiniteCheck(model), name='nonfinite_check')

    trainer.extend(dist.evaluator(  # ChainerMN: validation averaged over the ranks
        BatchModeEvaluator(val_iter, model, bn_mode=args.bn_eval, device=device)),
                   name='validation')
    dist.extend(trainer)  # ChainerMN: training observations averaged over the ranks
    renorm_links = predictor.batch_renorm_links()
    if renorm_links:
        trainer.extend(RenormSchedule(renorm_links, threshold=args.renorm_threshold,
                                      step_epochs=args.renorm_step_epochs,
                                      rule=args.renorm_rule),
                       name='renorm_schedule')
    # Lowest priority: the snapshot must hold the state after every other extension and trigger
    # of its iteration, or a resumed run would replay them.
    trainer.extend(extensions.snapshot(savefun=save_npz_fast, filename=SNAPSHOT_PATTERN,
                                       n_retains=1),
                   trigger=(args.snapshot_interval, 'epoch'), priority=-1000)
    trainer.extend(extensions.snapshot_object(predictor, BEST_MODEL, savefun=save_npz_fast),
                   trigger=triggers.MinValueTrigger('validation/main/loss', (1, 'epoch')))
    trainer.extend(extensions.LogReport())
    trainer.extend(extensions.PlotReport(['main/loss', 'validation/main/loss'], 'epoch',
                                         filename='loss.png'))
    trainer.extend(extensions.PlotReport(['main/accuracy', 'validation/main/accuracy'], 'epoch',
                                         filename='accuracy.png'))
    columns = ['epoch', 'main/loss', 'main/accuracy', 'validation/main/loss',
               'validation/main/accuracy', 'elapsed_time']
    if settings['gmr_weight'] > 0:
        columns.insert(2, 'main/penalty')
    trainer.extend(extensions.PrintReport(columns))
    if not args.no_progress:
        trainer.extend(extensions.ProgressBar(update_interval=50))

    if resume_path is not None:
        print('resuming from {}'.format(resume_path))
        try:
            safe_npz.load_npz(resume_path, trainer, what='snapshot')
        except safe_npz.ModelFileError as e:
            parser.exit(2, 'error: --resume: {}\n'.format(e))

    start = time.time()
    try:
        trainer.run(show_loop_exception_msg=False)
    except NonFiniteError as e:
        snapshot = latest_snapshot(args.out)
        parser.exit(EXIT_NONFINITE, 'error: {}: training stopped; {}; no {} written\n'.format(
            e, 'last good snapshot {}'.format(snapshot) if snapshot else 'no snapshot yet',
            FINAL_MODEL))
    save_model(run.file(FINAL_MODEL), predictor)
    if not os.path.exists(run.file(BEST_MODEL)):
        save_model(run.file(BEST_MODEL), predictor)
    summary = {
        'variant': args.variant,
        'epochs_run': updater.epoch,
        'iterations': updater.iteration,
        'stopped_early': bool(stop.stopped_early(trainer)),
        'early_stop_on': args.early_stop_on,
        'best_monitored_loss': stop.best,
        'wall_seconds_this_call': time.time() - start,
        'final_model': FINAL_MODEL,
        'best_model': BEST_MODEL,
    }
    log = trainer.get_extension('LogReport').log
    if log:
        summary['last_epoch_log'] = log[-1]
    if renorm_links:
        schedule = trainer.get_extension('renorm_schedule')
        summary['renorm_start_epoch'] = schedule.start_epoch if schedule.start_epoch >= 0 else None
    atomic_write_json(run.file('summary.json'), summary)
    print('saved {}'.format(run.file(FINAL_MODEL)))
    return summary


def load_run(run_dir, which='final', device=None):
    """Build the network ``run_dir/settings.json`` describes and load its model file.

    ``which`` is 'final', 'best' or a path to an ``.npz``. Raises ``ValueError`` with a one-line
    message for a missing settings/model file or a model that does not fit the settings.
    Returns (predictor, settings).
    """
    settings_path = os.path.join(run_dir, RunFolder.SETTINGS)
    settings = load_json(settings_path)
    if (not isinstance(settings, dict) or settings.get('kind') != 'friendly-train'
            or 'variant' not in settings):
        raise ValueError('settings file {} was not written by Friendly.train'.format(
            settings_path))
    try:
        models.check_variant(settings['variant'])
    except (models.VariantError, TypeError) as e:
        raise ValueError('settings file {}: {}'.format(settings_path, e)) from None
    if which in ('final', 'best'):
        path = os.path.join(run_dir, FINAL_MODEL if which == 'final' else BEST_MODEL)
    else:
        path = which
    if not os.path.isfile(path):
        raise ValueError('model file {} does not exist (train it with python -m Friendly.train '
                         '--out {})'.format(path, run_dir))
    try:
        predictor = models.FC100(settings['variant'],
                                 sizes=settings.get('sizes', models.LAYER_SIZES),
                                 pd_chunk_size=settings.get('pd_chunk_size', 64))
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ValueError('settings file {}: bad sizes or pd_chunk_size ({})'.format(
            settings_path, e)) from None
    try:
        safe_npz.load_npz(path, predictor, what='model file', network='{} network of {}'.format(
            settings['variant'], settings_path))
    except safe_npz.ModelFileError as e:
        raise ValueError(str(e)) from None
    if device is not None:
        predictor.to_device(device)
    return predictor, settings


if __name__ == '__main__':
    distributed.guarded(main)  # ChainerMN: a rank failing alone aborts the job
