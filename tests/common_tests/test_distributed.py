"""ChainerMN data-parallel training: lenses_common.distributed and its hooks.

Tests marked ``mpi`` start ``mpiexec -n 2`` in a subprocess with a timeout (a hung rank fails the
test); they are skipped where the virtualenv has no ``mpiexec`` or mpi4py.
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.links
from lenses_common import distributed

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, 'mpi_update_worker.py')
MPIEXEC = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
needs_mpi = pytest.mark.skipif(
    not os.path.exists(MPIEXEC) or importlib.util.find_spec('mpi4py') is None,
    reason='needs mpiexec and mpi4py in the virtualenv (make install-mpi)')


def load_worker():
    spec = importlib.util.spec_from_file_location('mpi_update_worker', WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mpiexec(args, n=2, timeout=240):
    """Run ``mpiexec -n n python ARGS``; a run past ``timeout`` is killed and fails the test."""
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS='1')
    for name in distributed.LAUNCHER_VARIABLES:
        env.pop(name, None)
    proc = subprocess.Popen([MPIEXEC, '-n', str(n), sys.executable] + list(args), cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail('mpiexec -n {} {} hung for {} s'.format(n, ' '.join(args), timeout))
    return proc.returncode, out, err


def mpi_update(case, tmp_path):
    """{rank: parameters after one update} with K = 2."""
    out = tmp_path / case
    rc, _, err = mpiexec([WORKER, case, str(out), '--mpi'])
    assert rc == 0, err
    return {r: dict(numpy.load('{}.rank{}.npz'.format(out, r), allow_pickle=False))
            for r in range(2)}


def max_relative_difference(a, b, before):
    """Largest |a - b| over the largest update |a - before| (one number per network)."""
    scale = max(float(numpy.abs(a[k] - before[k]).max()) for k in a
                if before[k] is not None)   # a lazily initialised link has no weights before
    assert scale > 1e-3, 'the update is too small to compare'
    return max(float(numpy.abs(a[k] - b[k]).max()) for k in a) / scale


def initial(worker, case):
    model, _ = worker.build(case)
    return {name: None if p.array is None else numpy.array(p.array)
            for name, p in model.namedparams()}


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpi
@pytest.mark.parametrize('case', ['S', 'GMR', 'GMRES', 'counter'])
def test_one_update_with_two_ranks_equals_one_process(case, tmp_path):
    worker = load_worker()
    ranks = mpi_update(case, tmp_path)
    single = worker.update(case)
    before = initial(worker, case)
    for name in single:   # both ranks hold the same bits
        numpy.testing.assert_array_equal(ranks[0][name], ranks[1][name])
    # The same update as one process on the whole batch, to float32 rounding (sums in another
    # order): relative to the size of the update.
    assert max_relative_difference(ranks[0], single, before) < 1e-4


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpi
@pytest.mark.parametrize('case', ['RS', 'PD', 'counter-brn', 'GMR-per-rank-norm'])
def test_batch_renorm_statistics_are_per_rank(case, tmp_path):
    """With Batch Renormalization (RS, PD with its chunked layer, the BRN counter) the ranks stay
    identical, but each normalises by its own half of the batch: not the one-process update.
    So is GMR's penalty taken per rank (the norm of each half's input gradient) instead of over
    the whole batch as Friendly.train does."""
    worker = load_worker()
    ranks = mpi_update(case, tmp_path)
    single = worker.update(case)
    before = initial(worker, case)
    for name in single:
        numpy.testing.assert_array_equal(ranks[0][name], ranks[1][name])
        assert numpy.isfinite(ranks[0][name]).all()
    assert max_relative_difference(ranks[0], single, before) > 1e-3


def test_single_process_distributed_changes_nothing():
    worker = load_worker()
    dist = distributed.Distributed()
    assert not dist.enabled and dist.size == 1 and dist.local(20) == 20
    data = list(range(7))
    assert dist.shard(data) is data
    assert dist.gradient_norm() is None
    settings = dist.record({'communicator': None, 'a': 1})
    assert settings == {'a': 1}
    # the GMR loss with the default norm and without: the same update
    a = worker.update('GMR')
    b = worker.update('GMR', dist)
    for name in a:
        numpy.testing.assert_array_equal(a[name], b[name])


def test_launcher_detection():
    assert not distributed.launched_by_mpi({'HOME': '/'})
    assert distributed.launched_by_mpi({'PMI_RANK': '0'})
    assert distributed.launched_by_mpi({'OMPI_COMM_WORLD_RANK': '1'})


def friendly_args(tmp_path, *extra):
    return ['--variant', 'S', '--epoch', '1', '--train-subset', '40', '--val-subset', '20',
            '--out', str(tmp_path / 'run'), '--no-progress'] + list(extra)


def run_friendly(argv, capsys):
    from Friendly import train
    with pytest.raises(SystemExit) as e:
        train.main(argv)
    err = capsys.readouterr().err
    return e.value.code, err


def test_communicator_outside_mpiexec_is_refused(tmp_path, capsys, monkeypatch):
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    code, err = run_friendly(friendly_args(tmp_path, '--communicator', 'naive'), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert '--communicator naive' in err and 'mpiexec' in err
    assert not (tmp_path / 'run').exists()


def test_communicator_without_mpi4py_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'mpi4py', None)   # find_spec then reports it missing
    monkeypatch.setenv('PMI_RANK', '0')                  # as if started by mpiexec
    code, err = run_friendly(friendly_args(tmp_path, '--communicator', 'naive'), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'mpi4py is not installed' in err


@pytest.mark.parametrize('name', ['pure_nccl', 'flat'])
def test_gpu_communicator_without_a_gpu_is_refused(name, tmp_path, capsys, monkeypatch):
    from lenses_common.device import gpu_available
    if gpu_available():
        pytest.skip('a GPU is visible')
    monkeypatch.setenv('PMI_RANK', '0')
    code, err = run_friendly(friendly_args(tmp_path, '--communicator', name), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert '{} needs CuPy and a GPU'.format(name) in err


def test_counting_outside_mpiexec_is_refused(tmp_path, capsys, monkeypatch):
    from Counting import train
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as e:
        train.main(['--train', str(tmp_path), '--out', str(tmp_path / 'run'),
                    '--communicator', 'naive'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and 'mpiexec' in err


@pytest.mark.mpi
@needs_mpi
def test_batch_size_that_the_ranks_do_not_divide_is_refused(tmp_path):
    rc, _, err = mpiexec(['-m', 'Friendly.train'] + friendly_args(
        tmp_path, '--batchsize', '21', '--communicator', 'naive'), timeout=120)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert '--batchsize 21' in err and '2 MPI processes' in err


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpi
def test_a_rank_failing_alone_aborts_the_job(tmp_path):
    script = tmp_path / 'fail.py'
    script.write_text(
        'import argparse, sys\n'
        'from lenses_common import distributed\n'
        'p = argparse.ArgumentParser()\n'
        'distributed.add_communicator_argument(p)\n'
        'p.add_argument("--batchsize", type=int, default=2)\n'
        'def main():\n'
        '    d = distributed.from_args(p.parse_args(["--communicator", "naive"]), p)\n'
        '    if d.rank == 1:\n'
        '        raise RuntimeError("rank 1 alone")\n'
        '    d.comm.mpi_comm.barrier()   # rank 0 would wait here for ever\n'
        'distributed.guarded(main)\n')
    rc, _, err = mpiexec([str(script)], timeout=120)
    assert rc != 0
    assert 'rank 1 failed alone' in err


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpi
def test_friendly_train_under_mpiexec(tmp_path):
    """One run folder written by rank 0, comm_size 2 in its settings."""
    if not os.environ.get('MNIST_DIR'):
        pytest.skip('MNIST_DIR is not set')
    rc, out, err = mpiexec(['-m', 'Friendly.train', '--variant', 'S', '--epoch', '1',
                            '--train-subset', '2000', '--val-subset', '500',
                            '--communicator', 'naive', '--out', str(tmp_path / 'OUT'),
                            '--no-progress'], timeout=400)
    assert rc == 0, err
    assert os.listdir(tmp_path) == ['OUT']
    assert (tmp_path / 'OUT' / 'model_final.npz').exists()
    settings = json.loads((tmp_path / 'OUT' / 'settings.json').read_text())
    assert settings['comm_size'] == 2 and settings['communicator'] == 'naive'
    assert settings['batchsize'] == 20
    assert out.count('saved ') == 1       # rank 1 prints nothing


def friendly_small(out, *extra):
    return ['-m', 'Friendly.train', '--variant', 'S', '--train-subset', '400', '--val-subset',
            '100', '--no-progress', '--out', str(out)] + list(extra)


def same_weights(a, b):
    a, b = numpy.load(a, allow_pickle=False), numpy.load(b, allow_pickle=False)
    return sorted(a.files) == sorted(b.files) and all(
        numpy.array_equal(a[k], b[k]) for k in a.files)


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpi
def test_one_rank_with_a_communicator_is_the_plain_run(tmp_path):
    if not os.environ.get('MNIST_DIR'):
        pytest.skip('MNIST_DIR is not set')
    rc, _, err = mpiexec(friendly_small(tmp_path / 'k1', '--epoch', '1', '--communicator',
                                        'naive'), n=1)
    assert rc == 0, err
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS='1')
    subprocess.run([sys.executable] + friendly_small(tmp_path / 'plain', '--epoch', '1'),
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, timeout=300)
    assert same_weights(tmp_path / 'k1' / 'model_final.npz',
                        tmp_path / 'plain' / 'model_final.npz')
    assert json.loads((tmp_path / 'k1' / 'settings.json').read_text())['comm_size'] == 1
    assert 'comm_size' not in json.loads((tmp_path / 'plain' / 'settings.json').read_text())


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpi
def test_resume_under_two_ranks_continues_the_run(tmp_path):
    if not os.environ.get('MNIST_DIR'):
        pytest.skip('MNIST_DIR is not set')
    mn = ('--communicator', 'naive')
    for argv in (friendly_small(tmp_path / 'r', '--epoch', '1', *mn),
                 friendly_small(tmp_path / 'r', '--epoch', '2', '--resume', *mn),
                 friendly_small(tmp_path / 'u', '--epoch', '2', *mn)):
        rc, _, err = mpiexec(argv)
        assert rc == 0, err
    assert same_weights(tmp_path / 'r' / 'model_final.npz', tmp_path / 'u' / 'model_final.npz')


class _SecondOfTwo(distributed.Distributed):
    """Rank 1 of 2 without MPI: the second half of each dataset; the optimizer, evaluator and
    observation hooks only record that the scaffold called them."""

    enabled, size, rank = True, 2, 1

    def __init__(self):
        super().__init__(comm=None, name='naive')
        self.calls = []

    def shard(self, dataset):
        return chainer.datasets.SubDataset(dataset, len(dataset) // 2, len(dataset))

    def optimizer(self, optimizer):
        self.calls.append('optimizer')
        return optimizer

    def evaluator(self, evaluator):
        self.calls.append('evaluator')
        return evaluator

    def extend(self, trainer):
        self.calls.append('extend')


class _Fit(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.fc = chainer.links.Linear(1, 1)

    def forward(self, x, t):
        loss = chainer.functions.mean_squared_error(self.fc(x), t)
        chainer.report({'loss': loss}, self)
        return loss


def test_the_scaffold_seams_use_the_distributed(tmp_path, capsys):
    """TrainingScaffold(dist=...) on rank 1 of 2: writes nothing, trains on its half with half
    of each batch, calls the optimizer/evaluator/observation hooks, records comm_size, and fails
    a check with exit status 2 but without a line (rank 0 prints it)."""
    import argparse
    from chainer import training
    from lenses_common.training import TrainingScaffold
    dist = _SecondOfTwo()
    out = tmp_path / 'run'
    scaffold = TrainingScaffold(argparse.ArgumentParser(prog='p'), str(out), dist=dist)
    assert not scaffold.writer
    data = chainer.datasets.TupleDataset(numpy.arange(12, dtype=numpy.float32).reshape(12, 1),
                                         numpy.zeros((12, 1), numpy.float32))
    model = _Fit()
    optimizer = scaffold.setup_optimizer(chainer.optimizers.SGD(lr=0.01), model)
    train_iter = scaffold.train_iterator(data, 4, seed=0)
    assert train_iter.batch_size == 2 and len(train_iter.dataset) == 6
    assert min(float(x[0]) for x, _ in train_iter.dataset) == 6.0
    eval_iter = scaffold.eval_iterator(data, 6)
    assert eval_iter.batch_size == 3 and len(eval_iter.dataset) == 6
    trainer = scaffold.make_trainer(training.updaters.StandardUpdater(train_iter, optimizer),
                                    (1, 'epoch'), model)
    scaffold.add_evaluator(eval_iter, model, None)
    assert dist.calls == ['optimizer', 'extend', 'evaluator']
    assert os.path.abspath(trainer.out) != os.path.abspath(str(out))   # a temporary folder
    settings = {'communicator': 'naive', 'lr': 0.01}
    scaffold.open(settings, None, argv=['p'], header='header')
    assert settings == {'communicator': 'naive', 'comm_size': 2, 'lr': 0.01}
    assert scaffold.run() is None and trainer.updater.iteration == 3
    assert not out.exists() and capsys.readouterr().out == ''
    with pytest.raises(SystemExit) as e:
        scaffold.resolve_resume(str(tmp_path / 'missing'))
    assert e.value.code == 2 and capsys.readouterr().err == ''
