"""Tests of Counting.outline_measure: outline, interior and background regions and their
saliency ratios."""
import numpy
import pytest

from Counting import outline_measure

SQUARE = numpy.array([[10, 10], [29, 10], [29, 29], [10, 29]], numpy.float64)  # pixels 10..29


def test_regions_of_a_square_by_hand():
    line, interior, background = outline_measure.outline_regions((50, 40), [SQUARE], width=2)
    assert line.shape == (40, 50)
    # The boundary lies between pixels 9 and 10 (and 29 and 30): the two pixels on each side of
    # it are outline, so the interior is rows and columns 12..27.
    expected = numpy.zeros((40, 50), bool)
    expected[12:28, 12:28] = True
    numpy.testing.assert_array_equal(interior, expected)
    # Outline: the inner ring (20^2 - 16^2 = 144), two rows/columns along each side outside
    # (4 x 2 x 20 = 160) and one diagonal pixel at each corner (distance sqrt 2; sqrt 5 > 2).
    assert line.sum() == 144 + 160 + 4
    assert line[9, 9] and not line[8, 9] and line[8, 15] and not line[7, 15]
    assert not (line & interior).any() and not (line & background).any()
    assert (line | interior | background).all()


def test_measure_and_ratios():
    line, interior, background = outline_measure.outline_regions((50, 40), [SQUARE])
    sal = numpy.where(line, 6.0, numpy.where(interior, 2.0, 3.0))
    m = outline_measure.outline_measure(sal, [SQUARE])
    assert m['outline'] == 6.0 and m['interior'] == 2.0 and m['background'] == 3.0
    assert m['outline_interior'] == 3.0 and m['outline_background'] == 2.0
    # A shape too thin for an interior, and a zero background, give None ratios.
    thin = numpy.array([[5, 5], [7, 5], [7, 7], [5, 7]], numpy.float64)
    outline = outline_measure.outline_regions((20, 20), [thin])[0]
    m = outline_measure.outline_measure(numpy.where(outline, 1.0, 0.0), [thin])
    assert m['interior'] is None and m['outline_interior'] is None
    assert m['outline_background'] is None
    total = outline_measure.summarize([{'outline_interior': 2.0, 'outline_background': 1.0},
                               {'outline_interior': 4.0, 'outline_background': None},
                               {'outline_interior': 9.0, 'outline_background': 3.0}])
    assert total['outline_interior_median'] == 4.0 and total['outline_interior_mean'] == 5.0
    assert total['outline_background_mean'] == 2.0 and total['images'] == 3


def test_polygons_of():
    ann = {'0000.png': [{'polygon': SQUARE.tolist(), 'box': [10, 10, 29, 29], 'type': 'sq'}]}
    numpy.testing.assert_array_equal(outline_measure.polygons_of(ann, '0000.png')[0], SQUARE)
    with pytest.raises(ValueError, match='0001.png'):
        outline_measure.polygons_of(ann, '0001.png')
