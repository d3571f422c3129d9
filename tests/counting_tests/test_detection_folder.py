"""Tests of Counting.detection.folder: the options of a folder's detection, the annotated truth
of an image, and what detections.json and pictured.npz hold of one detection."""
import numpy
import pytest

from Counting.detection import Detections, Group, folder


def test_detection_options_fill_the_defaults_and_refuse_unknown_ones():
    options = folder.detection_options(method='upper', typed=True)
    assert list(options) == list(folder.OPTIONS)
    assert options['method'] == 'upper' and options['typed'] is True
    assert options['threshold'] == folder.OPTIONS['threshold'] and options['output'] == 'sum'
    with pytest.raises(ValueError, match='unknown detection option.*colour'):
        folder.detection_options(colour='red')


def test_truth_reads_boxes_and_types():
    annotations = {'a.png': [{'type': 'sq', 'box': [1, 2, 3, 4]},
                             {'type': 'tri', 'box': [5.0, 6, 7, 8]}],
                   'b.png': [{'box': [0, 0, 1, 1]}], 'c.png': [{'type': 'sq'}]}
    assert folder.truth(annotations, 'a.png', 'ann.json') == (
        [[1, 2, 3, 4], [5, 6, 7, 8]], ['sq', 'tri'])
    assert folder.truth(annotations, 'b.png', 'ann.json') == ([[0, 0, 1, 1]], None)
    with pytest.raises(ValueError, match='no entry for image d.png'):
        folder.truth(annotations, 'd.png', 'ann.json')
    with pytest.raises(ValueError, match='not a list of shapes with a "box"'):
        folder.truth(annotations, 'c.png', 'ann.json')


def test_image_record_holds_the_groups_their_masks_and_the_nan_pixels():
    mask = numpy.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    importance = numpy.ones((6, 8), numpy.float32)
    importance[5, 7] = numpy.nan
    empty = numpy.zeros((6, 8), bool)
    found = Detections([Group((1, 2), 0, mask, importance, type='sq'),
                        Group((4, 4), 1, empty, None, type='tri')],
                       outputs=numpy.array([0.4, 1.6]), count=2, counts=[1, 1],
                       saliency=numpy.full((6, 8), 0.5, numpy.float32))
    entry, arrays = folder.image_record(found, ['tri', 'sq'], seconds=0.123456)
    assert list(entry) == ['outputs', 'count', 'groups', 'seconds', 'counts']
    assert entry['outputs'] == [pytest.approx(0.4), pytest.approx(1.6)]
    assert entry['count'] == 2 and entry['seconds'] == 0.1235
    assert entry['counts'] == {'tri': 1, 'sq': 1}
    assert entry['groups'][0] == {'seed': [2, 1], 'channel': 0, 'box': [2, 1, 4, 2],
                                  'pixels': 6, 'type': 'sq'}
    assert entry['groups'][1]['box'] is None and entry['groups'][1]['pixels'] == 0
    assert arrays['masks'].shape == (2, 6, 8) and arrays['masks'].dtype == bool
    numpy.testing.assert_array_equal(arrays['masks'][0], mask)
    assert arrays['nan'].sum() == 1 and arrays['nan'][5, 7]
    assert arrays['saliency'].dtype == numpy.float32
    none, arrays = folder.image_record(Detections([], outputs=numpy.array([0.1]), count=0,
                                                  saliency=numpy.zeros((6, 8))), ['tri'])
    assert arrays['masks'].shape == (0, 6, 8) and 'counts' not in none
