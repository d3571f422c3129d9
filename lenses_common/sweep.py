"""What both parts' ``run_all`` share: presets, seeds, skip/resume/move-aside, executors, summaries.

A sweep is a list of jobs, each one command ``python -m MODULE ARGV`` (a training, or Friendly's
evaluation of one seed) run by :func:`run_command` in a process of its own with one BLAS thread.
Every executor runs exactly that function, so the numbers do not depend on the executor or on the
number of workers:

* ``--executor process`` (default): ``--jobs N`` commands at a time on this machine (a
  ``ThreadPoolExecutor`` whose threads wait on the child processes);
* ``--executor mpi``: ``mpi4py.futures.MPIPoolExecutor``, for a run started as
  ``mpiexec -n K python -m mpi4py.futures -m PART.run_all --executor mpi ...`` (K - 1 workers,
  on every node ``mpiexec`` reaches; the output folder must be on a file system they share).

Seeds: ``--seed N`` (one seed) writes the run folders where they always were; ``--seeds 0,1,2``
with more than one seed gives every seed its own folder ``seed-<S>`` below the part's output
folder, holding what a one-seed run holds, and the part writes ``results.csv`` (one row per seed)
and a mean +- standard deviation table beside them.
"""
import concurrent.futures
import csv
import glob
import importlib
import io
import math
import os
import subprocess
import sys
import time

from lenses_common.runfolder import load_json, move_aside

EXECUTORS = ('process', 'mpi')
#: One BLAS thread per job: its numbers then do not depend on how many run at a time.
CHILD_THREADS = {'OPENBLAS_NUM_THREADS': '1', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
#: Variables through which an MPI launcher tells a process its rank; a job is a plain single
#: process, so its environment drops them (it must not join, or wait for, the sweep's MPI job).
MPI_ENV_PREFIXES = ('PMI_', 'PMIX_', 'OMPI_', 'MPIR_', 'HYDRA_', 'MPI_LOCALRANKID',
                    'MPI_LOCALNRANKS')


def preset_options(entries, name, alias=None):
    """One preset's options for ``name``: ``entries['*']`` updated by ``entries[name]`` (or
    ``entries[alias]`` when ``name`` has no entry of its own)."""
    options = dict(entries.get('*', {}))
    options.update(entries.get(name, entries.get(alias, {})))
    return options


def options_argv(options):
    """``{'train_subset': 60, 'stabilize': True}`` ->
    ``['--stabilize', '--train-subset', '60']`` (False and None leave the option out)."""
    argv = []
    for key, value in sorted(options.items()):
        if value is True:
            argv.append('--' + key.replace('_', '-'))
        elif value is not False and value is not None:
            argv += ['--' + key.replace('_', '-'), str(value)]
    return argv


# --- seeds and the command line ---------------------------------------------------------------

def add_sweep_arguments(parser, seed_help):
    """``--seed`` / ``--seeds`` (one of them), ``--executor`` and ``--jobs``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--seed', type=int, default=None, help=seed_help + ' (default: 0)')
    group.add_argument('--seeds', default=None,
                       help='comma-separated seeds, a sweep: each seed is a whole run; with more '
                            'than one, each gets OUT/<part>/seed-<S>, plus results.csv and a '
                            'mean +- standard deviation table')
    parser.add_argument('--executor', choices=EXECUTORS, default='process',
                        help='process: --jobs commands at a time on this machine; mpi: '
                             'mpi4py.futures workers, for `mpiexec -n K python -m mpi4py.futures '
                             '-m ... --executor mpi` (default: %(default)s)')
    parser.add_argument('--jobs', '-j', type=int, default=1,
                        help='--executor process: trainings at a time, each a separate process '
                             'with one BLAS thread (on a 2-core CPU: 2) (default: %(default)s)')
    return parser


def check_sweep_args(parser, args, max_seed=2 ** 32 - 1):
    """The seeds to run (a list), after checking ``--seed(s)``, ``--jobs`` and ``--executor``;
    any bad value exits with one line (status 2)."""
    if args.seeds is None:
        seeds = [0 if args.seed is None else args.seed]
    else:
        try:
            seeds = [int(s) for s in args.seeds.split(',') if s.strip()]
        except ValueError:
            parser.error('--seeds: comma-separated integers expected, got {!r}'.format(
                args.seeds))
        if not seeds:
            parser.error('--seeds: no seed given')
        if len(set(seeds)) != len(seeds):
            parser.error('--seeds: {} repeats a seed'.format(args.seeds))
    for seed in seeds:
        if not 0 <= seed <= max_seed:
            parser.error('--seed{} must be in 0..{}, got {}'.format(
                '' if args.seeds is None else 's', max_seed, seed))
    if args.jobs < 1:
        parser.error('--jobs must be at least 1, got {}'.format(args.jobs))
    if args.executor == 'mpi':
        if args.jobs != 1:
            parser.error('--jobs: with --executor mpi the workers are the mpiexec processes '
                         'but one; leave --jobs out')
        problem = mpi_problem()
        if problem:
            parser.exit(2, '{}: error: --executor mpi: {}\n'.format(parser.prog, problem))
    return seeds


def seed_root(root, seed, seeds):
    """The folder of one seed's runs and tables: ``root`` itself for a one-seed run."""
    return root if len(seeds) == 1 else os.path.join(root, 'seed-{}'.format(seed))


# --- skip, resume, move aside -----------------------------------------------------------------

def run_state(run_dir, wanted, same, finished, snapshots):
    """'done', 'resume', 'fresh', or 'other' (the folder holds another configuration).

    ``same(previous, wanted)`` compares the folder's ``settings.json`` with the settings the run
    should have; ``finished`` names the final model, ``snapshots`` is the snapshots' glob.
    """
    settings_path = os.path.join(run_dir, 'settings.json')
    if not os.path.exists(settings_path):
        return 'fresh' if not os.path.isdir(run_dir) or not os.listdir(run_dir) else 'other'
    try:
        previous = load_json(settings_path)
    except ValueError:
        return 'other'
    if not isinstance(previous, dict) or not same(previous, wanted):
        return 'other'
    if os.path.exists(os.path.join(run_dir, finished)):
        return 'done'
    if glob.glob(os.path.join(glob.escape(run_dir), snapshots)):
        return 'resume'
    return 'fresh'


def prepare_run(name, run_dir, state, log):
    """Log what happens to a run in ``state``; move a folder holding another configuration aside
    (nothing is deleted). Returns True when the run must be trained."""
    if state == 'done':
        log('{}: final model with these settings exists, skipped'.format(name))
        return False
    if state == 'other':
        log('{}: {} holds another configuration; moved to {}'.format(
            name, run_dir, move_aside(run_dir)))
    return True


# --- the job and the executors ------------------------------------------------------------------

def child_env():
    """A job's environment: one BLAS thread, this checkout first on the path, no MPI rank."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(MPI_ENV_PREFIXES)}
    env.update(CHILD_THREADS)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = os.pathsep.join(p for p in (root, env.get('PYTHONPATH')) if p)
    return env


def run_command(module, argv, log_path):
    """The job: run ``python -m module argv`` with its output appended to ``log_path``.

    Returns (exit status, wall seconds, CPU seconds of the process or None where unknown).
    """
    command = [sys.executable, '-m', module] + list(argv)
    start = time.time()
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
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


def mpi_problem():
    """Why ``--executor mpi`` cannot run here ('' when it can)."""
    try:
        importlib.import_module('mpi4py')
    except ImportError:
        return 'mpi4py is not installed (make install-mpi)'
    core = sys.modules.get('mpi4py.futures._core')
    if core is None or getattr(core, 'SharedPool', None) is None:
        return ('not started through mpi4py.futures; run `mpiexec -n K {} -m mpi4py.futures -m '
                'MODULE --executor mpi ...` (K - 1 workers)'.format(sys.executable))
    return ''


def make_executor(kind, jobs):
    if kind == 'mpi':
        from mpi4py.futures import MPIPoolExecutor
        return MPIPoolExecutor()
    return concurrent.futures.ThreadPoolExecutor(max_workers=jobs)


def run_jobs(executor, jobs, log):
    """Run ``jobs`` (``[(name, module, argv, log_path)]``, in that order) through ``executor``.

    Returns ``{name: (status, wall seconds, CPU seconds or None)}``; each finish is logged.
    """
    futures = {}
    for name, module, argv, log_path in jobs:
        log('{}: python -m {} {} (log: {})'.format(name, module, ' '.join(argv), log_path))
        futures[executor.submit(run_command, module, argv, log_path)] = (name, log_path)
    done = {}
    for future in concurrent.futures.as_completed(futures):
        name, log_path = futures[future]
        status, seconds, cpu = done[name] = future.result()
        if status == 0:
            log('{}: done in {:.0f} s{}'.format(
                name, seconds, '' if cpu is None else ' ({:.0f} CPU s)'.format(cpu)))
        else:
            log('{}: FAILED (exit status {}, {:.0f} s): {} (log: {})'.format(
                name, status, seconds, last_line(log_path), log_path))
    return done


def last_line(path):
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ''
    return lines[-1] if lines else ''


# --- results over seeds ------------------------------------------------------------------

def results_csv(rows, columns):
    """CSV text of ``rows`` (dicts) with ``columns``: values as given (callers format them),
    missing ones empty."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(columns)
    for row in rows:
        writer.writerow(['' if row.get(c) is None else row[c] for c in columns])
    return buf.getvalue()


def mean_std(values):
    """``(mean, sample standard deviation (ddof 1) or None for one value, n)`` of the non-None
    values (``(None, None, 0)`` when there are none)."""
    values = [float(v) for v in values if v is not None and v != '']
    n = len(values)
    if not n:
        return None, None, 0
    mean = sum(values) / n
    if n == 1:
        return mean, None, 1
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)), n


def format_mean_std(values, fmt='{:.2f}', unit=''):
    mean, std, n = mean_std(values)
    if mean is None:
        return '-'
    if std is None:
        return (fmt + unit).format(mean)
    return (fmt + unit + ' ± ' + fmt + unit).format(mean, std)
