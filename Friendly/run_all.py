"""Chapter 3 end to end: train the six networks and the black-box source, evaluate, write tables.

``python -m Friendly.run_all --preset quick --seed 0 --out results`` (what ``make friendly`` runs)
writes the runs to ``OUT/friendly/runs/<network>`` and the tables to ``OUT/friendly/table.md``,
``table.csv`` and ``accuracy_bars.png``. A network whose final model already exists with the same
settings is skipped; an interrupted one resumes from its last snapshot; a run folder holding
another configuration (say, from another preset) is moved aside to ``<network>.old-N``.

Each training is a separate ``python -m Friendly.train`` process with one BLAS thread
(``OPENBLAS_NUM_THREADS=1``, ``OMP_NUM_THREADS=1``), its output in
``OUT/friendly/logs/<network>.log``; ``--jobs N`` runs N of them at a time (longest first), then
the evaluation runs. A training that fails (say, on a NaN) is reported, the others are evaluated,
and the exit status is 1.

Presets (the README's table says the same):

* ``thesis``: the full protocol: 55,800 training images, at most 100 epochs with early stopping
  (patience 20), validation on 4,200 images, test on all 10,000; GMRES with ``--stabilize`` (the
  faithful GMRES collapses, see the README). PD at this scale is a GPU job: on the CPU it is
  skipped, with a line saying so, unless ``--pd-on-cpu`` is given.
* ``quick`` (default): every network on real MNIST with fewer epochs; PD on a training subset.
* ``smoke``: a CI check of the whole pipeline on tiny subsets, in well under 3 minutes.
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
import time

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)

from Friendly import evaluate as evaluate_module
from Friendly import models
from Friendly import train as train_module
from Friendly.mnist import add_mnist_argument
from lenses_common.device import add_device_argument, get_device, DeviceError
from lenses_common.runfolder import RunFolder, atomic_write_json, check_out_arg, load_json
from lenses_common.runfolder import move_aside

SOURCE = 'source'   # run folder name of the separately trained black-box S network
SOURCE_SEED_OFFSET = 1000

# Per-network training options ('*' for every network unless overridden) and evaluation options.
PRESETS = {
    'thesis': {
        'train': {'*': {}, 'GMRES': {'stabilize': True}},
        'evaluate': {},
    },
    'quick': {
        'train': {
            '*': {'epoch': 10},
            'A': {'epoch': 6},
            'GMR': {'epoch': 6},
            'GMRES': {'epoch': 6},
            'PD': {'epoch': 2, 'train_subset': 8000, 'val_subset': 1000},
        },
        'evaluate': {},
    },
    'smoke': {
        'train': {
            '*': {'epoch': 2, 'train_subset': 1000, 'val_subset': 400, 'snapshot_interval': 1},
            'PD': {'epoch': 1, 'train_subset': 60, 'val_subset': 200},
        },
        'evaluate': {'test_subset': 400},
    },
}

NETWORKS = models.VARIANTS + (SOURCE,)
# Rough relative training times (thesis preset, CPU); only the order the trainings start in.
TRAIN_COST = {'PD': 100.0, 'GMRES': 3.0, 'A': 2.0, 'GMR': 2.0, 'RS': 1.5, 'S': 1.0, SOURCE: 1.0}
# PD at thesis scale on the CPU: ~0.17 s an iteration (make bench), 2,790 iterations an epoch.
PD_CPU_HOURS = 0.17 * 2790 * 100 / 3600
CHILD_THREADS = {'OPENBLAS_NUM_THREADS': '1', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}


def parse_networks(parser, text):
    """The comma-separated ``--networks`` list, each a known variant, or exit with one line."""
    networks = [n.strip() for n in text.split(',') if n.strip()]
    for n in networks:
        try:
            models.check_variant(n)
        except models.VariantError as e:
            parser.error('--networks: {}'.format(e))
    return networks


def train_options(preset, network):
    table = PRESETS[preset]['train']
    options = dict(table.get('*', {}))
    options.update(table.get('S' if network == SOURCE else network, {}))
    return options


def train_argv(network, options, seed, run_dir, device, mnist_dir):
    variant = 'S' if network == SOURCE else network
    argv = ['--variant', variant, '--seed', str(seed), '--out', run_dir, '--no-progress']
    for key, value in sorted(options.items()):
        if value is True:
            argv.append('--' + key.replace('_', '-'))
        elif value is not False:
            argv += ['--' + key.replace('_', '-'), str(value)]
    if device:
        argv += ['--device', device]
    if mnist_dir:
        argv += ['--mnist-dir', mnist_dir]
    return argv


def _comparable(settings):
    return {k: v for k, v in settings.items() if k not in ('device', 'mnist_dir')}


def run_state(run_dir, wanted):
    """'done', 'resume', 'fresh' or 'other' (the folder holds another configuration)."""
    settings_path = os.path.join(run_dir, RunFolder.SETTINGS)
    if not os.path.exists(settings_path):
        return 'fresh' if not os.path.exists(run_dir) or not os.listdir(run_dir) else 'other'
    try:
        previous = load_json(settings_path)
    except ValueError:
        return 'other'
    if _comparable(previous) != _comparable(wanted):
        return 'other'
    if os.path.exists(os.path.join(run_dir, train_module.FINAL_MODEL)):
        return 'done'
    if train_module.latest_snapshot(run_dir):
        return 'resume'
    return 'fresh'


def child_env():
    """The environment of a training process: one BLAS thread, this checkout first on the path."""
    env = dict(os.environ)
    env.update(CHILD_THREADS)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = os.pathsep.join(p for p in (root, env.get('PYTHONPATH')) if p)
    return env


def run_training(argv, log_path):
    """Run ``python -m Friendly.train argv`` with its output appended to ``log_path``.

    Returns (exit status, wall seconds, CPU seconds of the process or None where unknown).
    """
    command = [sys.executable, '-m', 'Friendly.train'] + list(argv)
    start = time.time()
    with open(log_path, 'a') as log:
        log.write('$ {}\n'.format(' '.join(command)))
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env=child_env())
        cpu = None
        if hasattr(os, 'wait4'):
            _, raw, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(raw)
            cpu = usage.ru_utime + usage.ru_stime
        status = process.wait()
    return status, time.time() - start, cpu


def last_line(path):
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ''
    return lines[-1] if lines else ''


def thesis_pd_note(preset, networks, on_cpu, pd_on_cpu, device=None):
    """The line the thesis preset prints about PD at its start ('' when PD is not concerned).

    PD at thesis scale is a GPU job; on the CPU it is skipped (the line ends 'skipped ...')
    unless ``pd_on_cpu``.
    """
    if preset != 'thesis' or 'PD' not in networks:
        return ''
    scale = ('PD at thesis scale is a GPU job: about {:.0f} hours on a 2-core CPU (~0.17 s an '
             'iteration, 279,000 iterations)'.format(PD_CPU_HOURS))
    if not on_cpu:
        return '== PD: {}; training it on {}'.format(scale, device)
    if pd_on_cpu:
        return '== PD: {}; training it here anyway (--pd-on-cpu)'.format(scale)
    return ('== PD: {}; skipped (--pd-on-cpu trains it here, --device @cupy:0 on a '
            'GPU)'.format(scale))


def build_parser():
    parser = argparse.ArgumentParser(
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
    parser.add_argument('--eps', type=float, default=77,
                        help='attack budget in pixel units 0..255 (default: %(default)s)')
    parser.add_argument('--bn-eval', choices=models.BN_MODES, default='batch',
                        help='Batch Renormalization at test: batch statistics (the thesis) or '
                             'running averages (default: %(default)s)')
    parser.add_argument('--jobs', '-j', type=int, default=1,
                        help='trainings run at the same time, each a separate process with one '
                             'BLAS thread (on a 2-core CPU: 2) (default: %(default)s)')
    parser.add_argument('--pd-on-cpu', action='store_true',
                        help='thesis preset: train PD on the CPU too (about {:.0f} hours); '
                             'without it PD is skipped there, with a line saying so'.format(
                                 PD_CPU_HOURS))
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the six networks and the data split; the black-box source '
                             'uses seed + {} (default: %(default)s)'.format(SOURCE_SEED_OFFSET))
    add_device_argument(parser)
    add_mnist_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out)
    networks = parse_networks(parser, args.networks)
    if not 0 <= args.eps <= 255:
        parser.error('--eps must be in 0..255 (pixel units), got {:g}'.format(args.eps))
    if not 0 <= args.seed < 2 ** 32 - SOURCE_SEED_OFFSET:
        parser.error('--seed must be in 0..{}'.format(2 ** 32 - SOURCE_SEED_OFFSET - 1))
    if args.jobs < 1:
        parser.error('--jobs must be at least 1, got {}'.format(args.jobs))
    try:
        on_cpu = get_device(args.device).xp is numpy
    except DeviceError as e:
        parser.error(str(e))

    note = thesis_pd_note(args.preset, networks, on_cpu, args.pd_on_cpu, args.device)
    if note:
        print(note, flush=True)
        if 'skipped' in note:
            networks.remove('PD')

    root = os.path.join(args.out, 'friendly')
    runs = os.path.join(root, 'runs')
    logs = os.path.join(root, 'logs')
    os.makedirs(logs, exist_ok=True)
    timings = {}
    started = time.time()
    pending = []
    for network in networks + [SOURCE]:
        seed = args.seed + SOURCE_SEED_OFFSET if network == SOURCE else args.seed
        run_dir = os.path.join(runs, network)
        argv_train = train_argv(network, train_options(args.preset, network), seed, run_dir,
                                args.device, args.mnist_dir)
        wanted = train_module.settings_from_args(train_module.build_parser().parse_args(
            argv_train))
        state = run_state(run_dir, wanted)
        if state == 'done':
            print('== {}: final model with these settings exists, skipped'.format(network))
            continue
        if state == 'other':
            print('== {}: {} holds another configuration; moved to {}'.format(
                network, run_dir, move_aside(run_dir)))
        if state == 'resume':
            argv_train.append('--resume')
        pending.append((network, argv_train))
    pending.sort(key=lambda item: -TRAIN_COST.get(item[0], 1.0))   # longest first

    failed = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {}
        for network, argv_train in pending:
            log_path = os.path.join(logs, network + '.log')
            print('== {}: python -m Friendly.train {} (log: {})'.format(
                network, ' '.join(argv_train), log_path), flush=True)
            futures[pool.submit(run_training, argv_train, log_path)] = (network, log_path)
        for future in concurrent.futures.as_completed(futures):
            network, log_path = futures[future]
            status, seconds, cpu = future.result()
            timings['train_' + network] = seconds
            timings['train_cpu_' + network] = cpu
            if status == 0:
                print('== {}: trained in {:.0f} s{}'.format(
                    network, seconds, '' if cpu is None else ' ({:.0f} CPU s)'.format(cpu)),
                    flush=True)
            else:
                failed[network] = last_line(log_path)
                print('== {}: training FAILED (exit status {}, {:.0f} s): {} (log: {})'.format(
                    network, status, seconds, failed[network], log_path), flush=True)
    timings['trainings_wall'] = time.time() - started
    evaluated = [n for n in networks if n not in failed]
    if not evaluated:
        parser.exit(1, 'error: every training failed: {}\n'.format(', '.join(sorted(failed))))

    argv_eval = ['--out', root, '--eps', '{:g}'.format(args.eps), '--bn-eval', args.bn_eval,
                 '--seed', str(args.seed)]
    if SOURCE not in failed:
        argv_eval += ['--source', os.path.join(runs, SOURCE)]
    for network in evaluated:
        argv_eval += ['--run', os.path.join(runs, network)]
    for key, value in sorted(PRESETS[args.preset]['evaluate'].items()):
        argv_eval += ['--' + key.replace('_', '-'), str(value)]
    if args.pgd:
        argv_eval.append('--pgd')
    if args.device:
        argv_eval += ['--device', args.device]
    if args.mnist_dir:
        argv_eval += ['--mnist-dir', args.mnist_dir]
    print('== evaluation: python -m Friendly.evaluate {}'.format(' '.join(argv_eval)))
    start = time.time()
    results = evaluate_module.main(argv_eval)
    timings['evaluate'] = time.time() - start
    timings['total'] = time.time() - started
    atomic_write_json(os.path.join(root, 'run_all.json'), {
        'preset': args.preset, 'presets': PRESETS[args.preset], 'seed': args.seed,
        'source_seed': args.seed + SOURCE_SEED_OFFSET, 'networks': networks,
        'jobs': args.jobs, 'failed': failed, 'seconds_this_call': timings,
        'command': ['python -m Friendly.run_all'] + list(argv if argv is not None
                                                         else sys.argv[1:])})
    print('wrote {}'.format(os.path.join(root, 'table.md')))
    if failed:
        parser.exit(1, 'error: training failed for {}; see {}\n'.format(
            ', '.join(sorted(failed)), ', '.join(
                os.path.join(logs, n + '.log') for n in sorted(failed))))
    return results


if __name__ == '__main__':
    main()
