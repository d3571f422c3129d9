"""Tests of Counting.images: reading test images and writing pictures."""
import numpy
import pytest
from PIL import Image

from Counting import images


def test_load_image_and_png_round_trip(tmp_path):
    rgb = numpy.random.RandomState(0).randint(0, 256, (4, 5, 3)).astype(numpy.uint8)
    Image.fromarray(rgb).save(tmp_path / 'a.png')
    x = images.load_image(str(tmp_path / 'a.png'))
    assert x.dtype == numpy.float32 and x.shape == (3, 4, 5)
    numpy.testing.assert_array_equal(x, rgb.transpose(2, 0, 1))
    numpy.testing.assert_array_equal(images.image_to_rgb(x), rgb)
    gray = numpy.arange(20, dtype=numpy.uint8).reshape(4, 5)
    images.save_png(str(tmp_path / 'g.png'), gray)
    numpy.testing.assert_array_equal(numpy.asarray(Image.open(tmp_path / 'g.png')), gray)
    with pytest.raises(ValueError, match='does not exist'):
        images.load_image(str(tmp_path / 'missing.png'))


def test_image_names_and_the_trained_size(tmp_path, helpers):
    helpers.make_images(str(tmp_path), count=2)
    (tmp_path / '.hidden.png').write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('x')
    assert images.image_names(str(tmp_path)) == ['0000.png', '0001.png']
    assert images.stem('a/b/0001.png') == '0001'
    assert images.expected_image_size({'image_size': [90, 60]}) == (60, 90)
    assert images.expected_image_size({'image_size': 7}) == (7, 7)
    assert images.expected_image_size({}) is None
    x = images.read_checked_image(str(tmp_path), '0000.png', {'image_size': [90, 90]})
    assert x.shape == (3, 90, 90) and x.dtype == numpy.float32
    with pytest.raises(ValueError, match='90x90 pixels but the network was trained on 80x90'):
        images.read_checked_image(str(tmp_path), '0000.png', {'image_size': [80, 90]})
