import csv
import json
import os
import shutil
import subprocess
import sys

import numpy
import pytest

from lenses_common import compat  # noqa: F401

from Friendly import models
from Friendly import run_all
from lenses_common import sweep
from Friendly import pipeline
from lenses_common import runfolder
from Friendly import train_args


def test_presets_cover_every_network():
    assert set(pipeline.PRESETS) == {'smoke', 'quick', 'thesis'}
    for preset in pipeline.PRESETS:
        for network in pipeline.NETWORKS:
            argv = pipeline.train_argv(network, pipeline.train_options(preset, network), 0,
                                      'runs/x', None, None)
            args = train_args.build_parser().parse_args(argv)   # every option is a real flag
            assert args.variant == ('S' if network == pipeline.SOURCE else network)


def test_thesis_preset_is_the_full_protocol():
    for network in pipeline.NETWORKS:
        expected = ({'stabilize': True} if network == 'GMRES' else
                    {'pd_form': 'pairs'} if network == 'PD' else {})
        assert pipeline.train_options('thesis', network) == expected
    pd = pipeline.train_argv('PD', pipeline.train_options('thesis', 'PD'), 0, 'x', None, None)
    assert train_args.build_parser().parse_args(pd).pd_form == 'pairs'
    argv = pipeline.train_argv('GMRES', pipeline.train_options('thesis', 'GMRES'), 0, 'x', None,
                              None)
    assert train_args.build_parser().parse_args(argv).stabilize
    assert '--stabilize' in argv and 'True' not in argv
    assert pipeline.PRESETS['thesis']['evaluate'] == {}
    args = train_args.build_parser().parse_args(['--variant', 'PD', '--out', 'x'])
    assert (args.epoch, args.patience, args.batchsize, args.val_size) == (100, 20, 20, 4200)
    assert args.train_subset is None and args.val_subset is None


def test_quick_preset_trains_on_real_mnist_and_tests_on_all_images():
    assert pipeline.PRESETS['quick']['evaluate'] == {}
    for network in pipeline.NETWORKS:
        options = pipeline.train_options('quick', network)
        assert options['epoch'] >= 2
        if network != 'PD':
            assert 'train_subset' not in options
    assert pipeline.train_options('quick', 'PD')['train_subset'] >= 1000
    # the source network is trained like S
    assert pipeline.train_options('quick', pipeline.SOURCE) == pipeline.train_options('quick', 'S')


def _settings(out, variant='S', **changes):
    argv = pipeline.train_argv(variant, {'epoch': 2}, 0, str(out), None, None)
    settings = train_args.settings_from_args(train_args.build_parser().parse_args(argv))
    settings.update(changes)
    return settings


def test_run_state(tmp_path):
    run_dir = tmp_path / 'S'
    wanted = _settings(run_dir)
    assert pipeline.run_state(str(run_dir), wanted) == 'fresh'
    run_dir.mkdir()
    (run_dir / 'settings.json').write_text(json.dumps(wanted))
    assert pipeline.run_state(str(run_dir), wanted) == 'fresh'
    (run_dir / 'snapshot_epoch_1').write_text('')
    assert pipeline.run_state(str(run_dir), wanted) == 'resume'
    (run_dir / 'model_final.npz').write_text('')
    assert pipeline.run_state(str(run_dir), wanted) == 'done'
    # the device and MNIST folder do not make another network ...
    assert pipeline.run_state(str(run_dir), dict(wanted, device='@cupy:0',
                                                 mnist_dir='/else')) == 'done'
    # ... but any training setting does
    assert pipeline.run_state(str(run_dir), dict(wanted, epoch=3)) == 'other'
    assert pipeline.run_state(str(run_dir), dict(wanted, seed=1)) == 'other'
    (run_dir / 'settings.json').write_text('{broken')
    assert pipeline.run_state(str(run_dir), wanted) == 'other'


def test_move_aside(tmp_path):
    run_dir = tmp_path / 'PD'
    run_dir.mkdir()
    (run_dir / 'a').write_text('1')
    assert runfolder.move_aside(str(run_dir)) == str(run_dir) + '.old-1'
    run_dir.mkdir()
    assert runfolder.move_aside(str(run_dir)) == str(run_dir) + '.old-2'
    assert (tmp_path / 'PD.old-1' / 'a').read_text() == '1'
    assert not run_dir.exists()


def _error(capsys, argv):
    with pytest.raises(SystemExit) as info:
        run_all.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert 'Traceback' not in '\n'.join(err)
    return err[-1]


def test_bad_input(capsys, tmp_path):
    assert "unknown variant 'XYZ'" in _error(capsys, ['--networks', 'S,XYZ', '--out',
                                                      str(tmp_path)])
    assert '--eps' in _error(capsys, ['--eps', '256', '--out', str(tmp_path)])
    assert 'invalid choice' in _error(capsys, ['--preset', 'huge', '--out', str(tmp_path)])


@pytest.mark.slow
def test_pipeline_resumes_and_skips(mnist_dir, tmp_path, capsys):
    argv = ['--preset', 'smoke', '--networks', 'S', '--out', str(tmp_path), '--mnist-dir',
            mnist_dir]
    results = run_all.main(argv)
    assert set(results) == {'S'}
    runs = tmp_path / 'friendly' / 'runs'
    source = json.loads((runs / 'source' / 'settings.json').read_text())
    assert source['variant'] == 'S' and source['seed'] == pipeline.SOURCE_SEED_OFFSET
    capsys.readouterr()
    # a finished run is skipped; an interrupted one (no final model) resumes from its snapshot
    os.remove(runs / 'S' / 'model_final.npz')
    again = run_all.main(argv)
    out = capsys.readouterr().out
    assert '== source: final model with these settings exists, skipped' in out
    assert '--resume' in out
    log = (tmp_path / 'friendly' / 'logs' / 'S.log').read_text()
    assert log.count('-m Friendly.train') == 2 and 'resuming from' in log
    assert again['S'] == results['S']


def test_pd_at_thesis_scale_is_never_skipped_silently():
    assert run_all.thesis_pd_note('quick', ['PD'], True, False) == ''
    assert run_all.thesis_pd_note('thesis', ['S', 'RS'], True, False) == ''
    skipped = run_all.thesis_pd_note('thesis', ['S', 'PD'], True, False)
    assert 'GPU job' in skipped and 'hours' in skipped and 'skipped' in skipped
    assert '--pd-on-cpu' in skipped
    assert 'training it here' in run_all.thesis_pd_note('thesis', ['PD'], True, True)
    assert 'training it on @cupy:0' in run_all.thesis_pd_note('thesis', ['PD'], False, False,
                                                              '@cupy:0')


def test_training_process_env_and_failure(tmp_path, monkeypatch):
    monkeypatch.setenv('OPENBLAS_NUM_THREADS', '2')
    monkeypatch.setenv('PMI_RANK', '3')   # as under mpiexec: a job is no MPI rank
    env = sweep.child_env()
    assert env['OPENBLAS_NUM_THREADS'] == env['OMP_NUM_THREADS'] == '1'
    assert 'PMI_RANK' not in env
    root = os.path.dirname(os.path.dirname(os.path.abspath(run_all.__file__)))
    assert env['PYTHONPATH'].split(os.pathsep)[0] == root
    log = tmp_path / 'ZZ.log'
    status, seconds, cpu = sweep.run_command(
        'Friendly.train', ['--variant', 'ZZ', '--out', str(tmp_path / 'r')], str(log))
    assert status == 2 and seconds > 0 and (cpu is None or cpu > 0)
    assert "unknown variant 'ZZ'" in sweep.last_line(str(log))


def test_jobs_must_be_positive(capsys, tmp_path):
    assert '--jobs' in _error(capsys, ['--jobs', '0', '--out', str(tmp_path)])


def test_bad_seeds_and_executor(capsys, tmp_path):
    out = ['--out', str(tmp_path)]
    assert '--seeds: comma-separated integers' in _error(capsys, ['--seeds', '0,x'] + out)
    assert 'repeats a seed' in _error(capsys, ['--seeds', '1,1'] + out)
    assert '--seeds must be in' in _error(capsys, ['--seeds', '0,-1'] + out)
    assert 'not allowed with argument' in _error(capsys, ['--seed', '1', '--seeds', '2'] + out)
    assert 'invalid choice' in _error(capsys, ['--executor', 'slurm'] + out)
    assert '--jobs' in _error(capsys, ['--executor', 'mpi', '--jobs', '2'] + out)
    # not started through mpi4py.futures (or mpi4py missing): one line, nothing trained
    line = _error(capsys, ['--executor', 'mpi'] + out)
    assert line.startswith('run_all') or '--executor mpi: ' in line
    assert ('not started through mpi4py.futures' in line or 'mpi4py is not installed' in line)
    assert not (tmp_path / 'friendly').exists()


def test_executor_mpi_outside_mpi4py_futures_exits_in_a_fresh_process(tmp_path):
    env = dict(sweep.child_env(), MNIST_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, '-m', 'Friendly.run_all', '--executor', 'mpi',
                           '--out', str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert '--executor mpi: ' in done.stderr


def _rows(path):
    return list(csv.DictReader(open(str(path))))


@pytest.mark.slow
def test_seed_sweep_parallel_equals_serial_and_resumes_per_job(mnist_dir, tmp_path, capsys):
    base = ['--preset', 'smoke', '--networks', 'S,GMRES', '--seeds', '0,1', '--mnist-dir',
            mnist_dir]
    serial = run_all.main(base + ['--out', str(tmp_path / 'serial')])
    parallel = run_all.main(base + ['--out', str(tmp_path / 'parallel'), '--jobs', '2'])
    assert sorted(serial) == [0, 1] and serial == parallel
    top = tmp_path / 'parallel' / 'friendly'
    rows = _rows(top / 'results.csv')
    assert rows == _rows(tmp_path / 'serial' / 'friendly' / 'results.csv')
    assert [(r['seed'], r['network']) for r in rows] == [
        ('0', 'S'), ('0', 'GMRES'), ('1', 'S'), ('1', 'GMRES')]
    for r in rows:   # every column of each seed's own table, then where the row comes from
        seed_top = top / 'seed-{}'.format(r['seed'])
        seed_rows = _rows(seed_top / 'table.csv')
        mine = [x for x in seed_rows if x['network'] == r['network']][0]
        assert {k: v for k, v in r.items() if k.endswith('_pct')} == {
            k: v for k, v in mine.items() if k.endswith('_pct')}
        assert r['test_images'] == str(json.loads(
            (seed_top / 'results.json').read_text())['test_images'])
        env = json.loads((seed_top / 'runs' / r['network'] / 'settings.json').read_text())[
            'environment']
        assert r['trained_on'].startswith(env['cpu_model'])
        assert 'logical CPUs, BLAS ' in r['trained_on']
    for seed in (0, 1):
        source = json.loads((top / 'seed-{}'.format(seed) / 'runs' / 'source' /
                             'settings.json').read_text())
        assert source['seed'] == seed + pipeline.SOURCE_SEED_OFFSET
    # the seeds differ, and table.md shows their mean and sample standard deviation
    clean = [float(r['clean_pct']) for r in rows if r['network'] == 'S']
    assert clean[0] != clean[1]
    table = (top / 'table.md').read_text()
    mean, std, _ = sweep.mean_std(clean)
    assert '| S | {:.2f} ± {:.2f} |'.format(mean, std) in table and table.count(' | 2 |') == 2
    # stopped half-way: one network of seed 1 without its final model, seed 0's source gone;
    # the next call trains exactly those two
    os.remove(top / 'seed-1' / 'runs' / 'GMRES' / 'model_final.npz')
    shutil.rmtree(top / 'seed-0' / 'runs' / 'source')
    capsys.readouterr()
    again = run_all.main(base + ['--out', str(tmp_path / 'parallel'), '--jobs', '2'])
    out = capsys.readouterr().out
    trained = sorted(line.split(':')[0] for line in out.splitlines()
                     if 'python -m Friendly.train' in line)
    assert trained == ['== seed-0/source', '== seed-1/GMRES']
    assert out.count('final model with these settings exists, skipped') == 4
    assert again == serial and _rows(top / 'results.csv') == rows


@pytest.mark.slow
def test_parallel_jobs_give_the_serial_results(mnist_dir, tmp_path, capsys):
    base = ['--preset', 'smoke', '--networks', 'S,RS,GMRES', '--mnist-dir', mnist_dir]
    serial = run_all.main(base + ['--out', str(tmp_path / 'serial'), '--jobs', '1'])
    parallel = run_all.main(base + ['--out', str(tmp_path / 'parallel'), '--jobs', '3'])
    assert serial == parallel
    out = capsys.readouterr().out
    for network in ('S', 'RS', 'GMRES', 'source'):
        assert '== {}: done in'.format(network) in out
        a = numpy.load(str(tmp_path / 'serial' / 'friendly' / 'runs' / network /
                           'model_final.npz'))
        b = numpy.load(str(tmp_path / 'parallel' / 'friendly' / 'runs' / network /
                           'model_final.npz'))
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            numpy.testing.assert_array_equal(a[key], b[key])
    timing = json.loads((tmp_path / 'parallel' / 'friendly' / 'run_all.json').read_text())
    assert timing['jobs'] == 3 and timing['failed'] == {}
    assert set(k for k in timing['seconds_this_call'] if k.startswith('train_') and
               'cpu' not in k) == {'train_S', 'train_RS', 'train_GMRES', 'train_source'}


@pytest.mark.slow
def test_smoke_preset_writes_six_row_table(mnist_dir, tmp_path):
    run_all.main(['--preset', 'smoke', '--out', str(tmp_path), '--mnist-dir', mnist_dir])
    root = tmp_path / 'friendly'
    rows = list(csv.DictReader((root / 'table.csv').open()))
    assert [r['network'] for r in rows] == list(models.VARIANTS)
    for r in rows:
        for key in ('clean_pct', 'fgsm_white_pct', 'fgsm_black_pct'):
            assert 0 <= float(r[key]) <= 100
    text = (root / 'table.md').read_text()
    assert '| network | clean | white-box FGSM | black-box FGSM |' in text
    assert (root / 'accuracy_bars.png').exists()
    assert json.loads((root / 'run_all.json').read_text())['preset'] == 'smoke'
