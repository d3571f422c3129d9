"""The command line of :mod:`Friendly.train`: options, their checks, and the run's settings.

:func:`settings_from_args` gives the ``settings.json`` of a run; :data:`IDENTITY_KEYS` are the
settings that define a trained network (a resumed run or a model file must agree on them).
"""
import math
import os

from Friendly import models
from Friendly.mnist import add_mnist_argument
from Friendly.train_extensions import EARLY_STOP_KEYS, RENORM_RULES
from lenses_common import distributed
from lenses_common.device import add_device_argument
from lenses_common.seeding import add_seed_argument
from lenses_common import cli

VALIDATION_SIZE = 4200
# The settings that define a trained network; a resumed run or a model file must agree on them.
IDENTITY_KEYS = ('variant', 'seed', 'lr', 'momentum', 'batchsize', 'train_subset', 'val_size',
                 'gmr_weight', 'optimizer', 'sizes', 'stabilize')
IDENTITY_KEYS += ('adversarial',)   # absent (None) for every network but the PGD-trained one
# What a settings.json written before a key existed meant.
IDENTITY_DEFAULTS = {'stabilize': False}
# --stabilize: chainer.optimizer_hooks.GradientClipping threshold (L2 norm of all gradients).
STABLE_CLIP_NORM = 10.0


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
    parser = cli.ArgumentParser(
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
                             "validation (the thesis text) (default: %(default)s)")
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


def check_args(parser, args):
    """Every bad option value is a one-line error (exit status 2)."""
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
