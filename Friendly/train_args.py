"""The command line of :mod:`Friendly.train`: options, their checks, and the run's settings.

:func:`settings_from_args` gives the ``settings.json`` of a run; :data:`IDENTITY_KEYS` are the
settings that define a trained network (a resumed run or a model file must agree on them).
"""
import os

from Friendly import models
from Friendly.certification.training import IBP_EPS, IBP_KAPPA, IBP_LOSSES, IBP_RAMP, IBP_WARMUP
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
IDENTITY_KEYS += ('adversarial',)   # absent (None) for every network but the defenses
IDENTITY_KEYS += ('pd_form',)       # absent for every network but a pair-form PD
IDENTITY_KEYS += ('ibp_eps', 'ibp_warmup', 'ibp_ramp', 'ibp_kappa', 'ibp_loss', 'input_scale')
# Optimizers under which the pair form of PD follows the full form exactly (both momentum SGD).
PAIR_FORM_OPTIMIZERS = ('fast', 'stock')
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
        'pd_chunk_size': (args.pd_chunk_size if args.pd_chunk_size is not None
                          else models.PD_CHUNK_DEFAULTS[args.pd_form]),
        'sizes': list(models.LAYER_SIZES),
        'mnist_dir': args.mnist_dir or os.environ.get('MNIST_DIR'),
        'device': args.device,
    }
    # adversarial, pd_form and input_scale are recorded only where they are not the thesis's.
    if args.adversarial:
        settings['adversarial'] = args.adversarial
    if args.pd_form != 'full':
        settings['pd_form'] = args.pd_form
    if args.adversarial == 'ibp':
        settings.update(ibp_eps=args.ibp_eps, ibp_warmup=args.ibp_warmup,
                        ibp_ramp=args.ibp_ramp, ibp_kappa=args.ibp_kappa,
                        ibp_loss=args.ibp_loss)
    if args.input_scale != 1.0:
        settings['input_scale'] = args.input_scale
    return settings


def build_parser():
    parser = cli.ArgumentParser(
        description='Train one FC-100-100-10 variant of thesis chapter 3 on MNIST.')
    parser.add_argument('--variant', required=True,
                        help='network: one of ' + ', '.join(models.VARIANTS))
    parser.add_argument('--batchsize', '-b', type=cli.positive_int, default=models.BATCHSIZE,
                        help='minibatch size (default: %(default)s, the thesis)')
    parser.add_argument('--epoch', '-e', type=cli.positive_int, default=100,
                        help='most epochs; early stopping may end sooner (default: %(default)s)')
    parser.add_argument('--patience', type=cli.positive_int, default=20,
                        help='epochs without a better monitored loss (--early-stop-on) before '
                             'stopping (default: %(default)s)')
    parser.add_argument('--early-stop-on', choices=sorted(EARLY_STOP_KEYS), default='training',
                        help="loss that early stopping watches: training (the epoch's mean "
                             "training loss, GMR penalty included, as the author's code) or "
                             "validation (the thesis text) (default: %(default)s)")
    parser.add_argument('--lr', type=cli.finite_float(0, low_open=True), default=None,
                        help='learning rate (default: the variant\'s, thesis Table 3.1)')
    parser.add_argument('--momentum', type=cli.finite_float(0, 1, high_open=True),
                        default=models.MOMENTUM,
                        help='momentum of momentum SGD (default: %(default)s)')
    parser.add_argument('--optimizer', choices=('fast', 'stock', 'adam'), default='fast',
                        help="fast: Friendly.optimizers.FastMomentumSGD (same update, in place); "
                             "stock: chainer.optimizers.MomentumSGD; adam: not the thesis, "
                             "chainer.optimizers.Adam with --lr as its step size alpha "
                             "(--momentum unused) (default: %(default)s)")
    parser.add_argument('--gmr-weight', type=cli.finite_float(0), default=None,
                        help='weight of the GMR gradient-norm penalty (default: 0.5 for GMR and '
                             'GMRES, 0 otherwise)')
    parser.add_argument('--stabilize', action='store_true',
                        help='not the thesis: compute the GMR penalty as sqrt(sum g^2 + 1e-20), '
                             'finite gradient where the input gradient g is 0 (the faithful norm '
                             'gives NaN there), and clip the L2 norm of all parameter gradients '
                             'to {:g} (chainer.optimizer_hooks.GradientClipping); what GMRES '
                             'needs to survive the full protocol'.format(STABLE_CLIP_NORM))
    parser.add_argument('--renorm-threshold', type=cli.finite_float(), default=0.01,
                        help='training loss under which the renorm schedule starts '
                             '(default: %(default)s)')
    parser.add_argument('--renorm-rule', choices=RENORM_RULES, default='last-batch',
                        help="which training loss the renorm schedule checks at each epoch's "
                             "end: the epoch's last minibatch (the author's code) or the epoch "
                             "mean (default: %(default)s)")
    parser.add_argument('--renorm-step-epochs', type=cli.positive_int, default=20,
                        help='epochs between renorm rmax/dmax steps (default: %(default)s)')
    parser.add_argument('--val-size', type=cli.bounded_int(1, 59999), default=VALIDATION_SIZE,
                        help='validation images split off the 60,000 (default: %(default)s)')
    parser.add_argument('--train-subset', type=cli.positive_int, default=None,
                        help='train on only the first N of the (shuffled) training part '
                             '(default: all 55,800)')
    parser.add_argument('--val-subset', type=cli.positive_int, default=None,
                        help='validate on only the first N validation images (default: all)')
    parser.add_argument('--bn-eval', choices=models.BN_MODES, default='batch',
                        help='Batch Renormalization at validation: batch statistics (the thesis) '
                             'or running averages (default: %(default)s)')
    parser.add_argument('--eval-batchsize', type=cli.positive_int, default=200,
                        help='validation batch size (default: %(default)s, the thesis)')
    parser.add_argument('--pd-chunk-size', type=cli.positive_int, default=None,
                        help='rows of P values per chunk inside the Pairwise Difference layer; '
                             'memory and speed, not results (default: {} for --pd-form full, {} '
                             'for pairs)'.format(models.PD_CHUNK_DEFAULTS['full'],
                                                 models.PD_CHUNK_DEFAULTS['pairs']))
    parser.add_argument('--pd-form', choices=models.PD_FORMS, default='full',
                        help="PD's first layer: full (the thesis's: W, P^2 = 614,656 weights per "
                             "output) or pairs, its exact half-size fold (306,936 + 1): since "
                             "sigmoid(-d) = 1 - sigmoid(d), n_k = 1/2 sum_{i<j} A_kij "
                             "tanh((v_i - v_j)/2) + b_k with A_kij = W_kij - W_kji and b_k = 1/2 "
                             "sum W_k. It starts from the fold of the same draw of W and trains A "
                             "at 2x and b at P^2/4 x the learning rate; because SGD and momentum "
                             "SGD (--optimizer fast and stock) move each weight by a linear "
                             "function of its gradient, and the full form's W_kij - W_kji moves "
                             "by twice the pair form's dL/dA, its sum by P^2/2 dL/db, the pair "
                             "form then follows the full form's trajectory exactly (up to float "
                             "rounding). "
                             "Not under Adam or RMSprop, nor with gradient clipping "
                             "(--stabilize) or weight decay, which see other norms and are "
                             "refused (default: %(default)s)")
    parser.add_argument('--out', '-o', required=True, help='run folder')
    cli.add_resume_argument(parser)
    parser.add_argument('--force', action='store_true',
                        help='--out holds a run (a final model or snapshots): move it aside to '
                             'OUT.old-N and start anew (nothing is deleted)')
    parser.add_argument('--snapshot-interval', type=cli.positive_int, default=1,
                        help='epochs between snapshots (default: %(default)s)')
    parser.add_argument('--no-progress', action='store_true',
                        help='print one log line per epoch instead of the progress bar')
    parser.add_argument('--adversarial', choices=('pgd', 'ibp'), default=None,
                        help="pgd: Madry et al.'s PGD adversarial training (eps 77, 40 steps of "
                             "3 pixel units, random start; Friendly.adversarial); ibp: "
                             "interval-bound training of S (Gowal et al. 2018; "
                             "Friendly.certification.training) (default: none, the thesis)")
    parser.add_argument('--ibp-eps', type=cli.finite_float(0, 255), default=IBP_EPS,
                        help='--adversarial ibp: final eps of the ball, pixel units '
                             '(default: %(default)s)')
    parser.add_argument('--ibp-warmup', type=cli.finite_float(0), default=IBP_WARMUP,
                        help='--adversarial ibp: epochs of clean training first '
                             '(default: %(default)s)')
    parser.add_argument('--ibp-ramp', type=cli.finite_float(0), default=IBP_RAMP,
                        help='--adversarial ibp: epochs over which eps rises from 0 and the '
                             'clean weight kappa falls from 1 (default: %(default)s)')
    parser.add_argument('--ibp-loss', choices=IBP_LOSSES, default='margin',
                        help='--adversarial ibp: the bound term: margin (softmax cross-entropy of '
                             'the margin bounds, Gowal et al.) or squared (the squared distance '
                             'at its worst over the logit boxes) (default: %(default)s)')
    parser.add_argument('--input-scale', type=cli.finite_float(0, low_open=True), default=1.0,
                        help='not the thesis: divide the first layer\'s initial weights and its '
                             'Adam step by this (255: trained as if the pixels were 0..1; '
                             '--optimizer adam only) (default: %(default)s)')
    parser.add_argument('--ibp-kappa', type=cli.finite_float(0, 1), default=IBP_KAPPA,
                        help='--adversarial ibp: final weight of the clean loss, the bound term '
                             'weighs 1 - kappa (default: %(default)s)')
    add_seed_argument(parser)
    add_device_argument(parser)
    add_mnist_argument(parser)
    distributed.add_communicator_argument(parser)  # ChainerMN
    return parser


def check_args(parser, args):
    """Every bad option value is a one-line error (exit status 2)."""
    cli.check_bounds(parser, args)
    try:
        models.check_variant(args.variant)
    except models.VariantError as e:
        parser.error('--variant: {}'.format(e))
    if args.adversarial == 'ibp' and args.variant != 'S':
        parser.error('--adversarial ibp: implemented for --variant S only, got {}'.format(
            args.variant))
    if args.input_scale != 1.0 and args.optimizer != 'adam':
        parser.error('--input-scale needs --optimizer adam')
    if args.pd_form == 'pairs':
        if args.variant != 'PD':
            parser.error('--pd-form pairs applies to --variant PD only')
        if args.stabilize:
            parser.error('--pd-form pairs is exact only without gradient clipping: drop '
                         '--stabilize or use --pd-form full')
        if args.optimizer not in PAIR_FORM_OPTIMIZERS:
            parser.error('--pd-form pairs is exact only under SGD and momentum SGD, not '
                         '--optimizer {}'.format(args.optimizer))
