"""Training one FC-100-100-10 variant on MNIST (thesis 3.3.1), the library behind
``python -m Friendly.train``.

Momentum SGD (0.85), batch 20, the learning rate of thesis Table 3.1, a 4,200-image validation split
drawn from ``--seed``, early stopping on the epoch's mean training loss, penalty included, as the
author's code does (``--early-stop-on validation`` for the thesis text's validation loss; patience
20 epochs, at most 100), the Batch Renormalization rmax/dmax schedule, snapshots every epoch
(``--resume`` continues from the last one), and, in ``--out``: ``settings.json``, ``command.txt``,
Chainer's ``log``, ``loss.png``, ``accuracy.png``, ``model_final.npz`` (the model the thesis
evaluates) and ``model_best.npz`` (the model with the best validation loss).

A NaN or infinite loss, gradient or parameter stops the run at that iteration with a one-line error
and exit status 3 (``lenses_common.cli.EXIT_NONFINITE``); the last epoch snapshot stays and no
``model_final.npz`` is written.

:func:`train` takes a command line, :func:`run` parsed and checked options. The options are
:mod:`Friendly.train_args`, the renorm schedule, early stopping and validation extensions
:mod:`Friendly.train_extensions`; the Trainer assembly shared with ``Counting.train`` (run folder,
resume, snapshots, reports, the non-finite stop, the final save) is :mod:`lenses_common.training`.
"""
import json
import os
import sys
import time

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
from chainer import training

from Friendly import models
from Friendly.mnist import MNISTError, get_mnist
from Friendly.runs import BEST_MODEL
from Friendly.train_args import IDENTITY_KEYS, STABLE_CLIP_NORM, VALIDATION_SIZE
from Friendly.train_args import build_parser, check_args, settings_from_args
from Friendly.train_extensions import BatchModeEvaluator, RenormSchedule, make_early_stopping
from lenses_common import cli, distributed
from lenses_common.device import device_from_args
from lenses_common.runfolder import atomic_write_json
from lenses_common.seeding import seed_everything
from lenses_common.snapshots import FINAL_MODEL
from lenses_common.training import TrainingScaffold

# Uncompressed: PD's 61.5 M random weights hardly compress, and zlib takes ~15 s per save.
COMPRESS = False


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
    if name == 'adam':
        return chainer.optimizers.Adam(alpha=lr)
    raise ValueError('unknown optimizer {!r}'.format(name))


def setup_optimizer(optimizer, model, stabilize=False, scaffold=None):
    """``optimizer.setup(model)`` (through ``scaffold``'s seam when given); with ``stabilize``
    the gradient norm is clipped (--stabilize)."""
    if scaffold is None:
        optimizer.setup(model)
    else:
        optimizer = scaffold.setup_optimizer(optimizer, model)
    if stabilize:
        optimizer.add_hook(chainer.optimizer_hooks.GradientClipping(STABLE_CLIP_NORM))
    return optimizer


def train(argv=None):
    """Train one network from a ``Friendly.train`` command line (``argv``, default
    ``sys.argv[1:]``): the one entry point of :mod:`Friendly.train` and of callers that train in
    the same process. A bad option exits with status 2, a non-finite stop with
    ``lenses_common.cli.EXIT_NONFINITE``; returns the run's summary."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return run(parser, args, argv)


def run(parser, args, argv=None):
    """Train the network of the checked ``args`` (:func:`Friendly.train_args.check_args`) into
    ``args.out``; errors go through ``parser``. Returns the run's summary (``summary.json``)."""
    settings = settings_from_args(args)
    scaffold = TrainingScaffold(parser, args.out, compress=COMPRESS,
                                dist=distributed.from_args(  # ChainerMN
                                    args, parser, ('batchsize', 'eval_batchsize')))
    resume_path = scaffold.resolve_resume(args.resume)
    scaffold.check_identity(resume_path, settings, IDENTITY_KEYS,
                            what='belongs to another network')
    moved = scaffold.guard(resume_path, force=args.force)
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
        parser.exit(2, parser.prog + ': error: {}\n'.format(e))
    train, val = split_mnist(train_all, args.seed, args.val_size, args.train_subset,
                             args.val_subset)

    scaffold.open(settings, resume_path,
                  argv=[sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]),
                  header='Friendly.train: {}\ntraining images: {}, validation images: {}'.format(
                      json.dumps(settings, sort_keys=True), len(train), len(val)))

    predictor = models.FC100(args.variant, pd_chunk_size=settings['pd_chunk_size'],
                             pd_form=args.pd_form)
    if args.input_scale != 1.0:   # as if the images were divided by it (drawn from --seed)
        predictor.l1.W.array /= args.input_scale
    model = models.FriendlyClassifier(predictor, gmr_weight=settings['gmr_weight'],
                                      stabilize=args.stabilize,  # ChainerMN: global GMR norm
                                      norm=scaffold.dist.gradient_norm(models.STABLE_NORM_EPS))
    model.to_device(device)
    optimizer = setup_optimizer(make_optimizer(args.optimizer, settings['lr'], args.momentum),
                                model, args.stabilize, scaffold=scaffold)
    if args.pd_form == 'pairs':
        from Friendly.optimizers import PairFormError, apply_pair_form_lr_factors
        try:   # A at 2x, b at P^2/4 x the learning rate, read from the optimizer at each update
            apply_pair_form_lr_factors(model, optimizer)
        except PairFormError as e:
            parser.error('--pd-form pairs: {}'.format(e))

    if args.input_scale != 1.0:
        predictor.l1.W.update_rule.hyperparam.alpha = settings['lr'] / args.input_scale
    train_iter = scaffold.train_iterator(train, args.batchsize, args.seed)
    loss_func = None
    if args.adversarial == 'pgd':
        from Friendly.adversarial import PGDTrainingLoss
        loss_func = PGDTrainingLoss(model, args.seed, lambda: updater.iteration)
    elif args.adversarial == 'ibp':
        from Friendly.certification.training import IBPTrainingLoss
        loss_func = IBPTrainingLoss(model, lambda: updater.epoch_detail, eps=args.ibp_eps,
                                    warmup=args.ibp_warmup, ramp=args.ibp_ramp,
                                    kappa=args.ibp_kappa, loss=args.ibp_loss)
    updater = training.updaters.StandardUpdater(train_iter, optimizer, device=device,
                                                loss_func=loss_func)
    stop = make_early_stopping(args.early_stop_on, args.patience, args.epoch)
    trainer = scaffold.make_trainer(updater, stop, model)
    scaffold.add_evaluator(scaffold.eval_iterator(val, args.eval_batchsize), model, device,
                           evaluator_class=BatchModeEvaluator, bn_mode=args.bn_eval)
    renorm_links = predictor.batch_renorm_links()
    if renorm_links:
        trainer.extend(RenormSchedule(renorm_links, threshold=args.renorm_threshold,
                                      step_epochs=args.renorm_step_epochs,
                                      rule=args.renorm_rule),
                       name='renorm_schedule')
    scaffold.add_best_model(predictor, BEST_MODEL)
    columns = ['epoch', 'main/loss', 'main/accuracy', 'validation/main/loss',
               'validation/main/accuracy', 'elapsed_time']
    if settings['gmr_weight'] > 0:
        columns.insert(2, 'main/penalty')
    scaffold.add_reports(columns, plots=[(['main/loss', 'validation/main/loss'], 'loss.png'),
                                         (['main/accuracy', 'validation/main/accuracy'],
                                          'accuracy.png')],
                         snapshot_interval=args.snapshot_interval, n_retains=1,
                         progress=not args.no_progress, progress_interval=50)
    if resume_path is not None:
        scaffold.load_snapshot(resume_path)

    start = time.time()
    failure = scaffold.run()
    if failure is not None:
        parser.exit(cli.EXIT_NONFINITE, failure + '\n')
    final = scaffold.save_final(predictor)
    if not os.path.exists(scaffold.file(BEST_MODEL)):
        scaffold.save(BEST_MODEL, predictor)
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
    last = scaffold.last_log()
    if last:
        summary['last_epoch_log'] = last
    if renorm_links:
        schedule = trainer.get_extension('renorm_schedule')
        summary['renorm_start_epoch'] = schedule.start_epoch if schedule.start_epoch >= 0 else None
    if scaffold.writer:
        atomic_write_json(scaffold.file('summary.json'), summary)
        print('saved {}'.format(final))
    return summary
