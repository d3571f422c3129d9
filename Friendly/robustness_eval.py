"""The robustness evaluation behind ``python -m Friendly.robustness`` (what it measures: that
module's text): its options (:func:`build_parser`), the budgets per preset and network
(:data:`PRESETS`, :func:`budget`, whose images and budgets :mod:`Friendly.certify`'s bracket takes
too), and :func:`run`, the evaluation and its report; :func:`evaluate` runs a command line in this
process (``Friendly.run_robustness``).
"""
import sys
import time


from Friendly import attacks
from Friendly import models
from Friendly.evaluation import ATTACKS, evaluate_set, float64_copy, has_batch_renorm
from Friendly.evaluation import source_sets
from Friendly.mnist import add_mnist_argument, test_arrays
from Friendly.robustness_report import BN_GAP, COLUMNS, CURVE_EPS, UNBOUNDED_EPS
from Friendly.robustness_report import UNBOUNDED_MAX, WORST_GAP, ZERO_GRAD_MAX
from Friendly.robustness_report import combine, flags_for, write_outputs
from Friendly.runs import add_run_arguments, load_networks, ordered
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.seeding import add_seed_argument, seed_everything
from lenses_common import cli, lock
from lenses_common import provenance


# Budgets per preset: '*' for every network, then per-network overrides (PD's Pairwise
# Difference layer costs ~1,000 times S's per image on a CPU). ``curve_attacks`` are the attacks
# the eps curve's worst case takes (the white-box curve is always FGSM).
_ALL = list(ATTACKS)
PRESETS = {
    'thesis': {
        '*': dict(test_subset=None, pgd_steps=100, pgd_restarts=5, curve_subset=1000,
                  curve_pgd_steps=100, curve_pgd_restarts=5, curve_attacks=_ALL),
    },
    'quick': {
        '*': dict(test_subset=500, pgd_steps=100, pgd_restarts=3, curve_subset=200,
                  curve_pgd_steps=40, curve_pgd_restarts=1, curve_attacks=_ALL),
        'A': dict(pgd_restarts=1),   # its Angular layers cost ~4 times S's per image
        'PD': dict(test_subset=200, pgd_steps=5, pgd_restarts=1, curve_subset=200,
                   curve_attacks=['fgsm', 'blackbox']),
    },
    'smoke': {
        '*': dict(test_subset=200, pgd_steps=10, pgd_restarts=2, curve_subset=200,
                  curve_pgd_steps=5, curve_pgd_restarts=1, curve_attacks=_ALL),
        'PD': dict(test_subset=200, pgd_steps=2, pgd_restarts=1, curve_subset=200,
                   curve_attacks=['fgsm', 'blackbox']),
    },
}
BUDGET_KEYS = tuple(PRESETS['thesis']['*'])


def budget(preset, name, overrides=None):
    """The budget of network ``name`` (its variant's overrides apply to ``V-PGDAT`` too)."""
    table = PRESETS[preset]
    result = dict(table['*'])
    result.update(table.get(name.split('-')[0], {}))
    result.update(table.get(name, {}))
    result.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return result


def build_parser():
    parser = cli.ArgumentParser(
        description='Evaluate Friendly networks with attacks that see through gradient masking: '
                    'FGSM in float32 and float64, with both Batch Renormalization modes, PGD on '
                    'two losses, black-box; worst case, flags and an accuracy-vs-eps curve.')
    add_run_arguments(parser, 'run folder of the separately trained S network that makes the '
                              'black-box examples')
    parser.add_argument('--out', '-o', required=True,
                        help='folder for robustness.md/.csv/.json and eps_curve.png')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='thesis',
                        help='image counts and attack budgets (default: %(default)s: all 10,000 '
                             'images, PGD 100 steps x 5 restarts; meant for a GPU)')
    parser.add_argument('--eps', type=float, default=attacks.THESIS_EPS,
                        help='L-infinity budget of the table, pixel units (default: %(default)s)')
    parser.add_argument('--bn-eval', choices=models.BN_MODES, default='batch',
                        help='Batch Renormalization of the victim (default: %(default)s, the '
                             'thesis)')
    parser.add_argument('--batchsize', '-b', type=cli.positive_int, default=200,
                        help='test batch size (default: %(default)s, the thesis)')
    parser.add_argument('--test-subset', type=cli.positive_int, default=None,
                        help='the first N test images for every network (overrides the preset)')
    parser.add_argument('--pgd-steps', type=cli.positive_int, default=None,
                        help='overrides the preset')
    parser.add_argument('--pgd-restarts', type=cli.positive_int, default=None,
                        help='overrides the preset')
    parser.add_argument('--curve-subset', type=cli.positive_int, default=None,
                        help='the first N test images of the eps curve (overrides the preset)')
    parser.add_argument('--combine', nargs='+', metavar='JSON',
                        help='instead of evaluating: merge robustness.json reports of disjoint '
                             'networks made with the same settings (e.g. one process per network) '
                             'into one table in --out')
    add_seed_argument(parser)
    add_device_argument(parser)
    add_mnist_argument(parser)
    return parser


def evaluate(argv=None):
    """Run ``python -m Friendly.robustness`` with the command line ``argv`` in this process
    (bad options exit with status 2); returns the report written."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return run(parser, args, argv)


def check_args(parser, args):
    """Lock ``--out`` (checked, created and locked before any work); every bad option value is a
    one-line error (exit status 2)."""
    lock.claim_arg(parser, args.out)
    cli.check_bounds(parser, args)


def run(parser, args, argv=None):
    """Evaluate the networks of the checked ``args`` and write the report into ``args.out``
    (``--combine``: merge finished reports instead); returns the report."""
    if args.combine:
        if args.run or args.source:
            parser.error('--combine merges finished reports; it takes no --run or --source')
        try:
            report = combine(args.combine)
        except ValueError as e:
            parser.exit(2, parser.prog + ': error: --combine: {}\n'.format(e))
        report['provenance'] = provenance.record('python -m Friendly.robustness', argv)
        return write_outputs(args.out, report)
    if not args.run or not args.source:
        parser.error('--run and --source are required (or --combine)')
    try:
        eps = attacks.check_eps(args.eps)
    except ValueError as e:
        parser.error('--eps: {}'.format(e))
    device = device_from_args(args, parser)
    seed_everything(args.seed)

    networks, source, source_settings = load_networks(parser, args.run, args.source,
                                                      args.model, device)
    x_test, t_test = test_arrays(parser, args.mnist_dir)

    overrides = {'test_subset': args.test_subset, 'pgd_steps': args.pgd_steps,
                 'pgd_restarts': args.pgd_restarts, 'curve_subset': args.curve_subset}
    budgets = {n: budget(args.preset, n, overrides) for n in networks}
    n_table = max(b['test_subset'] or len(x_test) for b in budgets.values())
    n_curve = max(b['curve_subset'] for b in budgets.values())
    timings = {}
    start = time.time()
    # Black-box examples from the source, made once per eps: float32 (Friendly.evaluate's
    # function, the thesis's) and with the gradient of the source's float64 copy.
    n_black = max(n_table, n_curve)
    source64 = float64_copy(source)
    black = {eps: source_sets(source, source64, x_test[:n_black], t_test[:n_black], eps,
                              args.batchsize, device, progress=True)}
    curve_eps = [float(e) for e in CURVE_EPS] + [float(UNBOUNDED_EPS)]
    for e in curve_eps:
        if e not in black:
            black[e] = source_sets(source, source64, x_test[:n_curve], t_test[:n_curve], e,
                                   args.batchsize, device)
    timings['source'] = time.time() - start

    rows, images, curve, flags = {}, {}, {}, []
    for name in ordered(networks):
        model, settings, run_dir = networks[name]
        b = budgets[name]
        start = time.time()
        model64 = float64_copy(model)
        n = min(b['test_subset'] or len(x_test), len(x_test))
        got = evaluate_set(model, model64, x_test[:n], t_test[:n], eps, args.batchsize,
                           args.bn_eval, device, ATTACKS, black[eps]['blackbox'][:n],
                           b['pgd_steps'], b['pgd_restarts'], args.seed, zero_grad=True,
                           black64=black[eps]['blackbox_float64'][:n])
        row = {k: 100.0 * float(got[k].mean()) for k in ('clean',) + ATTACKS + ('worst_case',)}
        row['zero_grad_fraction'] = 100.0 * float(got['zero_grad'].mean())
        row['zero_grad_fraction_float64'] = 100.0 * float(got['zero_grad_float64'].mean())
        for key in ('zero_grad', 'zero_grad_float64'):
            row['source_' + key.replace('grad', 'grad_fraction')] = 100.0 * float(
                black[eps][key][:n].mean())
        if attacks.input_independent(model, device.send(x_test[:min(n, 200)])):
            row['input_independent'] = True
            flags.append('{}: its outputs are the same for every test image (they do not depend '
                         'on the input): the attacks have no gradient to follow, and its '
                         'accuracy is that of one class, not robustness.'.format(name))
        rows[name], images[name] = row, n
        timings[name + '_table'] = time.time() - start
        print('{} ({} images): '.format(name, n) + ', '.join(
            '{} {:.2f}'.format(k, row[k]) for k in COLUMNS), flush=True)

        start = time.time()
        m = min(b['curve_subset'], len(x_test))
        wanted = [a for a in ATTACKS if a in b['curve_attacks']]
        if 'fgsm' not in wanted:
            wanted.insert(0, 'fgsm')
        accuracy = {}
        for e in curve_eps:
            # eps 0 leaves every image as it is: every attack's accuracy is the clean one.
            got = evaluate_set(model, model64, x_test[:m], t_test[:m], e, args.batchsize,
                               args.bn_eval, device, [] if e == 0 else wanted,
                               black[e]['blackbox'][:m], b['curve_pgd_steps'],
                               b['curve_pgd_restarts'], args.seed,
                               black64=black[e]['blackbox_float64'][:m])
            fgsm = got['clean'] if e == 0 else got['fgsm']
            accuracy['{:g}'.format(e)] = {
                'white_box': 100.0 * float(fgsm.mean()),
                'worst_case': 100.0 * float(got['worst_case'].mean()),
                'per_attack': {k: 100.0 * float(got[k].mean()) for k in got if k in ATTACKS}}
        curve[name] = {'eps': ['{:g}'.format(e) for e in curve_eps[:-1]], 'images': m,
                       'attacks': wanted, 'pgd_steps': b['curve_pgd_steps'],
                       'pgd_restarts': b['curve_pgd_restarts'], 'accuracy': accuracy}
        timings[name + '_curve'] = time.time() - start
        flags += flags_for(name, row, accuracy['{:g}'.format(UNBOUNDED_EPS)],
                           has_batch_renorm(model))

    report = {
        'eps': eps, 'bn_eval': args.bn_eval, 'batchsize': args.batchsize, 'preset': args.preset,
        'budgets': budgets, 'curve_eps': [float(e) for e in CURVE_EPS],
        'unbounded_eps': UNBOUNDED_EPS, 'model': args.model,
        'accuracy_pct': rows, 'images': images, 'flags': flags, 'eps_curve': curve,
        'thresholds': {'worst_gap_points': WORST_GAP, 'zero_grad_pct': ZERO_GRAD_MAX,
                       'bn_gap_points': BN_GAP, 'unbounded_pct': UNBOUNDED_MAX},
        'runs': {n: networks[n][2] for n in networks}, 'source': args.source,
        'source_seed': source_settings['seed'], 'seed': args.seed, 'seconds': timings,
        'command': [sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]),
        'provenance': provenance.record('python -m Friendly.robustness', argv, device)}
    timings['total'] = sum(timings.values())
    return write_outputs(args.out, report)
