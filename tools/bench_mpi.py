"""ChainerMN throughput at K = 1 and K = 2 MPI processes: ``make bench-mpi``.

``python tools/bench_mpi.py --out results/bench`` starts ``mpiexec -n K`` (K = 1, 2) on itself
with ``--worker`` and writes ``mpi.md``: Counting ``convolutional`` training throughput (images/s,
synthetic 1000x1000 images, global batch 8) and Friendly S iterations/s (synthetic 784-pixel
images, global batch 20, the thesis's), one BLAS thread per rank, the ``naive`` communicator, side
by side. Each figure is the best of ``--repeats`` timed blocks after a warm-up, so a busy machine
lowers it less; the load average (``uptime``) is written beside the figures.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = {
    # name: (global batch, timed iterations per block)
    'counting-convolutional': (8, 2),
    'friendly-S': (20, 200),
}


def build(case):
    import numpy
    import chainer
    numpy.random.seed(0)
    rng = numpy.random.RandomState(1)
    if case == 'counting-convolutional':
        from Counting import models
        model = models.CountingLoss(models.build_counter('convolutional', 'relu', n_types=2))
        optimizer = chainer.optimizers.SGD(lr=0.01)
        x = rng.uniform(0, 1, (CASES[case][0], 3, 1000, 1000)).astype(numpy.float32)
        t = rng.randint(0, 5, (CASES[case][0], 2)).astype(numpy.float32)
    else:
        from Friendly import models
        from Friendly.optimizers import FastMomentumSGD
        model = models.FriendlyClassifier(models.FC100('S'))
        optimizer = FastMomentumSGD(lr=0.002, momentum=0.85)
        x = rng.uniform(0, 1, (CASES[case][0], 784)).astype(numpy.float32)
        t = rng.randint(0, 10, CASES[case][0]).astype(numpy.int32)
    optimizer.setup(model)
    return model, optimizer, x, t


def worker(case, repeats):
    from lenses_common import compat  # noqa: F401  (before chainer)
    import chainer
    import chainermn
    from mpi4py import MPI
    from lenses_common import distributed
    comm = chainermn.create_communicator('naive', MPI.COMM_WORLD)
    dist = distributed.Distributed(comm, 'naive')
    model, optimizer, x, t = build(case)
    optimizer = dist.optimizer(optimizer)
    part = dist.shard(chainer.datasets.TupleDataset(x, t))
    xs, ts = chainer.dataset.concat_examples(part[:])
    batch, iterations = CASES[case]
    optimizer.update(model, xs, ts)       # warm-up (and the initial broadcast)
    best = None
    for _ in range(repeats):
        comm.mpi_comm.barrier()
        start = time.perf_counter()
        for _ in range(iterations):
            optimizer.update(model, xs, ts)
        comm.mpi_comm.barrier()
        seconds = (time.perf_counter() - start) / iterations
        best = seconds if best is None else min(best, seconds)
    if comm.rank == 0:
        n_params = sum(p.size for p in model.params())
        print(json.dumps({'case': case, 'k': comm.size, 'seconds_per_iteration': best,
                          'images_per_second': batch / best, 'iterations_per_second': 1 / best,
                          'parameters': int(n_params)}))


def run(case, k, repeats):
    env = dict(os.environ, OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    mpiexec = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    command = [mpiexec, '-n', str(k), sys.executable, os.path.abspath(__file__), '--worker',
               case, '--repeats', str(repeats)]
    out = subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE,
                         text=True, timeout=1200).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def uptime():
    try:
        return subprocess.run(['uptime'], stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        return 'unknown'


def main(argv=None):
    p = argparse.ArgumentParser(prog='python tools/bench_mpi.py',
                                description=__doc__.splitlines()[0])
    p.add_argument('--out', default='results/bench', help='folder for mpi.md')
    p.add_argument('--repeats', type=int, default=3, help='timed blocks per figure')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.repeats)
    from lenses_common.runfolder import atomic_write_text
    load_before = uptime()
    rows = {case: {k: run(case, k, args.repeats) for k in (1, 2)} for case in CASES}
    load_after = uptime()
    lines = ['# ChainerMN data-parallel throughput (`make bench-mpi`)', '',
             'Command: `{} tools/bench_mpi.py --out {} --repeats {}`; `naive` communicator, '
             'OPENBLAS_NUM_THREADS=1 per rank, synthetic data, seed 0; best of {} timed blocks '
             'after one warm-up update.'.format(os.path.relpath(sys.executable, ROOT), args.out,
                                                args.repeats, args.repeats), '',
             'CPU: {} ({} logical CPUs); Python {}.'.format(cpu_model(), os.cpu_count(),
                                                           platform.python_version()),
             '', 'Load before: `{}`  '.format(load_before), 'Load after: `{}`'.format(load_after),
             '', '| benchmark | global batch | parameters | K = 1 | K = 2 | speed-up |',
             '|---|---|---|---|---|---|']
    for case, by_k in rows.items():
        unit = 'images_per_second' if case.startswith('counting') else 'iterations_per_second'
        label = 'images/s' if unit == 'images_per_second' else 'iterations/s'
        one, two = by_k[1][unit], by_k[2][unit]
        lines.append('| {} | {} | {:,} | {:.3g} {} | {:.3g} {} | {:.2f}x |'.format(
            case, CASES[case][0], by_k[1]['parameters'], one, label, two, label, two / one))
    lines += ['', 'Seconds per iteration: ' + ', '.join(
        '{} K={}: {:.4g}'.format(case, k, r['seconds_per_iteration'])
        for case, by_k in rows.items() for k, r in by_k.items()), '']
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'mpi.md')
    atomic_write_text(path, '\n'.join(lines))
    print('\n'.join(lines))
    print('wrote {}'.format(path))
    return 0


if __name__ == '__main__':
    sys.exit(main())
