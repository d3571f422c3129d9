"""The second round of hostile inputs (docs/bad-input.md), one test per kind.

Like ``test_bad_input.py``: each feeds a script the bad input through its ``main`` (or through
``cli.main_guard``, as its ``__main__`` does) and checks the outcome: a non-zero exit, one error
line naming the file or option, and nothing written before lost or half-written.
"""
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import urllib.error

import numpy
import pytest

from lenses_common import compat  # noqa: F401
from Counting import detect as c_detect
from Counting import evaluate as c_evaluate
from Counting import evaluation as c_evaluation
from Counting import generate as c_generate
from Counting import outline as c_outline
from Counting import run_all as c_run_all
from Counting import train as c_train
from Friendly import attacks
from Friendly import evaluate as f_evaluate
from Friendly import evaluate_report
from Friendly import mnist as f_mnist
from Friendly import run_all as f_run_all
from Friendly import stop_rules
from Friendly import train as f_train
from lenses_common import cli, lock, nonfinite, runfolder, safe_npz, training
from Friendly import runs
from lenses_common import snapshots

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_main(main, argv):
    """Exit status of ``main(argv)`` run as its ``__main__`` runs it (``cli.main_guard``)."""
    try:
        return cli.main_guard(main, argv)
    except SystemExit as e:
        return e.code


def one_line(capsys, code, *needles, status=2):
    err = capsys.readouterr().err
    assert code == status, err
    assert 'Traceback' not in err
    lines = [line for line in err.splitlines() if 'error' in line or 'interrupted' in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(autouse=True)
def _no_hang():
    """A test that would block (a FIFO opened as input) fails after 300 s instead."""
    def expire(signum, frame):
        raise TimeoutError("blocked for 300 s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(300)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------------------
# Fixtures: a tiny Counting dataset and run, a tiny Friendly run.

def copy(src, dst):
    shutil.copytree(str(src), str(dst))
    return str(dst)


def edit_npz(path, change):
    """Rewrite the ``.npz`` at ``path`` with ``change(arrays)`` applied (a dict, in place)."""
    with numpy.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(path, 'wb') as f:
        numpy.savez(f, **arrays)


# ---------------------------------------------------------------------------------------------
# 1. One writer per folder.

HOLDER = ('import sys, time\nfrom lenses_common import lock\n'
          'getattr(lock, sys.argv[1])(sys.argv[2])\nprint("ready", flush=True)\ntime.sleep(120)\n')


def hold(folder, how='claim'):
    """A second process holding the lock of ``folder``."""
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, how, str(folder)], cwd=REPO,
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b'ready'
    return proc


WRITERS = ['Counting.train', 'Counting.evaluate', 'Counting.generate', 'Friendly.train',
           'Friendly.evaluate']


@pytest.mark.parametrize('script', WRITERS)
def test_second_writer_is_refused(counting, friendly, mnist_dir, tmp_path, capsys, script,
                                  counting_args, friendly_args):
    out = tmp_path / 'out'
    argvs = {
        'Counting.train': (c_train.main, counting_args(counting['train'], str(out))),
        'Counting.evaluate': (c_evaluate.main, ['--run', counting['run'], '--out', str(out),
                                                '--device', '@numpy']),
        'Counting.generate': (c_generate.main, ['--out', str(out), '--count', '2',
                                                '--image-size', '60', '60', '--scale', '8',
                                                '10', '--workers', '1', '--no-progress']),
        'Friendly.train': (f_train.main, friendly_args(out, mnist_dir)),
        'Friendly.evaluate': (f_evaluate.main, ['--run', str(friendly), '--out', str(out),
                                                '--mnist-dir', mnist_dir, '--test-subset',
                                                '20', '--no-progress']),
    }
    main, argv = argvs[script]
    holder = hold(out, 'claim_beside' if script == 'Counting.generate' else 'claim')
    try:
        one_line(capsys, run_main(main, argv), 'being written by another run',
                 'pid {}'.format(holder.pid))
        assert sorted(os.listdir(out) if out.is_dir() else []) in ([], ['.lock'])
    finally:
        holder.kill()
        holder.wait()
    # The holder killed, its lock file stays but does not block.
    assert run_main(main, argv) == 0
    lock.release(str(out))


def test_stale_lock_of_a_killed_process_does_not_block(tmp_path):
    holder = hold(tmp_path / 'run')
    with pytest.raises(lock.LockError, match='pid {}'.format(holder.pid)):
        lock.claim(str(tmp_path / 'run'))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / 'run' / '.lock').read_text().strip() == str(holder.pid)
    lock.claim(str(tmp_path / 'run'))
    assert (tmp_path / 'run' / '.lock').read_text().strip() == str(os.getpid())
    lock.release(str(tmp_path / 'run'))


def test_force_does_not_move_aside_a_folder_being_written(counting, tmp_path, capsys,
                                                          counting_args):
    run = copy(counting['run'], tmp_path / 'run')
    holder = hold(run)
    try:
        code = run_main(c_train.main, counting_args(counting['train'], run, '--force'))
        one_line(capsys, code, 'being written by another run')
        assert not os.path.exists(run + '.old-1')
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------------------------
# 2. Non-finite models refused; a network whose outputs do not depend on its input flagged.

@pytest.mark.parametrize('value', [numpy.nan, numpy.inf])
def test_friendly_evaluate_refuses_a_non_finite_model(friendly, mnist_dir, tmp_path, capsys,
                                                      value):
    run = copy(friendly, tmp_path / 'S')
    model = os.path.join(run, snapshots.FINAL_MODEL)

    def poison(arrays):
        arrays['l1/W'] = arrays['l1/W'].copy()
        arrays['l1/W'].flat[7] = value
    edit_npz(model, poison)
    code = run_main(f_evaluate.main, ['--run', run, '--out', str(tmp_path / 'eval'),
                                      '--mnist-dir', mnist_dir, '--test-subset', '20'])
    one_line(capsys, code, model, 'non-finite', 'l1/W')
    assert not (tmp_path / 'eval' / 'table.md').exists()


@pytest.mark.parametrize('loader', ['evaluate', 'resume'])
def test_counting_refuses_non_finite_parameters_or_running_averages(counting, tmp_path, capsys,
                                                                    loader, counting_args):
    run = copy(counting['run'], tmp_path / 'run')
    path = (os.path.join(run, 'model_final.npz') if loader == 'evaluate'
            else c_train.latest_snapshot(run))
    with numpy.load(path) as f:
        key = next(k for k in sorted(f.files) if k.endswith('/W'))

    def poison(arrays):
        arrays[key] = numpy.full_like(arrays[key], numpy.inf)
    edit_npz(path, poison)
    if loader == 'evaluate':
        code = run_main(c_evaluate.main, ['--run', run, '--device', '@numpy'])
    else:
        code = run_main(c_train.main, counting_args(counting['train'], run, '--test',
                                                    counting['test'], '--resume', path))
    one_line(capsys, code, path, 'non-finite')
    assert not os.path.exists(os.path.join(run, 'eval', 'metrics.json'))


def test_input_independent_network_is_flagged(friendly, mnist_dir):
    model, _ = runs.load_run(str(friendly))
    _, test = f_mnist.get_mnist(mnist_dir)
    x = numpy.asarray(test._datasets[0][:50], dtype=numpy.float32)
    assert not attacks.input_independent(model, x)
    model.l3.W.array[...] = 0          # finite, but the outputs are l3's bias for every image
    assert attacks.input_independent(model, x)


def test_reports_are_standard_json(tmp_path):
    # A perfect counter's MAE ratio and a 1-epoch run's best loss were Infinity, a NaN MAE nan.
    result = c_evaluation.evaluate_predictions(numpy.array([[1.0], [2.0]]),
                                             numpy.array([[1.0], [2.0]]), ['sq'],
                                             numpy.array([1.5]))
    path = str(tmp_path / 'metrics.json')
    runfolder.atomic_write_json(path, {'metrics': result, 'nan': float('nan'),
                                       'list': [numpy.float32('-inf'), 1.0]})
    text = open(path).read()

    def refuse(name):
        raise AssertionError('{} in standard JSON'.format(name))
    loaded = json.loads(text, parse_constant=refuse)
    assert loaded['metrics']['sq']['mae_ratio'] is None
    assert 'MAE is 0' in loaded['metrics']['sq']['mae_ratio_null_reason']
    assert loaded['nan'] is None and 'NaN' in loaded['nan_null_reason']
    assert loaded['list'] == [None, 1.0]


# ---------------------------------------------------------------------------------------------
# 3. Snapshots: counters, iterator orders, identity without settings.json.

@pytest.mark.parametrize('key,value,needle', [
    ('updater/iteration', -5, 'must be >= 0'),
    ('updater/iterator:main/epoch', -3, 'must be >= 0'),
    ('updater/iteration', 2, 'does not match'),
    ('updater/iterator:main/order', 'past', 'not a permutation'),
    ('updater/iterator:main/order', 'repeat', 'not a permutation'),
    ('updater/iterator:main/current_position', 40, 'past the'),
])
def test_snapshot_counters_are_checked(counting, tmp_path, capsys, key, value, needle,
                                       counting_args):
    run = copy(counting['run'], tmp_path / 'run')
    snapshot = c_train.latest_snapshot(run)
    model = open(os.path.join(run, 'model_final.npz'), 'rb').read()

    def change(arrays):
        if value == 'past':
            order = arrays[key].copy()
            order[0] = len(order) + 5
            arrays[key] = order
        elif value == 'repeat':
            order = arrays[key].copy()
            order[1] = order[0]
            arrays[key] = order
        else:
            arrays[key] = numpy.array(value, dtype=arrays[key].dtype)
    edit_npz(snapshot, change)
    command = open(os.path.join(run, 'command.txt')).read()
    argv = counting_args(counting['train'], run, '--test', counting['test'], '--resume',
                         snapshot, '--epoch', '2')
    one_line(capsys, run_main(c_train.main, argv), snapshot, needle)
    assert open(os.path.join(run, 'model_final.npz'), 'rb').read() == model
    # A refused command is not appended to command.txt.
    assert open(os.path.join(run, 'command.txt')).read() == command


def test_resume_without_settings_json_uses_the_snapshot_identity(counting, tmp_path, capsys,
                                                                 counting_args):
    run = copy(counting['run'], tmp_path / 'run')
    snapshot = c_train.latest_snapshot(run)
    os.remove(os.path.join(run, 'settings.json'))
    base = counting_args(counting['train'], run, '--test', counting['test'], '--resume',
                         snapshot, '--epoch', '2')
    other = list(base)
    other[other.index('--lr') + 1] = '0.05'
    one_line(capsys, run_main(c_train.main, other + ['--seed', '7']), 'lr', 'seed',
             "snapshot's own settings")
    # A snapshot that does not record its settings (an older one) is refused without them.
    edit_npz(snapshot, lambda arrays: arrays.pop('_meta/settings'))
    one_line(capsys, run_main(c_train.main, base), 'does not record the settings')


# ---------------------------------------------------------------------------------------------
# 4. Paths and disks.

def test_dangling_symlink_out(counting, friendly, mnist_dir, tmp_path, capsys, counting_args,
                              friendly_args):
    link = tmp_path / 'link'
    os.symlink(str(tmp_path / 'nowhere' / 'run'), str(link))
    for main, argv in ((c_train.main, counting_args(counting['train'], str(link))),
                       (f_train.main, friendly_args(link, mnist_dir)),
                       (c_evaluate.main, ['--run', counting['run'], '--out', str(link)]),
                       (f_evaluate.main, ['--run', str(friendly), '--out', str(link),
                                          '--mnist-dir', mnist_dir])):
        one_line(capsys, run_main(main, argv), 'symbolic link', str(link))
    assert os.path.islink(str(link)) and not (tmp_path / 'nowhere').exists()


def test_out_name_too_long(counting, tmp_path, capsys, counting_args):
    long_out = str(tmp_path / ('r' * 300))
    one_line(capsys, run_main(c_train.main, counting_args(counting['train'], long_out)),
             'above the limit of')
    # 252 bytes fit, but --force would move it aside to a 258-byte name.
    run = copy(counting['run'], tmp_path / ('r' * 252))
    code = run_main(c_train.main, counting_args(counting['train'], run, '--force'))
    one_line(capsys, code, '--force', 'above the limit of')
    assert os.path.exists(os.path.join(run, 'model_final.npz'))


def test_run_all_data_dir_that_is_a_file(tmp_path, capsys):
    a_file = tmp_path / 'data'
    a_file.write_text('keep')
    code = run_main(c_run_all.main, ['--out', str(tmp_path / 'results'), '--data-dir',
                                     str(a_file)])
    one_line(capsys, code, '--data-dir', str(a_file))
    assert a_file.read_text() == 'keep'


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_run_all_data_dir_read_only(tmp_path, capsys):
    folder = tmp_path / 'ro'
    folder.mkdir()
    folder.chmod(0o555)
    code = run_main(c_run_all.main, ['--out', str(tmp_path / 'results'), '--data-dir',
                                     str(folder / 'counting')])
    one_line(capsys, code, '--data-dir', 'not writable')


def test_outline_json_folder_is_refused_before_the_work(counting, tmp_path, capsys):
    code = run_main(c_outline.main, ['--run', str(tmp_path / 'no-such-run'), '--images',
                                     counting['test'], '--json', str(tmp_path)])
    one_line(capsys, code, '--json', 'is a folder')


def _full_disk(monkeypatch, module, name):
    """Make ``module.name`` (an atomic writer) fail as a full disk does, through atomic_path."""
    def write(path, *args, **kwargs):
        with runfolder.atomic_path(path):
            raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(module, name, write)


def test_friendly_evaluate_full_disk(friendly, mnist_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'eval'
    _full_disk(monkeypatch, evaluate_report, 'atomic_write_json')
    code = run_main(f_evaluate.main, ['--run', str(friendly), '--out', str(out), '--mnist-dir',
                                      mnist_dir, '--test-subset', '20', '--no-progress'])
    one_line(capsys, code, 'cannot write', str(out / 'results.json'), 'No space left',
             status=1)
    assert not (out / 'table.md').exists()          # never tables without results.json
    assert [n for n in os.listdir(out) if n != '.lock'] == []   # no temporary file left


def test_friendly_train_full_disk_and_free_space(mnist_dir, tmp_path, capsys, monkeypatch,
                                                 friendly_args):
    out = tmp_path / 'S'
    monkeypatch.setattr(runfolder, 'free_disk', lambda path: 10 ** 4)
    one_line(capsys, run_main(f_train.main, friendly_args(out, mnist_dir)), 'MB of disk')
    assert not [n for n in os.listdir(out) if n.startswith('snapshot')]
    monkeypatch.undo()
    _full_disk(monkeypatch, training, 'save_npz')
    code = run_main(f_train.main, friendly_args(tmp_path / 'S2', mnist_dir))
    one_line(capsys, code, 'cannot write', snapshots.FINAL_MODEL, status=1)


def test_counting_train_full_disk(counting, tmp_path, capsys, monkeypatch, counting_args):
    _full_disk(monkeypatch, training, 'save_npz')
    code = run_main(c_train.main, counting_args(counting['train'], str(tmp_path / 'run')))
    one_line(capsys, code, 'cannot write', 'model_final.npz', status=1)


# ---------------------------------------------------------------------------------------------
# 5. No hangs: FIFOs as inputs, unbounded counts.

@pytest.mark.parametrize('what', ['settings.json', 'truths.json', 'model_final.npz'])
def test_fifo_inputs_are_refused(counting, tmp_path, capsys, what):
    run = copy(counting['run'], tmp_path / 'run')
    test = copy(counting['test'], tmp_path / 'test')
    target = os.path.join(test if what == 'truths.json' else run, what)
    os.remove(target)
    os.mkfifo(target)
    code = run_main(c_evaluate.main, ['--run', run, '--test', test, '--device', '@numpy'])
    one_line(capsys, code, target, 'FIFO')


def test_friendly_settings_fifo(friendly, mnist_dir, tmp_path, capsys):
    run = copy(friendly, tmp_path / 'S')
    os.remove(os.path.join(run, 'settings.json'))
    os.mkfifo(os.path.join(run, 'settings.json'))
    code = run_main(f_evaluate.main, ['--run', run, '--out', str(tmp_path / 'eval'),
                                      '--mnist-dir', mnist_dir])
    one_line(capsys, code, 'settings.json', 'FIFO')


@pytest.mark.parametrize('main,argv,option', [
    (c_generate.main, ['--out', 'OUT', '--count', '2', '--max-attempts', str(10 ** 12)],
     '--max-attempts'),
    (c_train.main, ['--train', 'X', '--out', 'OUT', '--epoch', str(10 ** 9)], '--epoch'),
    (f_train.main, ['--variant', 'S', '--out', 'OUT', '--epoch', str(10 ** 9)], '--epoch'),
    (f_evaluate.main, ['--run', 'X', '--out', 'OUT', '--pgd-steps', str(10 ** 9)],
     '--pgd-steps'),
])
def test_count_options_have_bounds(tmp_path, capsys, main, argv, option):
    argv = [str(tmp_path / 'out') if a == 'OUT' else a for a in argv]
    one_line(capsys, run_main(main, argv), option, 'above the limit')
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------------------------------------
# 6. Ctrl-C: one line, a resumable snapshot, no half-written dataset.

def test_ctrl_c_stops_a_trainer_with_a_resumable_snapshot(counting, tmp_path, capsys, monkeypatch,
                                                          counting_args):
    run = str(tmp_path / 'run')
    check = training.NonFiniteCheck.__call__

    def interrupt(self, trainer):
        if trainer.updater.iteration == 4:   # after epoch 1 (3 iterations) and its snapshot
            raise KeyboardInterrupt
        return check(self, trainer)
    monkeypatch.setattr(nonfinite.NonFiniteCheck, '__call__', interrupt)
    code = run_main(c_train.main, counting_args(counting['train'], run, '--epoch', '2'))
    one_line(capsys, code, 'interrupted', 'with --resume (', 'snapshot_epoch_1', status=130)
    assert not os.path.exists(os.path.join(run, 'model_final.npz'))
    monkeypatch.undo()
    assert run_main(c_train.main, counting_args(counting['train'], run, '--epoch', '2',
                                                '--resume', 'auto')) == 0
    assert os.path.exists(os.path.join(run, 'model_final.npz'))


def test_ctrl_c_leaves_no_half_written_dataset(tmp_path, capsys, monkeypatch):
    out = tmp_path / 'data'
    real = c_generate.generate_dataset

    def interrupted(folder, count, **kwargs):
        real(folder, 2, **kwargs)   # some PNGs written, then Ctrl-C
        raise KeyboardInterrupt
    monkeypatch.setattr(c_generate, 'generate_dataset', interrupted)
    argv = ['--out', str(out), '--count', '3', '--image-size', '60', '60', '--scale', '8', '10',
            '--workers', '1', '--no-progress']
    one_line(capsys, run_main(c_generate.main, argv), 'interrupted', status=130)
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ['.data.lock']
    monkeypatch.undo()
    # A killed generation's hidden folder is removed by the next run of that folder.
    (tmp_path / '.data.partial-abc123').mkdir()
    (tmp_path / '.data.partial-abc123' / '0000.png').write_bytes(b'half')
    assert run_main(c_generate.main, argv) == 0
    assert sorted(os.listdir(tmp_path)) == ['.data.lock', 'data']
    assert sorted(os.listdir(out)) == ['0000.png', '0001.png', '0002.png', 'annotations.json',
                                       'settings.json', 'truths.json']


# ---------------------------------------------------------------------------------------------
# 7. MNIST missing offline.

def test_mnist_missing_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('MNIST_DIR', raising=False)

    def offline(ndim, scale):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')
    monkeypatch.setattr(f_mnist, 'download', offline)
    argv = ['--variant', 'S', '--out', str(tmp_path / 'S'), '--epoch', '1', '--no-progress']
    line = one_line(capsys, run_main(f_train.main, argv), '--mnist-dir', 'MNIST_DIR',
                    'train-images-idx3-ubyte.gz', 'cannot be downloaded')
    assert 'URLError' not in line or 'name resolution' in line


# ---------------------------------------------------------------------------------------------
# 8. annotations.json checked against truths.json and the images.

def _annotations_edit(kind, annotations, truths):
    name = next(n for n in sorted(annotations) if len(annotations[n]) >= 1)
    shapes = annotations[name]
    if kind == 'none':
        annotations[name] = []
    elif kind == 'thrice':
        annotations[name] = shapes * 3
    elif kind == 'nan-vertex':
        shapes[0]['polygon'][0][0] = float('nan')
    elif kind == 'one-point':
        shapes[0]['polygon'] = shapes[0]['polygon'][:1]
    elif kind == 'inverted-box':
        box = shapes[0]['box']
        shapes[0]['box'] = [box[2], box[3], box[0], box[1]] if box[2] > box[0] else \
            [box[0] + 1, box[1], box[0], box[3]]
    elif kind == 'box-outside':
        shapes[0]['box'][2] = 100
    return name


ANNOTATION_CASES = [('none', 'annotated but'), ('thrice', 'annotated but'),
                    ('nan-vertex', 'finite'), ('one-point', 'at least 3 points'),
                    ('inverted-box', 'inverted'), ('box-outside', 'outside the 100x100')]


@pytest.mark.parametrize('script', ['outline', 'detect'])
@pytest.mark.parametrize('kind,needle', ANNOTATION_CASES)
def test_annotations_are_checked(counting, tmp_path, capsys, script, kind, needle):
    test = copy(counting['test'], tmp_path / 'test')
    path = os.path.join(test, 'annotations.json')
    annotations = json.load(open(path))
    truths = json.load(open(os.path.join(test, 'truths.json')))
    name = _annotations_edit(kind, annotations, truths)
    with open(path, 'w') as f:
        json.dump(annotations, f)
    out = tmp_path / 'out'
    if script == 'outline':
        main, argv = c_outline.main, ['--run', counting['run'], '--images', test, '--device',
                                      '@numpy', '--json', str(out / 'o.json')]
    else:
        main, argv = c_detect.main, ['--run', counting['run'], '--images', test, '--out',
                                     str(out), '--device', '@numpy', '--method', 'upper']
    one_line(capsys, run_main(main, argv), path, name, needle)
    assert not [n for n in (os.listdir(out) if out.exists() else []) if n.endswith('.png')]


# ---------------------------------------------------------------------------------------------
# 9. Leftovers of a killed write removed by the next run of that folder.

def test_leftovers_of_a_kill_are_removed(counting, tmp_path, counting_args):
    run = copy(counting['run'], tmp_path / 'run')
    hidden = os.path.join(run, '.model_final.npz.k3j2h1g0.tmp.npz')
    chainer_tmp = os.path.join(run, 'tmpsnapshot_epoch_2x8y2z')
    open(hidden, 'wb').write(b'partial')
    os.mkdir(chainer_tmp)
    open(os.path.join(chainer_tmp, 'snapshot_epoch_2'), 'wb').write(b'partial')
    keep = os.path.join(run, 'notes.txt')
    open(keep, 'w').write('mine')
    argv = counting_args(counting['train'], run, '--test', counting['test'], '--resume', 'auto',
                         '--epoch', '2')
    assert c_train.main(argv) == 0
    assert not os.path.exists(hidden) and not os.path.exists(chainer_tmp)
    assert open(keep).read() == 'mine'
    lock.release(run)


# ---------------------------------------------------------------------------------------------
# 10. summary.json: the last epoch compared, standard JSON.

@pytest.mark.parametrize('epochs', [1, 2])
def test_summary_best_loss_counts_the_last_epoch(mnist_dir, tmp_path, epochs, friendly_args):
    out = tmp_path / 'S'
    f_train.main(friendly_args(out, mnist_dir, '--epoch', str(epochs)))
    lock.release(str(out))

    def refuse(name):
        raise AssertionError('{} in summary.json'.format(name))
    summary = json.loads((out / 'summary.json').read_text(), parse_constant=refuse)
    log = json.loads((out / 'log').read_text())
    assert len(log) == epochs
    assert summary['best_monitored_loss'] == pytest.approx(min(e['main/loss'] for e in log),
                                                           rel=1e-6)


# ---------------------------------------------------------------------------------------------
# 11. A batch larger than the dataset.

def test_batch_larger_than_the_dataset(counting, mnist_dir, tmp_path, capsys, counting_args,
                                       friendly_args):
    argv = counting_args(counting['train'], str(tmp_path / 'c'))
    argv[argv.index('--batchsize') + 1] = '13'
    one_line(capsys, run_main(c_train.main, argv), '--batchsize 13', '12 images')
    code = run_main(f_train.main, friendly_args(tmp_path / 'f', mnist_dir, '--batchsize', '500'))
    one_line(capsys, code, '--batchsize 500', '200 images')
    assert not (tmp_path / 'f' / 'settings.json').exists()


# ---------------------------------------------------------------------------------------------
# 12. Counting.detect: names inside --images only, never twice.

@pytest.mark.parametrize('names,needle', [(['0000.png', '../other/0000.png'], 'no folder part'),
                                          (['0000.png', '0000.png'], 'given twice'),
                                          (['/etc/passwd'], 'no folder part')])
def test_detect_names(counting, tmp_path, capsys, names, needle):
    argv = ['--run', counting['run'], '--images', counting['test'], '--out',
            str(tmp_path / 'det'), '--device', '@numpy', '--method', 'upper', '--names'] + names
    one_line(capsys, run_main(c_detect.main, argv), '--names', needle)


# ---------------------------------------------------------------------------------------------
# Also seen.

def test_absurd_network_sizes_are_refused_before_building(friendly, mnist_dir, tmp_path, capsys):
    run = copy(friendly, tmp_path / 'S')
    path = os.path.join(run, 'settings.json')
    settings = json.load(open(path))
    settings['sizes'] = [784, 10 ** 6, 10 ** 6, 10]
    json.dump(settings, open(path, 'w'))
    code = run_main(f_evaluate.main, ['--run', run, '--out', str(tmp_path / 'eval'),
                                      '--mnist-dir', mnist_dir])
    one_line(capsys, code, path, 'above the limit')


def test_absurd_counts_in_truths(counting, tmp_path, capsys, counting_args):
    data = copy(counting['train'], tmp_path / 'train')
    path = os.path.join(data, 'truths.json')
    truths = json.load(open(path))
    truths[sorted(truths)[0]]['sq'] = 10 ** 9
    json.dump(truths, open(path, 'w'))
    one_line(capsys, run_main(c_train.main, counting_args(data, str(tmp_path / 'run'))),
             path, 'at most 1000')


@pytest.mark.parametrize('width', ['0', 'nan', '-1', 'inf'])
def test_outline_width(counting, tmp_path, capsys, width):
    code = run_main(c_outline.main, ['--run', counting['run'], '--images', counting['test'],
                                     '--width', width])
    one_line(capsys, code, '--width')


def test_empty_networks(tmp_path, capsys):
    code = run_main(f_run_all.main, ['--out', str(tmp_path / 'r'), '--networks', ''])
    one_line(capsys, code, '--networks', 'names no network')


def test_stop_rules_string_in_the_log(friendly, tmp_path, capsys):
    run = copy(friendly, tmp_path / 'S')
    log = json.load(open(os.path.join(run, 'log')))
    log[0]['main/loss'] = 'low'
    json.dump(log, open(os.path.join(run, 'log'), 'w'))
    one_line(capsys, run_main(stop_rules.main, [run]), 'main/loss', 'not a finite number')


@pytest.mark.parametrize('main,argv', [
    (f_evaluate.main, ['--run', 'NOWHERE', '--out', 'OUT']),
    (c_evaluate.main, ['--run', 'NOWHERE']),
    (c_train.main, ['--train', 'NOWHERE', '--out', 'OUT']),
    (f_train.main, ['--variant', 'S', '--out', 'OUT', '--resume', 'NOWHERE']),
])
def test_one_error_prefix(tmp_path, capsys, main, argv):
    argv = [str(tmp_path / a) if a in ('NOWHERE', 'OUT') else a for a in argv]
    line = one_line(capsys, run_main(main, argv))
    assert ': error: ' in line and not line.startswith('error:'), line


def test_safe_npz_refuses_non_finite_running_averages(tmp_path):
    import chainer.links as L
    bn = L.BatchNormalization(3)
    bn.avg_var[...] = numpy.nan
    path = str(tmp_path / 'bn.npz')
    runfolder.save_npz(path, bn)
    with pytest.raises(safe_npz.ModelFileError, match='avg_var'):
        safe_npz.load_npz(path, L.BatchNormalization(3))


def test_main_guard_lines(capsys):
    def full(*_):
        raise runfolder.WriteError('/x/results.json', OSError(errno.ENOSPC, 'No space left'))

    def ctrl_c(*_):
        raise KeyboardInterrupt
    one_line(capsys, cli.main_guard(full, prog='p'), 'cannot write /x/results.json', status=1)
    one_line(capsys, cli.main_guard(ctrl_c, prog='p'), 'interrupted', status=130)


def test_full_disk_while_writing_a_snapshot(counting, tmp_path, capsys, monkeypatch, counting_args):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(numpy, 'savez_compressed', full)
    run = str(tmp_path / 'run')
    code = run_main(c_train.main, counting_args(counting['train'], run))
    one_line(capsys, code, 'cannot write', os.path.join(run, 'snapshot_epoch_1'), status=1)
    assert not [n for n in os.listdir(run) if n.startswith('tmp')]


def test_an_output_file_that_is_a_device_or_fifo_is_never_replaced(counting, tmp_path, capsys):
    fifo = str(tmp_path / 'figures.json')
    os.mkfifo(fifo)
    code = run_main(c_outline.main, ['--run', counting['run'], '--images', counting['test'],
                                     '--json', fifo])
    one_line(capsys, code, '--json', 'not a regular file')
    with pytest.raises(runfolder.WriteError, match='not a regular file'):
        runfolder.atomic_write_text(fifo, 'x')
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.slow
def test_resumed_early_stopping_compares_the_snapshot_epoch(mnist_dir, tmp_path, friendly_args):
    # The snapshot of epoch 2 is taken before the stop trigger compares epoch 2: a resumed run
    # used to skip that comparison and mix epoch 2 into epoch 3's mean.
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    f_train.main(friendly_args(straight, mnist_dir, '--epoch', '3'))
    f_train.main(friendly_args(split, mnist_dir, '--epoch', '2'))
    resumed = f_train.main(friendly_args(split, mnist_dir, '--epoch', '3', '--resume'))
    summary = json.loads((straight / 'summary.json').read_text())
    assert resumed['best_monitored_loss'] == pytest.approx(summary['best_monitored_loss'],
                                                           rel=1e-12)
    log = json.loads((straight / 'log').read_text())
    assert summary['best_monitored_loss'] == pytest.approx(min(e['main/loss'] for e in log),
                                                           rel=1e-6)
    lock.release(str(straight))
    lock.release(str(split))


class _Updater:
    iteration, epoch, is_new_epoch, epoch_detail = 0, 0, False, 0.0


class _LogReport:
    def __init__(self):
        self.log = []


class _Trainer:
    def __init__(self):
        self.updater, self.observation, self.log = _Updater(), {}, _LogReport()

    def get_extension(self, name):
        return self.log


def _epoch(stop, trainer, epoch, losses, last_call=True):
    """Three iterations of ``epoch`` (1-based); the LogReport entry as Chainer's LogReport
    writes it before the snapshot; ``last_call=False``: the run stops (a snapshot, then Ctrl-C)
    before the stop trigger sees the epoch's last iteration."""
    for i, loss in enumerate(losses):
        u = trainer.updater
        u.iteration += 1
        u.is_new_epoch = i == len(losses) - 1
        u.epoch = epoch if u.is_new_epoch else epoch - 1
        u.epoch_detail = epoch - 1 + (i + 1) / len(losses)
        trainer.observation = {'main/loss': loss}
        if u.is_new_epoch:
            trainer.log.log.append({'epoch': epoch, 'main/loss': float(numpy.mean(losses))})
            if not last_call:
                return
        stop(trainer)


def test_resumed_early_stopping_state_equals_the_uninterrupted_one(tmp_path):
    from chainer import serializers
    from Friendly import train_extensions
    epochs = [[0.6, 0.5, 0.4], [0.3, 0.3, 0.3], [0.4, 0.4, 0.4]]   # epoch 2 is the best
    straight, trainer = train_extensions.make_early_stopping('training', 20, 10), _Trainer()
    for e, losses in enumerate(epochs, 1):
        _epoch(straight, trainer, e, losses)
    first, trainer = train_extensions.make_early_stopping('training', 20, 10), _Trainer()
    _epoch(first, trainer, 1, epochs[0])
    _epoch(first, trainer, 2, epochs[1], last_call=False)
    path = str(tmp_path / 'stop.npz')
    serializers.save_npz(path, first)
    resumed = train_extensions.make_early_stopping('training', 20, 10)
    serializers.load_npz(path, resumed)
    trainer.observation = {}                      # a resumed Trainer has observed nothing yet
    resumed(trainer)
    _epoch(resumed, trainer, 3, epochs[2])
    assert (resumed.best, resumed.count) == (straight.best, straight.count) == (
        pytest.approx(0.3), 1)
