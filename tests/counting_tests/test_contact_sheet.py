"""Tests of the contact sheets: the drawing (Counting.detection.sheet), the rows read back from a
detection folder, and the command line (Counting.contact_sheet)."""
import numpy
import pytest
from PIL import Image

from Counting import contact_sheet
from Counting.detection import folder, sheet


def _entry(name='0000.png'):
    image = numpy.zeros((3, 20, 30), numpy.float32)
    image[2, 5:10, 5:10] = 255
    sal = numpy.zeros((20, 30), numpy.float32)
    sal[4:11, 4:11] = 1.0
    mask = numpy.zeros((20, 30), bool)
    mask[5:10, 5:7] = True
    return {'name': name, 'image': image, 'saliency': sal, 'groups': [(mask, [5, 5, 6, 9])],
            'truth_boxes': [[5, 5, 9, 9]], 'count': 1}


def test_groups_overlay_colours_each_group():
    entry = _entry()
    rgb = sheet.groups_overlay(entry['image'], entry['groups'])
    assert rgb.shape == (20, 30, 3) and rgb.dtype == numpy.uint8
    assert tuple(rgb[6, 5]) == (255, 127, 14)     # tab:orange on the group's pixels
    assert tuple(rgb[6, 8]) == (0, 0, 85)         # the rest of the shape at a third
    assert tuple(rgb[0, 0]) == (0, 0, 0)


def test_contact_sheet_has_one_row_per_image(tmp_path):
    one = str(tmp_path / 'one.png')
    four = str(tmp_path / 'four.png')
    sheet.write_contact_sheet(one, [_entry()], 'title')
    sheet.write_contact_sheet(four, [_entry(str(k)) for k in range(4)])
    h1, h4 = Image.open(one).size[1], Image.open(four).size[1]
    assert Image.open(one).size[0] == Image.open(four).size[0]
    assert h4 > 3 * h1 * 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == ['four.png', 'one.png']


def test_cli_replaces_its_own_sheet(helpers, tmp_path, capsys):
    # --out names a file: a second run replaces the sheet (run_all's reruns used to keep a stale
    # one, refused as "exists and is not a folder"); a folder there is refused in one line.
    helpers.make_run(str(tmp_path / 'run'))
    helpers.make_images(str(tmp_path / 'images'), count=2)
    sheet = tmp_path / 'sheet.png'
    argv = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'), '--limit', '1',
            '--method', 'upper', '--device', '@numpy', '--out', str(sheet)]
    assert contact_sheet.main(argv) == 0
    sheet.write_bytes(b'old')
    assert contact_sheet.main(argv) == 0
    assert sheet.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    (tmp_path / 'folder').mkdir()
    with pytest.raises(SystemExit) as e:
        contact_sheet.main(argv[:-1] + [str(tmp_path / 'folder')])
    assert e.value.code == 2 and 'is a folder' in capsys.readouterr().err


def _detections(nan=False):
    from Counting.detection import Detections, Group
    image = numpy.zeros((3, 40, 40), numpy.float32)
    image[2, 2:12, 2:12] = 255     # a square, found
    image[2, 20:30, 20:30] = 255   # a triangle's box, missed
    mask = numpy.zeros((40, 40), bool)
    mask[2:12, 2:11] = True
    stray = numpy.zeros((40, 40), bool)
    stray[35:38, 0:3] = True
    importance = numpy.ones((40, 40), numpy.float32)
    if nan:
        importance[30:33, 30:33] = numpy.nan
    groups = [Group((5, 5), 2, mask, importance, type='sq'),
              Group((36, 1), 2, stray, importance, type='tri')]
    found = Detections(groups, outputs=numpy.array([0.6, 1.4]), count=2, counts=[1, 1],
                       saliency=numpy.ones((40, 40), numpy.float32), method='second')
    return image, found


def _sheet_entry(name, image, found, truth_boxes, truth_types):
    """The row of ``found`` as the sheet reads it back: detections.json's entry with the truth,
    and pictured.npz's arrays (Counting.detection.folder.image_record)."""
    entry, arrays = folder.image_record(found, ['tri', 'sq'])
    entry.update(truth_boxes=truth_boxes, truth_types=truth_types)
    return sheet.sheet_entry(name, image, entry, arrays)


def test_entry_header_matches_and_nan():
    image, found = _detections(nan=True)
    entry = _sheet_entry('0007.png', image, found, [[2, 2, 11, 11], [20, 20, 29, 29]],
                         ['sq', 'tri'])
    assert sheet.row_header(entry) == (
        '0007.png: counted 2 (tri 1, sq 1) / true 2 (tri 1, sq 1)')
    assert entry['matched'] == [True, False] and entry['found'] == [True, False]
    assert entry['group_types'] == ['sq', 'tri']
    assert entry['nan'].sum() == 9
    rgb = sheet.groups_overlay(image, entry['groups'], entry['nan'])
    assert tuple(rgb[31, 31]) == sheet.NAN_RGB
    # untyped: the counter's rounded outputs per type, the loop's count in front
    found.counts = None
    entry = _sheet_entry('0007.png', image, found, [[2, 2, 11, 11]], ['sq'])
    assert sheet.row_header(entry) == (
        '0007.png: counted 2 (tri 1, sq 1) / true 1 (tri 0, sq 1)')


def test_sheet_draws_matched_unmatched_missed_and_nan_apart(tmp_path):
    """The boxes' colours are in the picture: matched lime, unmatched red, missed yellow, NaN
    magenta (with a legend entry only when there are NaN pixels)."""
    image, found = _detections(nan=True)
    entry = _sheet_entry('0007.png', image, found, [[2, 2, 11, 11], [20, 20, 29, 29]],
                         ['sq', 'tri'])
    path = str(tmp_path / 'sheet.png')
    sheet.write_contact_sheet(path, [entry], 'preset quick, counter softplus')
    rgb = numpy.asarray(Image.open(path).convert('RGB')).reshape(-1, 3)
    colours = {tuple(c) for c in numpy.unique(rgb, axis=0)}
    for want in ((0, 255, 0), (255, 0, 0), (255, 255, 0), (255, 0, 255)):
        assert want in colours
    image, found = _detections(nan=False)
    entry = _sheet_entry('0007.png', image, found, [[2, 2, 11, 11]], ['sq'])
    plain = str(tmp_path / 'plain.png')
    sheet.write_contact_sheet(plain, [entry])
    rgb = numpy.asarray(Image.open(plain).convert('RGB')).reshape(-1, 3)
    assert (255, 0, 255) not in {tuple(c) for c in numpy.unique(rgb, axis=0)}


def test_help_describes_out_as_a_file_and_limit_default(capsys):
    with pytest.raises(SystemExit):
        contact_sheet.main(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert 'the contact sheet PNG file to write' in text
    assert 'use at most this many images (default: 4)' in text


def test_rows_read_back_from_a_detection_folder_are_those_of_the_detection(helpers, tmp_path):
    """detect_folder saves the pictured images' rows; the sheet's rows read back from it hold the
    groups of a fresh detection, pixel for pixel, and the annotated boxes and counts."""
    from Counting import images, models
    from Counting.detection import detect_shapes
    helpers.make_run(str(tmp_path / 'run'))
    helpers.make_images(str(tmp_path / 'images'), count=2)
    model, settings = models.load_counter(str(tmp_path / 'run'))
    names = ['0000.png', '0001.png']
    annotations_path = str(tmp_path / 'images' / 'annotations.json')
    from Counting.datasets.annotations import load_annotations
    annotations = load_annotations(annotations_path)
    options = folder.detection_options(threshold=1e-9, count=2)
    folder.detect_folder(model, settings, str(tmp_path / 'run'), str(tmp_path / 'images'), names,
                         str(tmp_path / 'det'), options, annotations, annotations_path,
                         pictures=1, progress=False)
    rows = sheet.entries_from_folder(str(tmp_path / 'det'))
    assert [r['name'] for r in rows] == ['0000.png']   # only the pictured image
    x = images.load_image(str(tmp_path / 'images' / '0000.png'))
    fresh = detect_shapes(model, x, threshold=1e-9, count=2)
    row = rows[0]
    numpy.testing.assert_array_equal(row['image'], x)
    numpy.testing.assert_array_equal(row['saliency'], fresh.saliency)
    assert [box for _, box in row['groups']] == fresh.boxes
    for (mask, _), group in zip(row['groups'], fresh):
        numpy.testing.assert_array_equal(mask, group.mask)
    assert row['truth_boxes'] == [[10, 10, 40, 40], [50, 50, 80, 80]]
    assert row['truth_counts'] == [1, 1] and row['count'] == 2
    assert row['counted'] == [int(round(v)) for v in fresh.outputs]
    assert not row['nan'].any()
    path = str(tmp_path / 'sheet.png')
    sheet.write_contact_sheet(path, rows, 'title')
    assert Image.open(path).size[0] > 0
