import csv
import json
import os

import pytest

from lenses_common import compat  # noqa: F401

from Counting import presets, run_all
from lenses_common import sweep


def test_presets_are_complete():
    for preset in ('smoke', 'quick', 'thesis', 'gpu-lease', 'gpu-lease-smoke'):
        assert preset in presets.DATASETS and preset in presets.TRAINING
        assert preset in presets.N_PICTURES and preset in presets.N_SCORED
        assert preset in presets.PRESET_COUNTERS
    # The thesis preset is the faithful one: plain SGD, momentum for the sigmoid counter.
    t = presets.TRAINING['thesis']['*']
    assert (t['arch'], t['optimizer'], t['lr'], t['batchsize'], t['epoch']) == (
        'convolutionallarge', 'sgd', 0.07, 20, 100)
    _, sig = run_all.train_argv('thesis', 'sigmoid_brn', 'sigmoid', True, 'tr', 'te', 'r', 0,
                                None)
    _, sp = run_all.train_argv('thesis', 'softplus', 'softplus', False, 'tr', 'te', 'r', 0, None)
    assert sig['optimizer'] == 'momentum' and sp['optimizer'] == 'sgd'
    # 5,000 images of 1000 x 1000 do not fit in memory: the thesis preset streams them.
    argv, _ = run_all.train_argv('thesis', 'relu', 'relu', False, 'tr', 'te', 'r', 0, None)
    assert '--stream' in argv
    argv, _ = run_all.train_argv('quick', 'relu', 'relu', False, 'tr', 'te', 'r', 0, None)
    assert '--stream' not in argv
    assert presets.DATASETS['thesis']['image_size'] == (1000, 1000)
    assert [c[1] for c in presets.COUNTERS] == ['relu', 'softplus', 'sigmoid']
    assert [c[2] for c in presets.COUNTERS] == [False, False, True]
    # quick trains the thesis's small network (SoftPlus, sigmoid + BRN) beside edgepool
    names = [c[0] for c in presets.PRESET_COUNTERS['quick']]
    assert names == ['relu', 'softplus', 'sigmoid_brn', 'conv_softplus', 'conv_sigmoid_brn']
    _, t = run_all.train_argv('quick', 'conv_sigmoid_brn', 'sigmoid', True, 'tr', 'te', 'r', 0,
                              None)
    assert t['arch'] == 'convolutional'
    _, t = run_all.train_argv('quick', 'sigmoid_brn', 'sigmoid', True, 'tr', 'te', 'r', 0, None)
    assert t['arch'] == 'edgepool'
    # gpu-lease: the thesis's data, network and training, fewer images and epochs
    lease, thesis = presets.DATASETS['gpu-lease'], presets.DATASETS['thesis']
    for key in ('image_size', 'shape_limit', 'scale', 'shape_scaling'):
        assert lease[key] == thesis[key]
    assert lease['n_train'] < thesis['n_train']
    t = presets.TRAINING['gpu-lease']['*']
    assert (t['arch'], t['optimizer'], t['lr']) == ('convolutionallarge', 'sgd', 0.07)
    assert t['epoch'] < 100


def test_counters_option_selects_and_refuses(capsys):
    parser = run_all.build_parser()
    args = parser.parse_args(['--preset', 'quick', '--counters', 'conv_sigmoid_brn,relu'])
    assert [c[0] for c in run_all.selected_counters(parser, args)] == ['relu',
                                                                      'conv_sigmoid_brn']
    args = parser.parse_args(['--preset', 'thesis', '--counters', 'conv_softplus'])
    with pytest.raises(SystemExit) as e:
        run_all.selected_counters(parser, args)
    assert e.value.code == 2 and 'preset thesis trains relu' in capsys.readouterr().err


def test_dataset_options_split_seeds():
    a = run_all.dataset_options('quick', 'train', 5)
    b = run_all.dataset_options('quick', 'test', 5)
    assert a['seed'] != b['seed']
    assert a['count'] == presets.DATASETS['quick']['n_train']
    assert b['count'] == presets.DATASETS['quick']['n_test']
    assert run_all.dataset_options('quick', 'train', 6)['seed'] not in (a['seed'], b['seed'])


def test_run_state(tmp_path):
    run = str(tmp_path / 'run')
    wanted = {'arch': 'convolutional', 'activation': 'relu', 'lr': 0.001, 'epoch': 3}
    assert run_all.run_state(run, wanted) == 'fresh'
    os.makedirs(run)
    with open(os.path.join(run, 'settings.json'), 'w') as f:
        json.dump(dict(wanted, image_size=[87, 87]), f)
    assert run_all.run_state(run, wanted) == 'fresh'
    open(os.path.join(run, 'snapshot_epoch_10'), 'w').close()
    assert run_all.run_state(run, wanted) == 'resume'
    open(os.path.join(run, 'model_final.npz'), 'w').close()
    assert run_all.run_state(run, wanted) == 'done'
    assert run_all.run_state(run, dict(wanted, lr=0.07)) == 'other'
    logged = []
    assert sweep.prepare_run('relu', run, 'other', logged.append)
    # Moved aside, never deleted: the old run is whole under RUN.old-1.
    moved = run + '.old-1'
    assert logged == ['relu: {} holds another configuration; moved to {}'.format(run, moved)]
    assert not os.path.exists(run)
    assert sorted(os.listdir(moved)) == ['model_final.npz', 'settings.json', 'snapshot_epoch_10']
    assert run_all.run_state(run, wanted) == 'fresh'
    assert not sweep.prepare_run('relu', moved, 'done', logged.append)


@pytest.fixture
def tiny_presets(monkeypatch):
    monkeypatch.setitem(presets.DATASETS, 'smoke', dict(
        n_train=10, n_test=3, image_size=(87, 87), shape_limit=3, scale=(11, 11),
        shape_scaling=False))
    monkeypatch.setitem(presets.TRAINING, 'smoke', {'*': dict(
        arch='convolutional', epoch=1, batchsize=5, optimizer='rmsprop', lr=1e-3,
        snapshot_interval=1)})
    monkeypatch.setitem(presets.N_PICTURES, 'smoke', 1)


def test_pipeline_end_to_end_and_resumable(tiny_presets, tmp_path, capsys):
    out, data = str(tmp_path / 'results'), str(tmp_path / 'data')
    argv = ['--preset', 'smoke', '--out', out, '--data-dir', data, '--device', '@numpy']
    assert run_all.main(argv) == 0
    counting = os.path.join(out, 'counting')
    with open(os.path.join(counting, 'summary.md')) as f:
        summary = f.read()
    assert 'python -m Counting.run_all --preset smoke' in summary
    assert summary.count('| relu | convolutional |') == 2
    # sigmoid_brn and the thesis network's conv_sigmoid_brn, two types each
    assert summary.count('| sigmoid | convolutional |') == 4
    # one table of every counter, both networks
    side = summary.split('## Every counter side by side')[1].split('##')[0]
    for name in ('relu', 'softplus', 'sigmoid_brn', 'conv_softplus', 'conv_sigmoid_brn'):
        assert '\n| {} | `convolutional` '.format(name) in side
    assert 'recall `second_auto_connected_typed`' in side
    # typed detection: per-type recall and type accuracy, typed and untyped methods
    typed = summary.split('## Shapes told apart by type')[1].split('##')[0]
    assert 'recall tri | recall sq | type accuracy' in typed
    assert '| conv_softplus | `convolutional` softplus | second_auto_connected_typed |' in typed
    assert '| relu | `convolutional` relu | upper_typed |' in typed
    # Every method is scored for the smooth counters, the first-derivative ones for ReLU.
    for method in ('second', 'second_auto', 'upper', 'kmeans'):
        assert '| softplus | {} | 3 |'.format(method) in summary
    assert '| relu | upper | 3 |' in summary and '| relu | second |' not in summary
    assert '## Does the saliency outline the shapes?' in summary
    assert summary.count('| sigmoid_brn | 3 |') == 1  # the outline measure over 3 images
    for name in ('relu', 'softplus', 'sigmoid_brn'):
        assert os.path.exists(os.path.join(counting, 'runs', name, 'model_final.npz'))
        assert os.path.exists(os.path.join(counting, name, 'scatter.png'))
        assert os.path.exists(os.path.join(counting, name, 'saliency', '0000_saliency.png'))
        tag = 'upper' if name == 'relu' else 'second_auto'
        assert os.path.exists(os.path.join(counting, name, 'detection', tag, '0000_boxes.png'))
        assert os.path.exists(os.path.join(counting, name, 'contact_sheet.png'))
        assert os.path.exists(os.path.join(counting, name, 'contact_sheet_typed.png'))
        typed_tag = 'upper_typed' if name == 'relu' else 'second_auto_connected_typed'
        with open(os.path.join(counting, name, 'detection', typed_tag, 'detections.json')) as f:
            det = json.load(f)
        assert det['settings']['typed'] and 'type_accuracy' in det['scores']
        for entry in det['images'].values():
            assert sorted(entry['counts']) == ['sq', 'tri']
            assert entry['count'] == sum(entry['counts'].values())
            assert all(g['type'] in ('tri', 'sq') for g in entry['groups'])
        assert '{}/contact_sheet.png'.format(name) in summary
        assert '{}/scatter.png'.format(name) in summary
    # summary.json: the same figures, and the README block written from it
    with open(os.path.join(counting, 'summary.json')) as f:
        record = json.load(f)
    assert record['preset'] == 'smoke' and record['seed'] == 0
    assert record['provenance']['command'].startswith('python -m Counting.run_all --preset smoke')
    softplus = next(c for c in record['counters'] if c['name'] == 'softplus')
    readme = tmp_path / 'README.md'
    readme.write_text('# top\n<!-- counting-results:begin -->\nSTALE\n'
                      '<!-- counting-results:end -->\ntail\n')
    from Counting import readme_table
    assert readme_table.main(['--summary', os.path.join(counting, 'summary.json'),
                              '--readme', str(readme)]) == 0
    text = readme.read_text()
    assert "STALE" not in text and text.startswith('# top\n') and text.endswith('tail\n')
    assert 'python -m Counting.run_all --preset smoke' in text and 'seed 0' in text
    row = next(line for line in text.splitlines() if line.startswith('| softplus |'))
    mae = softplus['metrics']['tri']['ours']['mae']
    assert '{:.3f} ({:.2f}x)'.format(mae, softplus['metrics']['tri']['mae_ratio']) in row
    assert '\n### Shapes told apart by type\n' in text and '\n## ' not in text
    assert os.path.exists(os.path.join(data, 'smoke', 'train', 'truths.json'))
    with open(os.path.join(counting, 'results.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [(r['seed'], r['counter']) for r in rows] == [
        ('0', c) for c in ('relu', 'softplus', 'sigmoid_brn', 'conv_softplus', 'conv_sigmoid_brn')
        for _ in range(2)]
    for r in rows:
        assert '| {} | {} |'.format(r['type'], '{:.3f}'.format(float(r['mae']))) in summary
    capsys.readouterr()

    # A second run reuses the datasets and the trained models.
    stamp = os.path.getmtime(os.path.join(counting, 'runs', 'relu', 'model_final.npz'))
    run_all.main(argv)
    printed = capsys.readouterr().out
    assert printed.count('reusing') == 2
    assert printed.count('final model with these settings exists, skipped') == 5
    assert os.path.getmtime(os.path.join(counting, 'runs', 'relu', 'model_final.npz')) == stamp


@pytest.mark.slow
def test_seed_sweep_repeats_the_one_seed_runs(tiny_presets, tmp_path):
    data = str(tmp_path / 'data')
    base = ['--preset', 'smoke', '--data-dir', data, '--device', '@numpy']
    run_all.main(base + ['--seed', '1', '--out', str(tmp_path / 'one')])
    run_all.main(base + ['--seeds', '0,1', '--jobs', '2', '--out', str(tmp_path / 'sweep')])
    sweep_dir = tmp_path / 'sweep' / 'counting'
    with open(sweep_dir / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / 'one' / 'counting' / 'results.csv') as f:
        one = list(csv.DictReader(f))
    assert sorted({r['seed'] for r in rows}) == ['0', '1'] and len(rows) == 2 * len(one)
    # seed 1 of the sweep is the one-seed run with --seed 1, number for number
    assert [r for r in rows if r['seed'] == '1'] == one
    assert [r for r in rows if r['seed'] == '0'] != [dict(r, seed='0') for r in one]
    for seed in (0, 1):
        assert (sweep_dir / 'seed-{}'.format(seed) / 'runs' / 'relu' / 'model_final.npz').exists()
        assert (tmp_path / 'data' / 'smoke' / 'seed-{}'.format(seed) / 'test').is_dir()
    table = (sweep_dir / 'table.md').read_text()
    relu = [r for r in rows if r['counter'] == 'relu' and r['type'] == rows[0]['type']]
    mean, std, n = sweep.mean_std([r['mae'] for r in relu])
    assert n == 2 and abs(std - abs(float(relu[0]['mae']) - float(relu[1]['mae'])) / 2 ** 0.5) \
        < 1e-12
    assert '| relu | {} | {:.3f} ± {:.3f} |'.format(rows[0]['type'], mean, std) in table
    assert table.count(' | 2 |') == len(one)


@pytest.mark.slow
def test_smoke_preset(tmp_path):
    out, data = str(tmp_path / 'results'), str(tmp_path / 'data')
    run_all.main(['--preset', 'smoke', '--out', out, '--data-dir', data, '--device', '@numpy'])
    assert os.path.exists(os.path.join(out, 'counting', 'summary.md'))


@pytest.mark.slow
def test_gpu_lease_smoke_preset(tmp_path):
    """The gpu-lease pipeline (the thesis's data and convolutionallarge at its smallest input,
    835 x 835, the thesis's SGD) on the CPU at a tiny size: every stage runs and reports."""
    out, data = str(tmp_path / 'results'), str(tmp_path / 'data')
    assert run_all.main(['--preset', 'gpu-lease-smoke', '--out', out, '--data-dir', data,
                         '--device', '@numpy']) == 0
    counting = os.path.join(out, 'counting')
    with open(os.path.join(counting, 'summary.md')) as f:
        summary = f.read()
    assert 'preset `gpu-lease-smoke`' in summary and '835x835' in summary
    assert summary.count('| convolutionallarge |') == 6   # three counters, two types each
    assert '## Every counter side by side' in summary
    assert '## Shapes told apart by type' in summary
    assert 'recall `second_auto_connected_typed`' in summary
    assert '| softplus | kmeans |' not in summary and '| softplus | second_auto |' not in summary
    for name in ('relu', 'softplus', 'sigmoid_brn'):
        assert os.path.exists(os.path.join(counting, name, 'contact_sheet.png'))
        assert os.path.exists(os.path.join(counting, name, 'contact_sheet_typed.png'))


def test_detection_methods_follow_the_registry_smooth_flag():
    from Counting.functions import ACTIVATIONS
    every = [tag for tag, _ in presets.DETECTION_METHODS]
    for name, activation in ACTIVATIONS.items():
        tags = [tag for tag, _ in run_all._methods_for(name)]
        if activation.smooth:
            assert tags == every
            assert presets.SHEET_METHOD[run_all.smooth(name)] == 'second_auto_connected'
        else:
            assert tags == ['upper', 'kmeans', 'upper_typed']
            assert presets.SHEET_METHOD[run_all.smooth(name)] == 'upper'
    assert not run_all.smooth('relu') and run_all.smooth('softplus')
    lease = [tag for tag, _ in run_all._methods_for('softplus', 'gpu-lease')]
    assert 'kmeans' not in lease and 'second_auto_connected_typed' in lease
