"""Tests of the saliency command line (Counting.saliency), with a run folder of the small
counter on 90 x 90 images."""
import os

import numpy
import pytest
from PIL import Image

from lenses_common import compat  # noqa: F401  (before chainer)

from Counting import gradients, images
from Counting import saliency


def test_cli_writes_saliency_pictures(helpers, tmp_path):
    model = helpers.make_run(str(tmp_path / 'run'))
    helpers.make_images(str(tmp_path / 'images'), count=2)
    out = tmp_path / 'out'
    rc = saliency.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                        '--out', str(out), '--device', '@numpy'])
    assert rc == 0
    assert sorted(n for n in os.listdir(out) if not n.startswith('.')) == [
        '0000_saliency.png', '0001_saliency.png']
    x = images.load_image(str(tmp_path / 'images' / '0001.png'))
    expected = gradients.saliency_picture(gradients.saliency_map(model, x))
    numpy.testing.assert_array_equal(numpy.asarray(Image.open(out / '0001_saliency.png')),
                                     expected)


def test_cli_output_is_one_type(helpers, tmp_path, capsys):
    model = helpers.make_run(str(tmp_path / 'run'))
    helpers.make_images(str(tmp_path / 'images'), count=1)
    out = tmp_path / 'out'
    argv = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
            '--out', str(out), '--device', '@numpy']
    assert saliency.main(argv + ['--output', 'tri']) == 0
    x = images.load_image(str(tmp_path / 'images' / '0000.png'))
    numpy.testing.assert_array_equal(
        numpy.asarray(Image.open(out / '0000_saliency.png')),
        gradients.saliency_picture(gradients.saliency_map(model, x, 0)))
    with pytest.raises(SystemExit) as e:
        saliency.main(argv + ['--output', 'circle'])
    assert e.value.code == 2 and '--output' in capsys.readouterr().err


def test_cli_names_and_limit(helpers, tmp_path):
    helpers.make_run(str(tmp_path / 'run'))
    helpers.make_images(str(tmp_path / 'images'), count=3)
    out = tmp_path / 'out'
    assert saliency.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                          '--out', str(out), '--names', '0002.png', '0000.png',
                          '--limit', '1', '--device', '@numpy']) == 0
    assert [n for n in os.listdir(out) if not n.startswith('.')] == ['0002_saliency.png']


def test_cli_progress_is_one_line_off_a_terminal_and_none_with_no_progress(helpers, tmp_path,
                                                                            capsys):
    helpers.make_run(str(tmp_path / 'run'))
    helpers.make_images(str(tmp_path / 'images'), count=2)
    args = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'), '--device',
            '@numpy']
    assert saliency.main(args + ['--out', str(tmp_path / 'a')]) == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith('saliency: 2/2 image')]) == 1
    assert saliency.main(args + ['--out', str(tmp_path / 'b'), '--no-progress']) == 0
    assert 'saliency: 2/2' not in capsys.readouterr().err


def test_cli_errors_are_one_line(helpers, tmp_path, capsys):
    helpers.make_images(str(tmp_path / 'images'), count=2)
    with pytest.raises(SystemExit) as e:
        saliency.main(['--run', str(tmp_path / 'nowhere'), '--images', str(tmp_path / 'images'),
                       '--out', str(tmp_path / 'out'), '--device', '@numpy'])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert 'nowhere' in err and 'does not exist' in err and 'Traceback' not in err
    # An image the network was not trained for.
    helpers.make_run(str(tmp_path / 'run'), size=200)
    rc = saliency.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                        '--out', str(tmp_path / 'out'), '--device', '@numpy'])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.partition('error: ')[2].startswith('image ') and '90x90' in err and '200x200' in err
    with pytest.raises(SystemExit):
        saliency.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                       '--out', str(tmp_path / 'out'), '--names', 'nope.png'])
    assert 'nope.png' in capsys.readouterr().err
