"""Tests of lenses_common.snapshots: names, the newest snapshot, the settings a snapshot keeps."""
import numpy

from lenses_common import compat  # noqa: F401
import chainer

from lenses_common import snapshots


def test_the_shared_names():
    assert snapshots.FINAL_MODEL == 'model_final.npz'
    assert snapshots.SNAPSHOT_PREFIX == {'epoch': 'snapshot_epoch_',
                                         'iteration': 'snapshot_iter_'}


def test_latest_snapshot_compares_numbers_not_text(tmp_path):
    assert snapshots.latest_snapshot(str(tmp_path)) is None
    for n in (2, 9, 10):
        (tmp_path / 'snapshot_epoch_{}'.format(n)).write_bytes(b'')
    (tmp_path / 'snapshot_epoch_11.tmp').write_bytes(b'')     # not a snapshot name
    (tmp_path / 'snapshot_iter_99').write_bytes(b'')
    assert snapshots.latest_snapshot(str(tmp_path)).endswith('snapshot_epoch_10')
    assert snapshots.latest_snapshot(str(tmp_path), 'snapshot_iter_').endswith('snapshot_iter_99')


def test_final_name_of_chainers_temporary_folder():
    assert snapshots.final_name('/r/tmpsnapshot_x/snapshot_epoch_3') == '/r/snapshot_epoch_3'
    assert snapshots.final_name('/r/run/model_final.npz') == '/r/run/model_final.npz'


def test_a_snapshot_keeps_the_settings_of_its_run(tmp_path):
    link = chainer.links.Linear(2, 3)
    path = str(tmp_path / 'snapshot_epoch_1')
    snapshots.snapshot_savefun(False, {'lr': 0.1, 'sizes': [2, 3]})(path, link)
    assert snapshots.snapshot_settings(path) == {'lr': 0.1, 'sizes': [2, 3]}
    with numpy.load(path) as arrays:
        numpy.testing.assert_array_equal(arrays['W'], link.W.array)
    snapshots.snapshot_savefun(True, None)(path, link)
    assert snapshots.snapshot_settings(path) is None
    (tmp_path / 'broken').write_bytes(b'not a zip')
    assert snapshots.snapshot_settings(str(tmp_path / 'broken')) is None
