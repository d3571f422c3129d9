"""Tests of the outline command line (Counting.outline)."""
import json

import pytest

from Counting import gradients, images, outline, outline_measure


def test_cli_measures_a_run_without_an_out_option(helpers, tmp_path, capsys):
    # Counting.outline has no --out; it used to crash on the image selection shared with
    # Counting.saliency, which checks --out.
    model = helpers.make_run(str(tmp_path / 'run'))
    annotations = helpers.make_images(str(tmp_path / 'images'), count=2)
    report = tmp_path / 'outline.json'
    assert outline.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                         '--limit', '1', '--device', '@numpy', '--json', str(report)]) == 0
    assert '0000.png: outline/interior' in capsys.readouterr().out
    with open(report) as f:
        got = json.load(f)
    assert list(got['images']) == ['0000.png']
    x = images.load_image(str(tmp_path / 'images' / '0000.png'))
    want = outline_measure.outline_measure(gradients.saliency_map(model, x),
                                   outline_measure.polygons_of(annotations, '0000.png'))
    assert got['images']['0000.png']['outline'] == pytest.approx(want['outline'])
    # The second figure is the same measure on the picture the PNG holds (tenth root, 0..255).
    picture = gradients.saliency_picture(gradients.saliency_map(model, x))
    want = outline_measure.outline_measure(
        picture, outline_measure.polygons_of(annotations, '0000.png'))
    assert got['images']['0000.png']['picture'] == pytest.approx(want)
    assert got['picture_summary']['outline_interior_median'] == pytest.approx(
        want['outline_interior'])


def test_help_states_the_limit_default(capsys):
    with pytest.raises(SystemExit):
        outline.main(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert '(default: all images of --images)' in text
