import csv
import json
import os

import numpy
import pytest

from lenses_common import compat  # noqa: F401

from Friendly import models
from Friendly import run_all
from Friendly import train


def test_presets_cover_every_network():
    assert set(run_all.PRESETS) == {'smoke', 'quick', 'thesis'}
    for preset in run_all.PRESETS:
        for network in run_all.NETWORKS:
            argv = run_all.train_argv(network, run_all.train_options(preset, network), 0,
                                      '/tmp/x', None, None)
            args = train.build_parser().parse_args(argv)   # every option is a real flag
            assert args.variant == ('S' if network == run_all.SOURCE else network)


def test_thesis_preset_is_the_full_protocol():
    for network in run_all.NETWORKS:
        expected = {'stabilize': True} if network == 'GMRES' else {}
        assert run_all.train_options('thesis', network) == expected
    argv = run_all.train_argv('GMRES', run_all.train_options('thesis', 'GMRES'), 0, 'x', None,
                              None)
    assert train.build_parser().parse_args(argv).stabilize
    assert '--stabilize' in argv and 'True' not in argv
    assert run_all.PRESETS['thesis']['evaluate'] == {}
    args = train.build_parser().parse_args(['--variant', 'PD', '--out', 'x'])
    assert (args.epoch, args.patience, args.batchsize, args.val_size) == (100, 20, 20, 4200)
    assert args.train_subset is None and args.val_subset is None


def test_quick_preset_trains_on_real_mnist_and_tests_on_all_images():
    assert run_all.PRESETS['quick']['evaluate'] == {}
    for network in run_all.NETWORKS:
        options = run_all.train_options('quick', network)
        assert options['epoch'] >= 2
        if network != 'PD':
            assert 'train_subset' not in options
    assert run_all.train_options('quick', 'PD')['train_subset'] >= 1000
    # the source network is trained like S
    assert run_all.train_options('quick', run_all.SOURCE) == run_all.train_options('quick', 'S')


def _settings(out, variant='S', **changes):
    argv = run_all.train_argv(variant, {'epoch': 2}, 0, str(out), None, None)
    settings = train.settings_from_args(train.build_parser().parse_args(argv))
    settings.update(changes)
    return settings


def test_run_state(tmp_path):
    run_dir = tmp_path / 'S'
    wanted = _settings(run_dir)
    assert run_all.run_state(str(run_dir), wanted) == 'fresh'
    run_dir.mkdir()
    (run_dir / 'settings.json').write_text(json.dumps(wanted))
    assert run_all.run_state(str(run_dir), wanted) == 'fresh'
    (run_dir / 'snapshot_epoch_1').write_text('')
    assert run_all.run_state(str(run_dir), wanted) == 'resume'
    (run_dir / 'model_final.npz').write_text('')
    assert run_all.run_state(str(run_dir), wanted) == 'done'
    # the device and MNIST folder do not make another network ...
    assert run_all.run_state(str(run_dir), dict(wanted, device='@cupy:0',
                                                 mnist_dir='/else')) == 'done'
    # ... but any training setting does
    assert run_all.run_state(str(run_dir), dict(wanted, epoch=3)) == 'other'
    assert run_all.run_state(str(run_dir), dict(wanted, seed=1)) == 'other'
    (run_dir / 'settings.json').write_text('{broken')
    assert run_all.run_state(str(run_dir), wanted) == 'other'


def test_move_aside(tmp_path):
    run_dir = tmp_path / 'PD'
    run_dir.mkdir()
    (run_dir / 'a').write_text('1')
    assert run_all.move_aside(str(run_dir)) == str(run_dir) + '.old-1'
    run_dir.mkdir()
    assert run_all.move_aside(str(run_dir)) == str(run_dir) + '.old-2'
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
    assert source['variant'] == 'S' and source['seed'] == run_all.SOURCE_SEED_OFFSET
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
    env = run_all.child_env()
    assert env['OPENBLAS_NUM_THREADS'] == env['OMP_NUM_THREADS'] == '1'
    root = os.path.dirname(os.path.dirname(os.path.abspath(run_all.__file__)))
    assert env['PYTHONPATH'].split(os.pathsep)[0] == root
    log = tmp_path / 'ZZ.log'
    status, seconds, cpu = run_all.run_training(['--variant', 'ZZ', '--out', str(tmp_path / 'r')],
                                                str(log))
    assert status == 2 and seconds > 0 and (cpu is None or cpu > 0)
    assert "unknown variant 'ZZ'" in run_all.last_line(str(log))


def test_jobs_must_be_positive(capsys, tmp_path):
    assert '--jobs' in _error(capsys, ['--jobs', '0', '--out', str(tmp_path)])


@pytest.mark.slow
def test_parallel_jobs_give_the_serial_results(mnist_dir, tmp_path, capsys):
    base = ['--preset', 'smoke', '--networks', 'S,RS,GMRES', '--mnist-dir', mnist_dir]
    serial = run_all.main(base + ['--out', str(tmp_path / 'serial'), '--jobs', '1'])
    parallel = run_all.main(base + ['--out', str(tmp_path / 'parallel'), '--jobs', '3'])
    assert serial == parallel
    out = capsys.readouterr().out
    for network in ('S', 'RS', 'GMRES', 'source'):
        assert '== {}: trained in'.format(network) in out
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
