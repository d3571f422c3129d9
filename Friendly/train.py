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

The command line is :mod:`Friendly.train_args`, the renorm schedule, early stopping and validation
extensions :mod:`Friendly.train_extensions`; the Trainer assembly shared with ``Counting.train``
(run folder, resume, snapshots, reports, the non-finite stop, the final save) is
:mod:`lenses_common.training`.
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
from Friendly.train_args import IDENTITY_DEFAULTS, IDENTITY_KEYS, STABLE_CLIP_NORM  # noqa: F401
from Friendly.train_args import VALIDATION_SIZE, build_parser, check_args, settings_from_args
from Friendly.train_extensions import RENORM_RULES, RENORM_STEPS, EARLY_STOP_KEYS  # noqa: F401
from Friendly.train_extensions import BatchModeEvaluator, RenormSchedule  # noqa: F401
from Friendly.train_extensions import ResumableEarlyStopping, make_early_stopping  # noqa: F401
from lenses_common import cli, distributed, safe_npz
from lenses_common.device import device_from_args
from lenses_common.runfolder import RunFolder, atomic_write_json, load_json
from lenses_common.seeding import seed_everything
from lenses_common.training import EpochSeededOrder, NonFiniteCheck, NonFiniteError  # noqa: F401
from lenses_common.training import TrainingScaffold
from lenses_common.training import latest_snapshot as _latest_snapshot

FINAL_MODEL = 'model_final.npz'
BEST_MODEL = 'model_best.npz'
EXIT_NONFINITE = 1
# Uncompressed: PD's 61.5 M random weights hardly compress, and zlib takes ~15 s per save.
COMPRESS = False


def latest_snapshot(out):
    """The ``snapshot_epoch_*`` with the highest epoch in ``out``, or None."""
    return _latest_snapshot(out, 'snapshot_epoch_')


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


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    settings = settings_from_args(args)
    scaffold = TrainingScaffold(parser, args.out, unit='epoch', final_model=FINAL_MODEL,
                                compress=COMPRESS, dist=distributed.from_args(  # ChainerMN
                                    args, parser, ('batchsize', 'eval_batchsize')))
    resume_path = scaffold.resolve_resume(args.resume)
    scaffold.check_identity(resume_path, settings, IDENTITY_KEYS, IDENTITY_DEFAULTS,
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
        parser.exit(EXIT_NONFINITE, failure + '\n')
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


#: Parameters a network built from a settings file may have (the thesis's PD network has 61.5 M):
#: an edited ``sizes`` is refused before it is built, not by a MemoryError during the build.
MAX_PARAMETERS = 10 ** 9


def check_sizes(settings, settings_path):
    """``ValueError`` (one line) when the ``sizes`` of ``settings`` are not positive integers, one
    per layer boundary, or would build a network above :data:`MAX_PARAMETERS` parameters."""
    sizes = settings.get('sizes', models.LAYER_SIZES)
    layers = models.VARIANT_SETTINGS[settings['variant']]['layers']
    if (not isinstance(sizes, (list, tuple)) or len(sizes) != len(layers) + 1
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                       for n in sizes)):
        raise ValueError('settings file {}: bad sizes {!r} (expected {} positive integers)'.format(
            settings_path, sizes, len(layers) + 1))
    count = sum(a * (a - 1) // 2 * b if kind == 'pairwise_difference' else a * b
                for kind, a, b in zip(layers, sizes[:-1], sizes[1:]))
    if count > MAX_PARAMETERS:
        raise ValueError('settings file {}: sizes {} make a network of {:,} parameters, above the '
                         'limit of {:,}'.format(settings_path, sizes, count, MAX_PARAMETERS))


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
    check_sizes(settings, settings_path)
    try:
        predictor = models.FC100(settings['variant'],
                                 sizes=settings.get('sizes', models.LAYER_SIZES),
                                 pd_chunk_size=settings.get('pd_chunk_size', 64),
                                 pd_form=settings.get('pd_form', 'full'))
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ValueError('settings file {}: bad sizes, pd_chunk_size or pd_form ({})'.format(
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
    # ChainerMN: a rank failing alone aborts the job
    sys.exit(distributed.guarded(cli.main_guard, main))
