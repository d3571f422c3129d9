"""Tests of the PNG writer (Counting.datasets.png)."""

import numpy
import pytest
from PIL import Image

from Counting.datasets import png, shapes
from Counting.datasets.generator import generate_dataset


@pytest.mark.parametrize('level', [0, 1, 6])
def test_png_encoders_round_trip(tmp_path, level):
    rng = numpy.random.default_rng(level)
    pixels = rng.integers(0, 256, size=(7, 11, 3), dtype=numpy.uint8)
    path = tmp_path / 'x.png'
    path.write_bytes(png.encode_png(pixels, level))
    with Image.open(path) as image:
        assert image.format == 'PNG' and image.mode == 'RGB' and image.size == (11, 7)
        numpy.testing.assert_array_equal(numpy.asarray(image), pixels)
    mask = (rng.random((9, 13)) < 0.4).astype(numpy.uint8)
    path.write_bytes(png.encode_mask_png(mask, (200, 0, 7), level))
    with Image.open(path) as image:
        numpy.testing.assert_array_equal(numpy.asarray(image),
                                         shapes.color_mask(mask, (200, 0, 7)))


def test_png_level_changes_bytes_not_pixels(tmp_path):
    kwargs = dict(image_size=(80, 60), shape_limit=5, scale=(6, 12), seed=4, workers=1,
                  progress=False)
    generate_dataset(tmp_path / 'l1', 3, **kwargs)
    generate_dataset(tmp_path / 'l6', 3, png_compress_level=6, **kwargs)
    for name in ('0000.png', '0001.png', '0002.png'):
        with Image.open(tmp_path / 'l1' / name) as a, Image.open(tmp_path / 'l6' / name) as b:
            numpy.testing.assert_array_equal(numpy.asarray(a), numpy.asarray(b))
        fast, default = (open(tmp_path / d / name, 'rb').read() for d in ('l1', 'l6'))
        assert fast != default
        # The zlib header after "IDAT" records the level class (RFC 1950 FLEVEL, the top two bits
        # of FLG): 0 for level 1 (fastest), 2 for level 6 (default).
        for data, flevel in ((fast, 0), (default, 2)):
            at = data.index(b'IDAT') + 4
            assert data[at + 1] >> 6 == flevel, name
