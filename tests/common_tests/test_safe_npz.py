"""The safe model loader and the run-folder guards of lenses_common."""
import os
import stat
import subprocess
import sys

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
import chainer.links as L

from lenses_common import runfolder, safe_npz

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_payloads_are_live(tmp_path, payloads):
    write_pickle_payload, write_object_npz = payloads
    # The payloads used throughout do run code when loaded the unsafe way, so a test that finds
    # no marker after the safe loader means something.
    marker = tmp_path / 'ran'
    write_pickle_payload(tmp_path / 'p.npz', marker)
    with pytest.raises(Exception):
        chainer.serializers.load_npz(str(tmp_path / 'p.npz'), L.Linear(2, 3))
    assert marker.exists()
    os.remove(marker)
    write_object_npz(tmp_path / 'o.npz', marker)
    with numpy.load(tmp_path / 'o.npz', allow_pickle=True) as npz:
        npz['W']
    assert marker.exists()


@pytest.mark.parametrize('kind', ['pickle', 'object'])
def test_read_npz_never_unpickles(tmp_path, kind, payloads):
    write_pickle_payload, write_object_npz = payloads
    marker = tmp_path / 'ran'
    path = str(tmp_path / 'model.npz')
    (write_pickle_payload if kind == 'pickle' else write_object_npz)(path, marker)
    with pytest.raises(safe_npz.ModelFileError) as info:
        safe_npz.load_npz(path, L.Linear(2, 3))
    message = str(info.value)
    assert path in message and '\n' not in message
    assert ('object array' in message) == (kind == 'object')
    assert not marker.exists()


def test_load_checks_names_shapes_dtypes_before_copying(tmp_path):
    numpy.random.seed(0)
    source = L.Linear(3, 2)
    path = str(tmp_path / 'm.npz')
    chainer.serializers.save_npz(path, source)
    target = L.Linear(3, 2)
    safe_npz.load_npz(path, target)
    numpy.testing.assert_array_equal(target.W.array, source.W.array)

    cases = [
        (L.Linear(3, 1), 'W is float32 (2, 3) here but float32 (1, 3)'),  # 1 output, not 2
        (L.Linear(3, 2, nobias=True), 'unexpected b'),
        (chainer.Sequential(L.Linear(3, 2)), 'missing 0/W'),
    ]
    for target, expected in cases:
        before = [p.array.copy() for p in target.params()]
        with pytest.raises(safe_npz.ModelFileError) as info:
            safe_npz.load_npz(path, target)
        assert expected in str(info.value) and path in str(info.value)
        for p, b in zip(target.params(), before):
            numpy.testing.assert_array_equal(p.array, b)  # nothing copied
    # float64 arrays into a float32 link: refused, not silently cast
    numpy.savez(path, W=source.W.array.astype(numpy.float64), b=source.b.array)
    with pytest.raises(safe_npz.ModelFileError, match='W is float64'):
        safe_npz.load_npz(path, L.Linear(3, 2))


def test_truncated_and_foreign_files(tmp_path):
    path = str(tmp_path / 'm.npz')
    chainer.serializers.save_npz(path, L.Linear(30, 20))
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(safe_npz.ModelFileError, match='not a readable .npz'):
        safe_npz.load_npz(path, L.Linear(30, 20))
    with open(path, 'wb') as f:
        f.write(b'')
    with pytest.raises(safe_npz.ModelFileError, match='not a readable .npz'):
        safe_npz.load_npz(path, L.Linear(30, 20))
    with pytest.raises(safe_npz.ModelFileError, match='does not exist'):
        safe_npz.load_npz(str(tmp_path / 'none.npz'), L.Linear(30, 20))


def test_meta_round_trip_and_chainer_still_reads(tmp_path):
    link = L.Linear(3, 2)
    path = str(tmp_path / 'm.npz')
    runfolder.save_npz(path, link, meta={'counter': '{"arch": "x"}'})
    other = L.Linear(3, 2)
    meta = safe_npz.load_npz(path, other)
    assert safe_npz.meta_text(meta, 'counter') == '{"arch": "x"}'
    numpy.testing.assert_array_equal(other.W.array, link.W.array)
    third = L.Linear(3, 2)
    chainer.serializers.load_npz(path, third)  # extra entries are ignored by Chainer
    numpy.testing.assert_array_equal(third.W.array, link.W.array)


def test_atomic_files_respect_the_umask(tmp_path):
    # In a child process, so the umask of the test runner is left alone.
    code = ('import os, sys; os.umask(int(sys.argv[2], 8)); '
            'from lenses_common import runfolder; '
            'runfolder.atomic_write_text(sys.argv[1], "x")')
    for umask, mode in (('022', 0o644), ('077', 0o600), ('002', 0o664)):
        path = str(tmp_path / 'f{}.txt'.format(umask))
        subprocess.run([sys.executable, '-c', code, path, umask], check=True,
                       env=dict(os.environ, PYTHONPATH=REPO))
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, umask


def test_check_out_dir(tmp_path):
    a_file = tmp_path / 'file'
    a_file.write_text('x')
    assert runfolder.check_out_dir(str(tmp_path / 'new' / 'deeper')) == str(
        tmp_path / 'new' / 'deeper')
    assert not (tmp_path / 'new').exists()  # nothing created
    with pytest.raises(runfolder.OutError, match='exists and is not a folder'):
        runfolder.check_out_dir(str(a_file))
    with pytest.raises(runfolder.OutError, match='cannot be created'):
        runfolder.check_out_dir(str(a_file / 'sub'))


def test_check_out_dir_unwritable(tmp_path):
    if os.geteuid() == 0:
        pytest.skip('root can write anywhere')
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(runfolder.OutError, match='not writable'):
            runfolder.check_out_dir(str(locked / 'run'))
    finally:
        locked.chmod(0o700)


def test_guard_and_move_aside(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'settings.json').write_text('{}')
    # settings alone: nothing to lose
    assert runfolder.guard_run_folder(str(out), ('model.npz',), ('snapshot_*',)) is None
    (out / 'snapshot_3').write_text('s')
    with pytest.raises(runfolder.OutError, match='an unfinished run'):
        runfolder.guard_run_folder(str(out), ('model.npz',), ('snapshot_*',))
    (out / 'model.npz').write_bytes(b'm')
    with pytest.raises(runfolder.OutError, match='a finished run.*--resume.*--force'):
        runfolder.guard_run_folder(str(out), ('model.npz',), ('snapshot_*',))
    assert runfolder.guard_run_folder(str(out), ('model.npz',), ('snapshot_*',),
                                      resume=True) is None
    note = runfolder.guard_run_folder(str(out), ('model.npz',), ('snapshot_*',), force=True)
    assert str(tmp_path / 'run.old-1') in note and not out.exists()
    assert (tmp_path / 'run.old-1' / 'model.npz').read_bytes() == b'm'
    out.mkdir()
    (out / 'model.npz').write_bytes(b'n')
    runfolder.guard_run_folder(str(out), ('model.npz',), (), force=True)
    assert (tmp_path / 'run.old-2' / 'model.npz').read_bytes() == b'n'
    assert (tmp_path / 'run.old-1' / 'model.npz').read_bytes() == b'm'
