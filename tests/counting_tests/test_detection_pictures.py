"""Tests of the detection pictures (Counting.detection.pictures)."""

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)

from Counting import detection


def test_boxes_picture_draws_red_boxes():
    image = numpy.zeros((3, 20, 20), numpy.float32)
    pic = detection.boxes_picture(image, [[2, 3, 10, 12]], [[0, 0, 19, 19]])
    assert pic.shape == (20, 20, 3) and pic.dtype == numpy.uint8
    assert tuple(pic[3, 6]) == (255, 0, 0) and tuple(pic[12, 2]) == (255, 0, 0)
    assert tuple(pic[0, 10]) == (0, 255, 0)
    assert tuple(pic[7, 6]) == (0, 0, 0)
