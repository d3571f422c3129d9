"""Chapter 3 end to end: train the six networks and the black-box source, evaluate, write tables.

``python -m Friendly.run_all --preset quick --seed 0 --out results`` (what ``make friendly`` runs)
writes the runs to ``OUT/friendly/runs/<network>`` and the tables to ``OUT/friendly/table.md``,
``table.csv`` and ``accuracy_bars.png``. A network whose final model already exists with the same
settings is skipped; an interrupted one resumes from its last snapshot; a run folder holding
another configuration (say, from another preset) is moved aside to ``<network>.old-N``.

Each training is a separate ``python -m Friendly.train`` process with one BLAS thread
(``OPENBLAS_NUM_THREADS=1``, ``OMP_NUM_THREADS=1``), its output in
``OUT/friendly/logs/<network>.log``; ``--jobs N`` runs N of them at a time (longest first), then
the evaluation runs (``python -m Friendly.evaluate``, one BLAS thread too, log
``OUT/friendly/logs/evaluate.log``). A training that fails (say, on a NaN: that training exits
with status 3) is reported, the others are evaluated, and the exit status is 1.
``--executor mpi`` runs the same jobs on ``mpi4py.futures`` workers (``lenses_common.sweep``).

Seeds: ``--seed N`` (default 0) trains the six networks with seed N and the black-box source with
N + 1000, in the folders above. ``--seeds 0,1,2`` runs that for every seed; with more than one seed
each seed's runs, logs and tables go to ``OUT/friendly/seed-<S>/`` (the layout above, one level
down), and ``OUT/friendly/table.md`` shows the mean +- standard deviation over the seeds. Both
forms write ``OUT/friendly/results.csv``, one row per seed and network: the accuracies, the
number of test images and the machine that trained it (a copy of the file, as in
``Friendly/records/``, keeps where its figures come from).

Presets (the README's table says the same):

* ``thesis``: the full protocol: 55,800 training images, at most 100 epochs with early stopping
  (patience 20), validation on 4,200 images, test on all 10,000; GMRES with ``--stabilize`` (the
  faithful GMRES collapses, see the README); PD in the exact half-size pair form
  (``--pd-form pairs`` of ``Friendly.train``). PD at this scale is a GPU job: on the CPU it is
  skipped, with a line saying so, unless ``--pd-on-cpu`` is given; it then trains with a snapshot
  every epoch and, run again, resumes from the last one.
* ``quick`` (default): every network on real MNIST with fewer epochs; PD on a training subset.
* ``smoke``: a CI check of the whole pipeline on tiny subsets, in well under 3 minutes.
"""
import os
import sys
import time

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)

from Friendly import models
from Friendly.evaluate_report import METRICS
from Friendly.mnist import add_mnist_argument
from Friendly.pipeline import PD_CPU_HOURS, PD_CPU_SECONDS_PER_ITERATION, PRESETS, SOURCE
from Friendly.pipeline import SOURCE_SEED_OFFSET, TRAIN_COST, parse_networks, run_state
from Friendly.pipeline import train_argv, train_options, wanted_settings, where_argv
from Friendly.runs import ordered
from lenses_common import provenance, sweep
from lenses_common.device import add_device_argument, get_device, DeviceError
from lenses_common.runfolder import atomic_write_json, atomic_write_text, check_out_arg, load_json
from lenses_common.snapshots import FINAL_MODEL
from lenses_common import cli


def thesis_pd_note(preset, networks, on_cpu, pd_on_cpu, device=None):
    """The line the thesis preset prints about PD at its start ('' when PD is not concerned).

    PD at thesis scale is a GPU job; on the CPU it is skipped (the line ends 'skipped ...')
    unless ``pd_on_cpu``.
    """
    if preset != 'thesis' or 'PD' not in networks:
        return ''
    scale = ('PD at thesis scale is a GPU job: up to about {:.0f} hours on a free 2-core CPU '
             'in the pair form (~{:.2f} s an iteration, at most 279,000 iterations; more on a '
             'shared machine)'.format(PD_CPU_HOURS, PD_CPU_SECONDS_PER_ITERATION))
    if not on_cpu:
        return '== PD: {}; training it on {}'.format(scale, device)
    if pd_on_cpu:
        return '== PD: {}; training it here anyway (--pd-on-cpu)'.format(scale)
    return ('== PD: {}; skipped (--pd-on-cpu trains it here, --device @cupy:0 on a '
            'GPU)'.format(scale))


def build_parser():
    parser = cli.ArgumentParser(
        description='Thesis chapter 3 end to end: train S, RS, A, GMR, GMRES, PD and the '
                    'black-box source network, then write the accuracy tables.')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='quick',
                        help='smoke (CI, < 3 min), quick (every network on real MNIST, <= 30 min '
                             'on 2 CPU cores) or thesis (the full protocol; PD needs a GPU) '
                             '(default: %(default)s)')
    parser.add_argument('--out', '-o', default='results',
                        help='output root; runs go to OUT/friendly/runs (default: %(default)s)')
    parser.add_argument('--networks', default=','.join(models.VARIANTS),
                        help='comma-separated networks to train and evaluate (default: all six)')
    parser.add_argument('--pgd', action='store_true', help='also evaluate PGD (slow on a CPU)')
    parser.add_argument('--eps', type=cli.finite_float(0, 255), default=77,
                        help='attack budget in pixel units 0..255 (default: %(default)s)')
    parser.add_argument('--bn-eval', choices=models.BN_MODES, default='batch',
                        help='Batch Renormalization at test: batch statistics (the thesis) or '
                             'running averages (default: %(default)s)')
    parser.add_argument('--pd-on-cpu', action='store_true',
                        help='thesis preset: train PD on the CPU too (pair form, up to about '
                             '{:.0f} hours on a free 2-core CPU; a snapshot every epoch, and a '
                             'second call resumes an interrupted run); without it PD is skipped '
                             'there, with a line saying so'.format(PD_CPU_HOURS))
    sweep.add_sweep_arguments(parser, 'seed of the six networks and the data split; the '
                              'black-box source uses seed + {}'.format(SOURCE_SEED_OFFSET))
    add_device_argument(parser)
    add_mnist_argument(parser)
    return parser


def log(message):
    print('== ' + message, flush=True)


def evaluate_argv(args, root, runs, networks, seed):
    argv = ['--out', root, '--eps', '{:g}'.format(args.eps), '--bn-eval', args.bn_eval,
            '--seed', str(seed), '--no-progress']
    if os.path.exists(os.path.join(runs, SOURCE, FINAL_MODEL)):
        argv += ['--source', os.path.join(runs, SOURCE)]
    for network in networks:
        argv += ['--run', os.path.join(runs, network)]
    argv += sweep.options_argv(PRESETS[args.preset]['evaluate'])
    if args.pgd:
        argv.append('--pgd')
    return argv + where_argv(args.device, args.mnist_dir)


def result_rows(results, seeds, about=None):
    """results.csv's rows: one per seed and network, every accuracy column of the table, then
    what ``about`` says of each (seed, network): ``test_images`` and ``trained_on`` (the CPU and
    BLAS threads of its training), so that a copy of the file keeps where its figures come from."""
    about = about or {}
    keys = [k for k, _ in METRICS
            if any(k in r for seed in seeds for r in results.get(seed, {}).values())]
    extra = [c for c in ABOUT_COLUMNS if any(c in a for a in about.values())]
    rows = [dict({'seed': seed, 'network': network},
                 **{k + '_pct': '{:.2f}'.format(values[k]) for k in keys if k in values},
                 **{c: about.get((seed, network), {}).get(c, '') for c in extra})
            for seed in seeds if seed in results
            for network, values in ((n, results[seed][n])
                                    for n in ordered(results[seed]))]
    return rows, ['seed', 'network'] + [k + '_pct' for k in keys] + extra


#: results.csv's columns after the accuracies: where each row's figures come from.
ABOUT_COLUMNS = ('test_images', 'trained_on')


def about_runs(root, seed, networks, test_images):
    """``{(seed, network): {'test_images', 'trained_on'}}`` from the runs' settings.json."""
    about = {}
    for network in networks:
        entry = {'test_images': '' if test_images is None else str(test_images)}
        try:
            env = load_json(os.path.join(root, 'runs', network, 'settings.json')).get(
                'environment')
        except (ValueError, AttributeError):
            env = None
        if isinstance(env, dict):
            entry['trained_on'] = provenance.machine_text(env)
        about[(seed, network)] = entry
    return about


def mean_std_table(rows, columns, seeds, args):
    """table.md of a sweep: mean +- sample standard deviation over the seeds, and n."""
    labels = dict(METRICS)
    keys = [c[:-len('_pct')] for c in columns if c.endswith('_pct')]
    lines = ['# Friendly: accuracy over seeds {} (preset {})'.format(
                 ', '.join(map(str, seeds)), args.preset), '',
             'Mean ± sample standard deviation (n - 1) over the seeds, in %; n = seeds with a '
             'result. eps = {:g} (pixel units), Batch Renormalization at test: {}. One row per '
             'seed and network in results.csv; each seed\'s tables in seed-<S>/table.md.'.format(
                 args.eps, args.bn_eval), '',
             '| network | ' + ' | '.join(labels[k] for k in keys) + ' | n |',
             '| --- | ' + ' | '.join('---:' for _ in keys) + ' | ---: |']
    for network in ordered({r['network'] for r in rows}):
        mine = [r for r in rows if r['network'] == network]
        lines.append('| {} | '.format(network) + ' | '.join(
            sweep.format_mean_std([r.get(k + '_pct') for r in mine]) for k in keys) +
            ' | {} |'.format(len(mine)))
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out)
    networks = parse_networks(parser, args.networks)
    seeds = sweep.check_sweep_args(parser, args, 2 ** 32 - SOURCE_SEED_OFFSET - 1)
    try:
        on_cpu = get_device(args.device).xp is numpy
    except DeviceError as e:
        parser.error(str(e))

    note = thesis_pd_note(args.preset, networks, on_cpu, args.pd_on_cpu, args.device)
    if note:
        print(note, flush=True)
        if 'skipped' in note:
            networks.remove('PD')

    top = os.path.join(args.out, 'friendly')
    roots = {seed: sweep.seed_root(top, seed, seeds) for seed in seeds}
    timings = {}
    started = time.time()
    pending = []
    for seed in seeds:
        prefix = '' if len(seeds) == 1 else 'seed-{}/'.format(seed)
        runs = os.path.join(roots[seed], 'runs')
        for network in networks + [SOURCE]:
            run_dir = os.path.join(runs, network)
            argv_train = train_argv(network, train_options(args.preset, network),
                                    seed + (SOURCE_SEED_OFFSET if network == SOURCE else 0),
                                    run_dir, args.device, args.mnist_dir)
            state = run_state(run_dir, wanted_settings(argv_train))
            if not sweep.prepare_run(prefix + network, run_dir, state, log):
                continue
            if state == 'resume':
                argv_train.append('--resume')
            log_path = os.path.join(roots[seed], 'logs', network + '.log')
            pending.append((prefix + network, 'Friendly.train', argv_train, log_path))
    pending.sort(key=lambda job: -TRAIN_COST.get(job[0].split('/')[-1], 1.0))   # longest first

    executor = sweep.make_executor(args.executor, args.jobs)
    with executor:
        done = sweep.run_jobs(executor, pending, log)
        failed = {name: sweep.last_line(job[3]) for job in pending
                  for name in [job[0]] if done[name][0] != 0}
        for name, (status, seconds, cpu) in done.items():
            timings['train_' + name] = seconds
            timings['train_cpu_' + name] = cpu
        timings['trainings_wall'] = time.time() - started
        evaluations = []
        for seed in seeds:
            prefix = '' if len(seeds) == 1 else 'seed-{}/'.format(seed)
            evaluated = [n for n in networks if prefix + n not in failed]
            if evaluated:
                evaluations.append(('{}evaluate'.format(prefix), 'Friendly.evaluate',
                                    evaluate_argv(args, roots[seed], os.path.join(
                                        roots[seed], 'runs'), evaluated, seed),
                                    os.path.join(roots[seed], 'logs', 'evaluate.log')))
        start = time.time()
        evaluated = sweep.run_jobs(executor, evaluations, log)
        timings['evaluate'] = time.time() - start
    results, about = {}, {}
    for seed in seeds:
        prefix = '' if len(seeds) == 1 else 'seed-{}/'.format(seed)
        status = evaluated.get(prefix + 'evaluate', (None,))[0]
        if status == 0:
            evaluated_seed = load_json(os.path.join(roots[seed], 'results.json'),
                                       'results file')
            results[seed] = evaluated_seed['accuracy_pct']
            about.update(about_runs(roots[seed], seed, results[seed],
                                    evaluated_seed.get('test_images')))
        elif status is not None:
            failed[prefix + 'evaluate'] = sweep.last_line(os.path.join(roots[seed], 'logs',
                                                                      'evaluate.log'))
    if not results:
        parser.exit(1, parser.prog + ': error: no seed was evaluated; failed: {}\n'.format(
            ', '.join(sorted(failed))))
    rows, columns = result_rows(results, seeds, about)
    atomic_write_text(os.path.join(top, 'results.csv'), sweep.results_csv(rows, columns))
    if len(seeds) > 1:
        atomic_write_text(os.path.join(top, 'table.md'),
                          mean_std_table(rows, columns, seeds, args))
    timings['total'] = time.time() - started
    atomic_write_json(os.path.join(top, 'run_all.json'), {
        'preset': args.preset, 'presets': PRESETS[args.preset], 'seeds': seeds,
        'source_seeds': [s + SOURCE_SEED_OFFSET for s in seeds], 'networks': networks,
        'executor': args.executor, 'jobs': args.jobs, 'failed': failed,
        'seconds_this_call': timings,
        'command': ['python -m Friendly.run_all'] + list(argv if argv is not None
                                                         else sys.argv[1:])})
    with open(os.path.join(top, 'table.md')) as f:
        print(f.read())
    print('wrote {} and {}'.format(os.path.join(top, 'table.md'),
                                   os.path.join(top, 'results.csv')))
    if failed:
        parser.exit(1, parser.prog + ': error: failed: {}; see the logs in {}\n'.format(
            ', '.join(sorted(failed)), ', '.join(sorted({
                os.path.join(roots[s], 'logs') for s in seeds}))))
    return results[seeds[0]] if len(seeds) == 1 else results


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
