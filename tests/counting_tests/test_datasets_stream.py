"""Tests of the streaming dataset (Counting.datasets.stream, ``Counting.train --stream``)."""
import os
import shutil
import time
import types

import numpy
import pytest
from PIL import Image

from Counting import train
from Counting.datasets.generator import generate_dataset
from Counting.datasets.loader import DatasetError, load_dataset
from Counting.datasets.stream import StreamingShapesDataset, stream_dataset, stream_iterator
from lenses_common.training import TrainingScaffold

SIZE = (64, 48)
N = 10


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('data'))
    generate_dataset(folder, N, image_size=SIZE, shape_limit=5, scale=(5, 10), seed=3,
                     workers=1, progress=False)
    return folder


@pytest.fixture(scope='module')
def train_folder(tmp_path_factory):
    """12 images of 100 x 100, large enough for the convolutional network."""
    folder = str(tmp_path_factory.mktemp('train'))
    generate_dataset(folder, 12, image_size=(100, 100), scale=(12, 16), shape_limit=4, seed=0,
                     workers=1, progress=False)
    return folder


def _in_memory_iterator(data, batchsize, seed):
    """The iterator Counting.train builds without --stream (TrainingScaffold.train_iterator)."""
    one_process = types.SimpleNamespace(train_dataset=lambda d: d, local_batchsize=lambda b: b,
                                        check_batchsize=lambda b, n: None)
    return TrainingScaffold.train_iterator(one_process, data, batchsize, seed)


def test_examples_equal_the_in_memory_ones(source):
    memory = load_dataset(source, workers=1)
    stream = stream_dataset(source)
    assert isinstance(stream, StreamingShapesDataset) and not hasattr(stream, 'images')
    assert stream.names == memory.names and stream.types == memory.types
    assert stream.image_size == memory.image_size == SIZE and len(stream) == N
    numpy.testing.assert_array_equal(stream.mean_counts, memory.mean_counts)
    for i in range(N):
        (x0, t0), (x1, t1) = memory[i], stream[i]
        assert x1.dtype == numpy.float32 and x1.shape == (3, SIZE[1], SIZE[0])
        numpy.testing.assert_array_equal(x1, x0)
        numpy.testing.assert_array_equal(t1, t0)
        assert stream.count_of(i) == memory.count_of(i)
    sq = stream_dataset(source, types=['sq'])
    numpy.testing.assert_array_equal(sq.counts[:, 0], memory.counts[:, 1])


@pytest.mark.parametrize('batchsize,processes,prefetch', [(4, 2, 1), (3, 1, 1), (3, 2, 6)])
def test_batches_and_order_equal_the_in_memory_ones(source, batchsize, processes, prefetch):
    """Three epochs of 10 images, batches crossing the epoch ends: the same images, counts and
    epoch bookkeeping as the SerialIterator of the in-memory dataset, in the seeded order, however
    far the prefetch runs ahead of the training."""
    seed = 7
    memory = load_dataset(source, workers=1)
    serial = _in_memory_iterator(memory, batchsize, seed)
    streamed = stream_iterator(stream_dataset(source), batchsize, seed, n_processes=processes,
                               n_prefetch=prefetch)
    expected_order = numpy.concatenate([numpy.random.RandomState([seed, e]).permutation(N)
                                        for e in range(4)])
    try:
        seen = 0
        while serial.epoch < 3:
            a, b = next(serial), next(streamed)
            if seen == 0:
                time.sleep(0.2)     # let the prefetch thread run ahead
            assert (serial.epoch, serial.is_new_epoch) == (streamed.epoch, streamed.is_new_epoch)
            assert len(a) == len(b) == batchsize
            for (x0, t0), (x1, t1), index in zip(a, b, expected_order[seen:seen + batchsize]):
                numpy.testing.assert_array_equal(x1, x0)
                numpy.testing.assert_array_equal(t1, t0)
                numpy.testing.assert_array_equal(t1, memory.counts[index])
                numpy.testing.assert_array_equal(x1, memory.images[index])
            seen += batchsize
    finally:
        streamed.finalize()


def _truncate(path):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def _one_line_naming(error, path):
    message = str(error.value)
    assert path in message and '\n' not in message
    return message


def test_truncated_png_fails_when_read_naming_the_file(copy):
    path = os.path.join(copy, '0004.png')
    _truncate(path)
    data = stream_dataset(copy)   # the header is whole: found when the pixels are decoded
    data[3]
    with pytest.raises(DatasetError) as info:
        data[4]
    assert 'unreadable' in _one_line_naming(info, path)
    # In a worker process, the error comes back to the training process (no hang).
    iterator = stream_iterator(data, N, seed=0, n_processes=2)
    try:
        with pytest.raises(DatasetError) as info:
            next(iterator)
        _one_line_naming(info, path)
    finally:
        iterator.finalize()


@pytest.mark.parametrize('damage,match', [
    (lambda p: open(p, 'wb').write(b'not an image'), 'unreadable'),
    (lambda p: Image.new('L', SIZE).save(p), 'mode is L'),
    (lambda p: Image.new('RGB', (63, 48)).save(p), 'expected 64x48 like'),
    (os.remove, 'does not exist'),
])
def test_bad_header_fails_at_once_naming_the_file(copy, damage, match):
    path = os.path.join(copy, '0006.png')
    damage(path)
    with pytest.raises(DatasetError) as info:
        stream_dataset(copy)
    assert match in _one_line_naming(info, path)


def test_train_stream_gives_the_same_weights(tmp_path, train_folder):
    """Two short epochs (12 images, batch 5: a batch crosses the epoch end), with and without
    --stream: the same batches in the same order, so bit-identical weights."""
    folder = train_folder
    weights = []
    for extra in ([], ['--stream']):
        out = str(tmp_path / ('run' + ''.join(extra)))
        assert train.main(['--train', folder, '--out', out, '--batchsize', '5', '--epoch', '2',
                           '--lr', '1e-4', '--no-progress', '--device', '@numpy',
                           '--workers', '2', '--seed', '1'] + extra) == 0
        with numpy.load(os.path.join(out, 'model_final.npz')) as npz:
            weights.append({k: npz[k] for k in npz.files})
    assert sorted(weights[0]) == sorted(weights[1])
    for key in weights[0]:
        numpy.testing.assert_array_equal(weights[1][key], weights[0][key], err_msg=key)
    assert any(not numpy.allclose(v, 0) for v in weights[0].values())


def test_train_stream_damaged_png_is_a_one_line_error(tmp_path, train_folder, capsys):
    folder = str(tmp_path / 'train')
    shutil.copytree(train_folder, folder)
    path = os.path.join(folder, '0002.png')
    _truncate(path)
    with pytest.raises(SystemExit) as info:
        train.main(['--train', folder, '--out', str(tmp_path / 'run'), '--batchsize', '5',
                    '--epoch', '1', '--no-progress', '--device', '@numpy', '--stream',
                    '--arch', 'convolutional'])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].partition(': error: ')[2].startswith(path) and 'unreadable' in err[-1]
    assert not any('Traceback' in line for line in err)


def test_stream_run_resumes_to_the_in_memory_weights(tmp_path, train_folder):
    """A --stream run interrupted after its second epoch and resumed (the iterator's state comes
    from the snapshot) ends with the weights of an uninterrupted in-memory run."""
    common = ['--train', train_folder, '--batchsize', '5', '--epoch', '3', '--lr', '1e-3',
              '--optimizer', 'rmsprop', '--snapshot-interval', '1', '--seed', '2',
              '--no-progress', '--device', '@numpy', '--workers', '2']
    whole, part = str(tmp_path / 'whole'), str(tmp_path / 'part')
    assert train.main(common + ['--out', whole]) == 0
    assert train.main(common + ['--out', part, '--stream']) == 0
    snapshots = sorted((int(n.rsplit('_', 1)[1]), n) for n in os.listdir(part)
                       if n.startswith('snapshot_epoch_'))
    assert len(snapshots) == 2
    for _, name in snapshots[1:]:
        os.remove(os.path.join(part, name))
    os.remove(os.path.join(part, 'model_final.npz'))
    assert train.main(common + ['--out', part, '--stream', '--resume', 'auto']) == 0
    with numpy.load(os.path.join(whole, 'model_final.npz')) as a, \
            numpy.load(os.path.join(part, 'model_final.npz')) as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            numpy.testing.assert_array_equal(b[key], a[key], err_msg=key)
