import numpy
import pytest
from PIL import Image

from Counting import contact_sheet


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
    rgb = contact_sheet.groups_overlay(entry['image'], entry['groups'])
    assert rgb.shape == (20, 30, 3) and rgb.dtype == numpy.uint8
    assert tuple(rgb[6, 5]) == (255, 127, 14)     # tab:orange on the group's pixels
    assert tuple(rgb[6, 8]) == (0, 0, 85)         # the rest of the shape at a third
    assert tuple(rgb[0, 0]) == (0, 0, 0)


def test_contact_sheet_has_one_row_per_image(tmp_path):
    one = str(tmp_path / 'one.png')
    four = str(tmp_path / 'four.png')
    contact_sheet.write_contact_sheet(one, [_entry()], 'title')
    contact_sheet.write_contact_sheet(four, [_entry(str(k)) for k in range(4)])
    h1, h4 = Image.open(one).size[1], Image.open(four).size[1]
    assert Image.open(one).size[0] == Image.open(four).size[0]
    assert h4 > 3 * h1 * 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == ['four.png', 'one.png']


def test_cli_replaces_its_own_sheet(tmp_path, capsys):
    # --out names a file: a second run replaces the sheet (run_all's reruns used to keep a stale
    # one, refused as "exists and is not a folder"); a folder there is refused in one line.
    from tests.counting_tests.test_saliency import make_images, make_run
    make_run(str(tmp_path / 'run'))
    make_images(str(tmp_path / 'images'), count=2)
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


def test_entry_header_matches_and_nan():
    image, found = _detections(nan=True)
    entry = contact_sheet.sheet_entry('0007.png', image, found, [[2, 2, 11, 11], [20, 20, 29, 29]],
                                      ['sq', 'tri'])
    assert contact_sheet.row_header(entry) == (
        '0007.png: counted 2 (tri 1, sq 1) / true 2 (tri 1, sq 1)')
    assert entry['matched'] == [True, False] and entry['found'] == [True, False]
    assert entry['group_types'] == ['sq', 'tri']
    assert entry['nan'].sum() == 9
    rgb = contact_sheet.groups_overlay(image, entry['groups'], entry['nan'])
    assert tuple(rgb[31, 31]) == contact_sheet.NAN_RGB
    # untyped: the counter's rounded outputs per type, the loop's count in front
    found.counts = None
    entry = contact_sheet.sheet_entry('0007.png', image, found, [[2, 2, 11, 11]], ['sq'])
    assert contact_sheet.row_header(entry) == (
        '0007.png: counted 2 (tri 1, sq 1) / true 1 (tri 0, sq 1)')


def test_sheet_draws_matched_unmatched_missed_and_nan_apart(tmp_path):
    """The boxes' colours are in the picture: matched lime, unmatched red, missed yellow, NaN
    magenta (with a legend entry only when there are NaN pixels)."""
    image, found = _detections(nan=True)
    entry = contact_sheet.sheet_entry('0007.png', image, found, [[2, 2, 11, 11], [20, 20, 29, 29]],
                                      ['sq', 'tri'])
    path = str(tmp_path / 'sheet.png')
    contact_sheet.write_contact_sheet(path, [entry], 'preset quick, counter softplus')
    rgb = numpy.asarray(Image.open(path).convert('RGB')).reshape(-1, 3)
    colours = {tuple(c) for c in numpy.unique(rgb, axis=0)}
    for want in ((0, 255, 0), (255, 0, 0), (255, 255, 0), (255, 0, 255)):
        assert want in colours
    image, found = _detections(nan=False)
    entry = contact_sheet.sheet_entry('0007.png', image, found, [[2, 2, 11, 11]], ['sq'])
    plain = str(tmp_path / 'plain.png')
    contact_sheet.write_contact_sheet(plain, [entry])
    rgb = numpy.asarray(Image.open(plain).convert('RGB')).reshape(-1, 3)
    assert (255, 0, 255) not in {tuple(c) for c in numpy.unique(rgb, axis=0)}


def test_help_describes_out_as_a_file_and_limit_default(capsys):
    with pytest.raises(SystemExit):
        contact_sheet.main(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert 'the contact sheet PNG file to write' in text
    assert 'use at most this many images (default: 4)' in text
