"""Tests of the dataset loader (Counting.datasets.loader)."""
import json
import os

import numpy
import pytest
from PIL import Image

import chainer

from Counting.datasets.loader import DatasetError, ShapesDataset, load_dataset
from Counting.datasets.generator import generate_dataset


SIZE = (64, 48)


def _truths(folder):
    with open(os.path.join(folder, 'truths.json')) as f:
        return json.load(f)


def _expect_error(folder, name, match, **kwargs):
    for workers in (1, 2):
        with pytest.raises(DatasetError) as info:
            load_dataset(folder, workers=workers, **kwargs)
        message = str(info.value)
        assert os.path.join(folder, name) in message
        assert '\n' not in message
        assert match in message


@pytest.mark.parametrize('workers', [1, 2])
def test_load_matches_files(source, workers):
    data = load_dataset(source, workers=workers)
    assert isinstance(data, chainer.dataset.DatasetMixin)
    truths = _truths(source)
    assert data.names == sorted(truths) and len(data) == 7
    assert data.types == ['tri', 'sq']
    assert data.image_size == SIZE
    assert data.images.dtype == numpy.uint8 and data.images.shape == (7, 3, 48, 64)
    for i, name in enumerate(data.names):
        image, counts = data[i]
        assert image.dtype == numpy.float32 and image.shape == (3, 48, 64)
        assert counts.dtype == numpy.float32
        numpy.testing.assert_array_equal(counts, [truths[name]['tri'], truths[name]['sq']])
        with Image.open(os.path.join(source, name)) as png:
            expected = numpy.asarray(png).transpose(2, 0, 1).astype(numpy.float32)
        numpy.testing.assert_array_equal(image, expected)
        assert data.count_of(i) == truths[name]
    assert 0 <= data[0][0].min() and data[0][0].max() <= 255
    numpy.testing.assert_allclose(data.mean_counts, data.counts.mean(axis=0))


def test_workers_give_the_same_dataset(source):
    one = load_dataset(source, workers=1)
    two = load_dataset(source, workers=2)
    numpy.testing.assert_array_equal(one.images, two.images)
    numpy.testing.assert_array_equal(one.counts, two.counts)


def test_types_subset_and_batches(source):
    data = load_dataset(source, types=['sq'], workers=1)
    truths = _truths(source)
    assert data.types == ['sq'] and data.counts.shape == (7, 1)
    numpy.testing.assert_array_equal(data.counts[:, 0], [truths[n]['sq'] for n in data.names])
    batch = chainer.dataset.concat_examples(
        next(chainer.iterators.SerialIterator(data, 3, repeat=False, shuffle=False)))
    assert batch[0].shape == (3, 3, 48, 64) and batch[1].shape == (3, 1)


def test_single_type_dataset(tmp_path):
    generate_dataset(tmp_path, 3, image_size=(32, 32), types=('sq',), shape_limit=3,
                     scale=(4, 6), workers=1, progress=False)
    data = load_dataset(tmp_path, workers=1)
    assert data.types == ['sq'] and data.counts.shape == (3, 1)
    with pytest.raises(DatasetError, match='truths.json.*tri'):
        load_dataset(tmp_path, types=['tri'], workers=1)


def test_truncated_png(copy):
    path = os.path.join(copy, '0003.png')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    _expect_error(copy, '0003.png', 'unreadable')


def test_garbage_png(copy):
    with open(os.path.join(copy, '0002.png'), 'wb') as f:
        f.write(b'this is not an image')
    _expect_error(copy, '0002.png', 'unreadable')


def test_wrong_size(copy):
    Image.new('RGB', (63, 48)).save(os.path.join(copy, '0005.png'))
    _expect_error(copy, '0005.png', 'expected 64x48')


def test_expected_size(source):
    with pytest.raises(DatasetError, match='0000.png: image is 64x48, expected 100x48'):
        load_dataset(source, expect_size=(100, 48), workers=1)


def test_wrong_mode(copy):
    Image.new('L', SIZE).save(os.path.join(copy, '0001.png'))
    _expect_error(copy, '0001.png', 'mode is L')


def test_missing_file(copy):
    os.remove(os.path.join(copy, '0006.png'))
    _expect_error(copy, '0006.png', 'does not exist')


def test_missing_truths(copy):
    os.remove(os.path.join(copy, 'truths.json'))
    _expect_error(copy, 'truths.json', 'missing')


@pytest.mark.parametrize('text,match', [
    ('{"0000.png": {"tri": 1, "sq": 2}', 'not valid JSON'),
    ('[]', 'must map'),
    ('{"0000.png": {"tri": 1.5, "sq": 2}}', 'non-negative integers'),
    ('{"0000.png": {"tri": -1, "sq": 2}}', 'non-negative integers'),
    ('{"0000.png": {"circle": 1}}', 'non-negative integers'),
    ('{"../x.png": {"tri": 1}}', 'must map'),
    ('{"0000.png": {"tri": 1, "sq": 2}, "0001.png": {"tri": 1}}', 'counts'),
])
def test_malformed_truths(copy, text, match):
    with open(os.path.join(copy, 'truths.json'), 'w') as f:
        f.write(text)
    _expect_error(copy, 'truths.json', match)


def test_not_a_folder(tmp_path):
    with pytest.raises(DatasetError, match='not a folder'):
        load_dataset(tmp_path / 'nowhere')


def test_dataset_constructor_checks():
    with pytest.raises(ValueError, match='uint8'):
        ShapesDataset(numpy.zeros((2, 3, 4, 4), numpy.float32), numpy.zeros((2, 2)),
                      ['a', 'b'], ['tri', 'sq'])
    with pytest.raises(ValueError, match='counts'):
        ShapesDataset(numpy.zeros((2, 3, 4, 4), numpy.uint8), numpy.zeros((2, 1)),
                      ['a', 'b'], ['tri', 'sq'])
