import argparse
import csv
import io
import os
import shutil
import subprocess
import sys

import pytest

from lenses_common import sweep

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPI_TIMEOUT = 1200   # seconds: a hung rank fails the test instead of hanging CI


def test_mean_std_is_the_sample_standard_deviation():
    assert sweep.mean_std([]) == (None, None, 0)
    assert sweep.mean_std(['', None, '2.5']) == (2.5, None, 1)
    mean, std, n = sweep.mean_std(['1', 2, 6.0])
    assert (mean, n) == (3.0, 3)
    assert abs(std - ((4 + 1 + 9) / 2) ** 0.5) < 1e-12   # n - 1 in the denominator
    assert sweep.format_mean_std([1, 2, 6]) == '3.00 ± 2.65'
    assert sweep.format_mean_std([0.5], '{:.3f}') == '0.500'
    assert sweep.format_mean_std([None]) == '-'


def test_preset_options_and_argv():
    entries = {'*': {'epoch': 2, 'train_subset': 1000}, 'PD': {'epoch': 1}, 'S': {'lr': 0.1}}
    assert sweep.preset_options(entries, 'PD') == {'epoch': 1, 'train_subset': 1000}
    assert sweep.preset_options(entries, 'RS') == {'epoch': 2, 'train_subset': 1000}
    assert sweep.preset_options(entries, 'source', 'S')['lr'] == 0.1
    assert sweep.preset_options({'S': {'a': 1}}, 'S') == {'a': 1}
    assert sweep.options_argv({'train_subset': 60, 'stabilize': True, 'pd': False,
                               'x': None}) == ['--stabilize', '--train-subset', '60']


def _parse(argv):
    parser = argparse.ArgumentParser(prog='p')
    sweep.add_sweep_arguments(parser, 'seed')
    return sweep.check_sweep_args(parser, parser.parse_args(argv), max_seed=10)


def test_seeds(capsys):
    assert _parse([]) == [0]
    assert _parse(['--seed', '3']) == [3]
    assert _parse(['--seeds', '2, 0,1']) == [2, 0, 1]
    for argv, message in ((['--seeds', '11'], '0..10'), (['--seeds', ','], 'no seed'),
                          (['--seed', '-1'], '--seed must be')):
        with pytest.raises(SystemExit) as info:
            _parse(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert sweep.seed_root('r', 3, [3]) == 'r'
    assert sweep.seed_root('r', 3, [1, 3]) == os.path.join('r', 'seed-3')


def test_run_jobs_runs_every_job_and_reports_failures(tmp_path):
    logged = []
    jobs = [('ok', 'lenses_common.seeding', [], str(tmp_path / 'ok.log')),
            ('bad', 'no_such_module_here', [], str(tmp_path / 'logs' / 'bad.log'))]
    with sweep.make_executor('process', 2) as executor:
        done = sweep.run_jobs(executor, jobs, logged.append)
    assert done['ok'][0] == 0 and done['bad'][0] == 1
    assert any(line.startswith('bad: FAILED (exit status 1') for line in logged)
    assert 'No module named no_such_module_here' in sweep.last_line(str(tmp_path / 'logs' /
                                                                         'bad.log'))


def test_results_csv():
    text = sweep.results_csv([{'seed': 0, 'a': '1.00'}, {'seed': 1, 'b': 'x'}], ['seed', 'a', 'b'])
    assert list(csv.reader(io.StringIO(text))) == [['seed', 'a', 'b'], ['0', '1.00', ''],
                                                   ['1', '', 'x']]


# --- under mpiexec ---------------------------------------------------------------------------

def _mpiexec():
    path = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    path = path if os.path.exists(path) else shutil.which('mpiexec')
    if path is None:
        pytest.skip('no mpiexec (make install-mpi)')
    pytest.importorskip('mpi4py', reason='no mpi4py (make install-mpi)')
    return path


def _env(mnist=None):
    env = dict(os.environ, OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
    if mnist:
        env['MNIST_DIR'] = mnist
    return env


@pytest.mark.mpi
def test_executor_mpi_without_mpi4py_futures_stops_every_rank(tmp_path):
    done = subprocess.run([_mpiexec(), '-n', '2', sys.executable, '-m', 'Friendly.run_all',
                           '--executor', 'mpi', '--out', str(tmp_path)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and all('not started through mpi4py.futures' in x for x in lines)
    assert not (tmp_path / 'friendly').exists()


@pytest.mark.mpi
@pytest.mark.slow
def test_mpi_workers_write_the_serial_results(mnist_dir, tmp_path):
    """On two networks: mpi4py.futures workers and the serial run agree."""
    base = [sys.executable, '-m', 'Friendly.run_all', '--preset', 'smoke', '--networks', 'S,RS',
            '--seeds', '0,1']
    subprocess.run(base + ['--out', str(tmp_path / 'serial')], cwd=REPO, env=_env(mnist_dir),
                   check=True, capture_output=True, timeout=MPI_TIMEOUT)
    mpi = subprocess.run([_mpiexec(), '-n', '3', sys.executable, '-m', 'mpi4py.futures', '-m'] +
                         base[2:] + ['--executor', 'mpi', '--out', str(tmp_path / 'mpi')],
                         cwd=REPO, env=_env(mnist_dir), capture_output=True, text=True,
                         timeout=MPI_TIMEOUT)
    assert mpi.returncode == 0, mpi.stdout[-2000:] + mpi.stderr[-2000:]
    serial = (tmp_path / 'serial' / 'friendly' / 'results.csv').read_text()
    assert (tmp_path / 'mpi' / 'friendly' / 'results.csv').read_text() == serial
    assert len(serial.splitlines()) == 1 + 2 * 2
