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
    assert tuple(rgb[6, 5]) == (214, 39, 40)      # tab:red on the group's pixels
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
