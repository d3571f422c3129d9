"""One test per row of the table "What bad input gets" (docs/conventions.md).

Each feeds a script the bad input through its ``main`` and checks the outcome: exit status 2 and
one error line naming the file or option, the payload of a booby-trapped model file never run,
earlier results byte-identical.
"""
import json
import os
import shutil
import stat

import pytest

from lenses_common import compat  # noqa: F401
from Counting import detect as c_detect
from Counting import evaluate as c_evaluate
from Counting import generate as c_generate
from Counting.datasets import limits
from Counting import models as c_models
from Counting import saliency as c_saliency
from Counting import train as c_train
from Friendly import evaluate as f_evaluate
from Friendly import train as f_train
from lenses_common import runfolder
from lenses_common import snapshots


def run_main(main, argv):
    """Exit status of ``main(argv)``: its return value, or that of the SystemExit it raised."""
    try:
        code = main(argv)
    except SystemExit as e:
        return e.code
    return 0 if code is None or isinstance(code, dict) else code


def assert_one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2, err
    assert 'Traceback' not in err
    lines = [line for line in err.splitlines() if 'error' in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------------
# Fixtures: a tiny Counting dataset and run, a tiny Friendly run.

def copy_run(src, dst):
    shutil.copytree(str(src), str(dst))
    return str(dst)


# ---------------------------------------------------------------------------------------------
# Rows 1-2: a pickle named model_final.npz, or an .npz holding an object array, through every path.

LOADERS = ['counting-evaluate', 'counting-saliency', 'counting-detect', 'counting-resume',
           'friendly-evaluate', 'friendly-resume']


@pytest.mark.parametrize('kind', ['pickle', 'object-array'])
@pytest.mark.parametrize('path', LOADERS)
def test_model_file_payload_never_runs(request, tmp_path, capsys, path, kind, payloads,
                                       counting_args, friendly_args):
    marker = tmp_path / 'payload-ran'
    write = payloads[0] if kind == 'pickle' else payloads[1]
    if path.startswith('counting'):
        data = request.getfixturevalue('counting')
        run = copy_run(data['run'], tmp_path / 'run')
        if path == 'counting-resume':
            target = c_train.latest_snapshot(run)
            write(target, marker)
            main, argv = c_train.main, counting_args(data['train'], run, '--test', data['test'],
                                                     '--resume', target)
        else:
            target = os.path.join(run, 'model_final.npz')
            write(target, marker)
            if path == 'counting-evaluate':
                main, argv = c_evaluate.main, ['--run', run, '--device', '@numpy']
            else:
                main = c_saliency.main if path == 'counting-saliency' else c_detect.main
                argv = ['--run', run, '--images', data['test'], '--out', str(tmp_path / 'pics'),
                        '--device', '@numpy', '--limit', '1']
    else:
        mnist_dir = request.getfixturevalue('mnist_dir')
        run = copy_run(request.getfixturevalue('friendly'), tmp_path / 'S')
        if path == 'friendly-resume':
            target = snapshots.latest_snapshot(run)
            write(target, marker)
            main, argv = f_train.main, friendly_args(run, mnist_dir, '--resume')
        else:
            target = os.path.join(run, snapshots.FINAL_MODEL)
            write(target, marker)
            main, argv = f_evaluate.main, ['--run', run, '--out', str(tmp_path / 'eval'),
                                           '--mnist-dir', mnist_dir, '--test-subset', '20']
    code = run_main(main, argv)
    line = assert_one_line_error(capsys, code, target)
    assert ('object array' in line) == (kind == 'object-array')
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# Row 3: a truncated or foreign Counting snapshot.

def test_truncated_or_foreign_counting_snapshot(counting, friendly, tmp_path, capsys,
                                                counting_args):
    run = copy_run(counting['run'], tmp_path / 'run')
    snapshot = c_train.latest_snapshot(run)
    data = open(snapshot, 'rb').read()
    with open(snapshot, 'wb') as f:
        f.write(data[:len(data) // 3])
    argv = counting_args(counting['train'], run, '--test', counting['test'], '--resume', snapshot)
    assert_one_line_error(capsys, run_main(c_train.main, argv), snapshot, 'not a readable .npz')
    # A Friendly snapshot in its place: refused by its entries, before anything is copied.
    shutil.copy(snapshots.latest_snapshot(str(friendly)), snapshot)
    assert_one_line_error(capsys, run_main(c_train.main, argv), snapshot, 'does not fit')


# ---------------------------------------------------------------------------------------------
# Row 4: training into a folder that holds a finished run.

def test_counting_train_keeps_a_finished_run(counting, tmp_path, capsys, counting_args):
    run = copy_run(counting['run'], tmp_path / 'run')
    before = {n: open(os.path.join(run, n), 'rb').read()
              for n in ('model_final.npz', 'settings.json', 'command.txt', 'log')}
    argv = counting_args(counting['train'], run, '--test', counting['test'])
    assert_one_line_error(capsys, run_main(c_train.main, argv), run, 'finished run',
                          '--resume', '--force')
    for name, data in before.items():
        assert open(os.path.join(run, name), 'rb').read() == data, name
    # --force moves it aside, whole, and trains anew.
    assert run_main(c_train.main, argv + ['--force']) == 0
    for name, data in before.items():
        assert open(os.path.join(run + '.old-1', name), 'rb').read() == data, name
    assert os.path.exists(os.path.join(run, 'model_final.npz'))


def test_friendly_train_keeps_a_finished_run(friendly, mnist_dir, tmp_path, capsys, friendly_args):
    run = copy_run(friendly, tmp_path / 'S')
    model = open(os.path.join(run, snapshots.FINAL_MODEL), 'rb').read()
    code = run_main(f_train.main, friendly_args(run, mnist_dir))
    assert_one_line_error(capsys, code, run, 'finished run')
    assert open(os.path.join(run, snapshots.FINAL_MODEL), 'rb').read() == model


# ---------------------------------------------------------------------------------------------
# Row 5: Counting.generate into a non-empty folder.

def test_generate_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / 'data'
    argv = ['--out', str(out), '--count', '3', '--image-size', '60', '60', '--scale', '8', '10',
            '--shape-limit', '3', '--workers', '1', '--no-progress']
    assert c_generate.main(argv) == 0
    stale = out / 'stale.png'
    shutil.copy(str(out / '0000.png'), str(stale))
    assert_one_line_error(capsys, run_main(c_generate.main, argv), out, 'not empty', '--force')
    assert stale.exists()
    assert c_generate.main(argv + ['--force']) == 0
    assert sorted(os.listdir(out)) == ['0000.png', '0001.png', '0002.png', 'annotations.json',
                                       'settings.json', 'truths.json']
    assert (tmp_path / 'data.old-1' / 'stale.png').exists()  # moved aside, not deleted


# ---------------------------------------------------------------------------------------------
# Row 6: Counting --resume with another run's snapshot or changed options.

def test_counting_resume_checks_identity(counting, tmp_path, capsys, counting_args):
    run = copy_run(counting['run'], tmp_path / 'run')
    snapshot = c_train.latest_snapshot(run)
    base = counting_args(counting['train'], run, '--test', counting['test'], '--resume', snapshot)
    argv = list(base)
    argv[argv.index('--lr') + 1] = '1e-3'
    assert_one_line_error(capsys, run_main(c_train.main, argv), 'lr differ')
    # another network's snapshot, copied into this folder: its folder's settings differ
    other = str(tmp_path / 'other')
    assert c_train.main(counting_args(counting['train'], other, '--activation', 'sigmoid')) == 0
    code = run_main(c_train.main, counting_args(counting['train'], run, '--test',
                                                counting['test'], '--resume',
                                                c_train.latest_snapshot(other)))
    assert_one_line_error(capsys, code, 'activation')
    settings = open(os.path.join(run, 'settings.json')).read()
    assert json.loads(settings)['activation'] == 'relu'
    # the same options resume
    assert run_main(c_train.main, base) == 0


# ---------------------------------------------------------------------------------------------
# Rows 7-8: a model that does not fit its settings (output count, activation, architecture).

def test_one_output_model_in_a_two_type_run(counting, tmp_path, counting_args):
    one = str(tmp_path / 'one')
    assert c_train.main(counting_args(counting['train'], one, '--types', 'sq')) == 0
    run = copy_run(counting['run'], tmp_path / 'two')
    shutil.copy(os.path.join(one, 'model_final.npz'), os.path.join(run, 'model_final.npz'))
    with pytest.raises(c_models.RunError, match=r'fc/W is float32 \(1, 10\) here but float32 '
                                                r'\(2, 10\)'):
        c_models.load_counter(run)


@pytest.mark.parametrize('key,value', [('activation', 'sigmoid'), ('activation', 'softplus'),
                                       ('types', ['tri', 'sq']), ('batch_renorm', True)])
def test_settings_edited_to_another_network(counting, tmp_path, key, value):
    run = copy_run(counting['run'], tmp_path / 'run')
    path = os.path.join(run, 'settings.json')
    settings = json.load(open(path))
    if key == 'types':  # the run counts both; claim the reverse order
        value = value[::-1]
    settings[key] = value
    with open(path, 'w') as f:
        json.dump(settings, f)
    with pytest.raises(c_models.RunError) as info:
        c_models.load_counter(run)
    message = str(info.value)
    assert path in message and '\n' not in message
    # The activation and the order of the outputs leave no trace in the parameters' shapes; the
    # model file records them. Batch Renormalization adds parameters.
    assert (key if key != 'batch_renorm' else 'missing') in message


# ---------------------------------------------------------------------------------------------
# Row 9: Counting.train rates that are not finite or of the wrong sign.

@pytest.mark.parametrize('option,value', [('--lr', 'inf'), ('--lr', 'nan'), ('--lr', '-0.1'),
                                          ('--momentum', 'nan'), ('--momentum', '1'),
                                          ('--base', 'inf'), ('--renorm-threshold', 'nan')])
def test_counting_rates_must_be_finite(counting, tmp_path, capsys, option, value, counting_args):
    argv = counting_args(counting['train'], str(tmp_path / 'run'), option, value)
    assert_one_line_error(capsys, run_main(c_train.main, argv), option)
    assert not (tmp_path / 'run').exists()


# ---------------------------------------------------------------------------------------------
# Row 11: PNGs that truths.json does not list.

def test_unlisted_png_is_refused(counting, tmp_path, capsys, counting_args):
    data = copy_run(counting['train'], tmp_path / 'train')
    shutil.copy(os.path.join(data, '0000.png'), os.path.join(data, 'extra.png'))
    argv = counting_args(data, str(tmp_path / 'run'))
    assert_one_line_error(capsys, run_main(c_train.main, argv), 'extra.png', 'not listed')


# ---------------------------------------------------------------------------------------------
# Rows 12-13: sizes above the bounds; the disk and memory estimate.

@pytest.mark.parametrize('extra,needle', [
    (['--count', str(10 ** 12)], '--count'),
    (['--count', '3', '--image-size', '100000', '100000'], '--image-size'),
    (['--count', '3', '--shape-limit', '100000'], '--shape-limit'),
])
def test_generate_bounds(tmp_path, capsys, extra, needle):
    out = tmp_path / 'data'
    code = run_main(c_generate.main, ['--out', str(out), '--no-progress'] + extra)
    assert_one_line_error(capsys, code, needle)
    assert not out.exists()


def test_bounds_are_in_the_help():
    text = c_generate.build_parser().format_help()
    for bound in (limits.MAX_COUNT, limits.MAX_IMAGE_SIDE, limits.MAX_SHAPES):
        assert '{:,}'.format(bound) in text
    assert str(limits.MAX_DETECT_COUNT) in c_detect.build_parser().format_help()


def test_detect_count_bound(counting, tmp_path, capsys):
    argv = ['--run', counting['run'], '--images', counting['test'], '--out',
            str(tmp_path / 'det'), '--count', str(10 ** 12), '--device', '@numpy']
    assert_one_line_error(capsys, run_main(c_detect.main, argv), '--count')


def test_generation_estimate(tmp_path, capsys, monkeypatch):
    # From PNG sizes measured in memory: 1000 images of at most 2 kB need about 3.5 MB (with the
    # 1.5 margin, a 4 KiB block each and the JSON), far more than 1 MB free.
    disk, memory = limits.estimate(1000, 100, 100, 5, 2, [1000, 2000])
    assert disk == 1000 * (2000 * 1.5 + 4096) + 2 * 1000 * (200 + 400 * 5)
    assert memory == 2 * 100 * 100 * 16 + 3 * 1000 * (200 + 400 * 5)
    with pytest.raises(ValueError, match='of disk'):
        limits.check_generation(str(tmp_path), 1000, 100, 100, 5, 2, [1000, 2000], free=10 ** 6)
    with pytest.raises(ValueError, match='of memory'):
        limits.check_generation(str(tmp_path), 1000, 100, 100, 5, 2, [1000, 2000],
                                free=10 ** 12, memory=10 ** 5)
    # Through the command line, before any file is written.
    monkeypatch.setattr(limits, 'free_disk', lambda path: 10 ** 5)
    out = tmp_path / 'data'
    code = run_main(c_generate.main, ['--out', str(out), '--count', '1000', '--image-size',
                                      '200', '200', '--workers', '1', '--no-progress'])
    assert_one_line_error(capsys, code, 'of disk', 'free')
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Row 14: --out that is a file, or under a file, in every script.

def _script_argvs(counting, friendly, mnist_dir, out, counting_args, friendly_args):
    from Counting.bench import __main__ as c_bench
    from Counting.bench import detection as bench_detection
    from Counting.bench import generator as bench_generator
    from Counting import run_all as c_run_all
    from Friendly.bench import __main__ as f_bench
    from Friendly import run_all as f_run_all
    images = ['--run', counting['run'], '--images', counting['test'], '--out', out]
    return {
        'Counting.generate': (c_generate.main, ['--out', out, '--count', '2']),
        'Counting.train': (c_train.main, counting_args(counting['train'], out)),
        'Counting.evaluate': (c_evaluate.main, ['--run', counting['run'], '--out', out]),
        'Counting.saliency': (c_saliency.main, images),
        'Counting.detect': (c_detect.main, images),
        'Counting.run_all': (c_run_all.main, ['--out', out]),
        'Counting.bench': (c_bench.main, ['--out', out]),
        'Counting.bench.detection': (bench_detection.main, ['--out', out]),
        'Counting.bench.generator': (bench_generator.main, ['--out', out]),
        'Friendly.train': (f_train.main, friendly_args(out, mnist_dir)),
        'Friendly.evaluate': (f_evaluate.main, ['--run', str(friendly), '--out', out,
                                                '--mnist-dir', mnist_dir]),
        'Friendly.run_all': (f_run_all.main, ['--out', out]),
        'Friendly.bench': (f_bench.main, ['--out', out]),
    }


SCRIPTS = ['Counting.generate', 'Counting.train', 'Counting.evaluate', 'Counting.saliency',
           'Counting.detect', 'Counting.run_all', 'Counting.bench', 'Counting.bench.detection',
           'Counting.bench.generator', 'Friendly.train', 'Friendly.evaluate', 'Friendly.run_all',
           'Friendly.bench']


@pytest.mark.parametrize('where', ['file', 'under-file'])
@pytest.mark.parametrize('script', SCRIPTS)
def test_out_that_cannot_be_a_folder(counting, friendly, mnist_dir, tmp_path, capsys, script, where,
                                     counting_args, friendly_args):
    a_file = tmp_path / 'a_file'
    a_file.write_text('keep')
    out = str(a_file) if where == 'file' else str(a_file / 'sub')
    main, argv = _script_argvs(counting, friendly, mnist_dir, out, counting_args,
                                 friendly_args)[script]
    capsys.readouterr()
    assert_one_line_error(capsys, run_main(main, argv), '--out', str(a_file))
    assert a_file.read_text() == 'keep'


def test_bench_layers_out_is_a_folder(tmp_path, capsys):
    from Friendly.bench.layers import __main__ as bench_layers
    code = run_main(bench_layers.main, ['--out', str(tmp_path)])
    assert_one_line_error(capsys, code, '--out', 'is a folder')


# ---------------------------------------------------------------------------------------------
# Row 15: a settings.json value of the wrong type.

@pytest.mark.parametrize('key,value', [('image_size', '100x100'), ('types', 'tri,sq'),
                                       ('batch_renorm', 'no'), ('base', 'e'), ('arch', 3)])
def test_counting_settings_of_the_wrong_type(counting, tmp_path, capsys, key, value):
    run = copy_run(counting['run'], tmp_path / 'run')
    path = os.path.join(run, 'settings.json')
    settings = json.load(open(path))
    settings[key] = value
    with open(path, 'w') as f:
        json.dump(settings, f)
    code = run_main(c_evaluate.main, ['--run', run, '--device', '@numpy'])
    assert_one_line_error(capsys, code, path, key)


@pytest.mark.parametrize('key,value', [('sizes', 'wide'), ('sizes', [784, 100]),
                                       ('variant', ['S']), ('variant', 7)])
def test_friendly_settings_of_the_wrong_type(friendly, mnist_dir, tmp_path, capsys, key, value):
    run = copy_run(friendly, tmp_path / 'S')
    path = os.path.join(run, 'settings.json')
    settings = json.load(open(path))
    settings[key] = value
    with open(path, 'w') as f:
        json.dump(settings, f)
    code = run_main(f_evaluate.main, ['--run', run, '--out', str(tmp_path / 'eval'),
                                      '--mnist-dir', mnist_dir])
    assert_one_line_error(capsys, code, path)


# ---------------------------------------------------------------------------------------------
# Row 16: file modes.

def test_written_models_follow_the_umask(counting, friendly):
    mask = runfolder.current_umask()
    want = 0o666 & ~mask
    for path in (os.path.join(counting['run'], 'model_final.npz'),
                 os.path.join(counting['run'], 'settings.json'),
                 os.path.join(counting['train'], 'truths.json'),
                 os.path.join(counting['train'], '0000.png'),
                 os.path.join(str(friendly), snapshots.FINAL_MODEL)):
        assert stat.S_IMODE(os.stat(path).st_mode) == want, path
