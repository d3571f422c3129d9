"""Tests of the detection command line (Counting.detect)."""
import json
import os

import numpy
import pytest
from PIL import Image

from lenses_common import compat  # noqa: F401  (before chainer)

from Counting import detect
from Counting import detection, gradients, images


def test_cli_second_derivative(helpers, tmp_path):
    model = helpers.make_run(str(tmp_path / 'run'))
    helpers.make_images(str(tmp_path / 'images'))
    out = tmp_path / 'out'
    rc = detect.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                      '--out', str(out), '--count', '2', '--threshold', '1e-9',
                      '--device', '@numpy'])
    assert rc == 0
    assert sorted(n for n in os.listdir(out) if not n.startswith('.')) == [
        '0000_boxes.png', '0000_group0_importance.png', '0000_group0_mask.png',
        '0000_group1_importance.png', '0000_group1_mask.png', 'detections.json', 'pictured.npz']
    with open(out / 'detections.json') as f:
        result = json.load(f)
    entry = result['images']['0000.png']
    x = images.load_image(str(tmp_path / 'images' / '0000.png'))
    expected = detection.detect_shapes(model, x, threshold=1e-9, count=2)
    assert [g['box'] for g in entry['groups']] == [g.box for g in expected]
    assert [g['seed'] for g in entry['groups']] == [[g.seed[1], g.seed[0]] for g in expected]
    for k, group in enumerate(expected):
        mask = numpy.asarray(Image.open(out / '0000_group{}_mask.png'.format(k)))
        numpy.testing.assert_array_equal(mask == 255, group.mask)
        numpy.testing.assert_array_equal(
            numpy.asarray(Image.open(out / '0000_group{}_importance.png'.format(k))),
            gradients.saliency_picture(group.importance))
    assert entry['truth_boxes'] == [[10, 10, 40, 40], [50, 50, 80, 80]]
    assert entry['truth_types'] == ['sq', 'tri']
    assert entry['score'] == detection.score_boxes(expected.boxes, entry['truth_boxes'],
                                                   truth_types=['sq', 'tri'])
    assert 'type_accuracy' not in entry['score']  # untyped groups have no type
    assert result['scores']['truth'] == 2 and result['scores']['images'] == 1
    assert result['settings']['method'] == 'second'


def test_cli_relu_run_refuses_second_but_runs_kmeans(helpers, tmp_path, capsys):
    helpers.make_run(str(tmp_path / 'run'), activation='relu')
    helpers.make_images(str(tmp_path / 'images'))
    args = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
            '--out', str(tmp_path / 'out'), '--count', '2', '--device', '@numpy']
    assert detect.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert ': error: ' in err[-1] and 'uses relu' in err[-1] and 'smooth activation' in err[-1]
    assert detect.main(args + ['--method', 'kmeans']) == 0
    with open(tmp_path / 'out' / 'detections.json') as f:
        assert json.load(f)['settings']['method'] == 'kmeans'


def test_cli_errors(helpers, tmp_path, capsys):
    helpers.make_images(str(tmp_path / 'images'))
    base = ['--images', str(tmp_path / 'images'), '--out', str(tmp_path / 'out')]
    with pytest.raises(SystemExit) as e:
        detect.main(['--run', str(tmp_path / 'missing')] + base)
    assert e.value.code == 2 and 'missing' in capsys.readouterr().err
    helpers.make_run(str(tmp_path / 'run'))
    with pytest.raises(SystemExit):
        detect.main(['--run', str(tmp_path / 'run'), '--threshold', '-1'] + base)
    assert 'threshold' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        detect.main(['--run', str(tmp_path / 'run'), '--annotations',
                     str(tmp_path / 'none.json')] + base)
    assert 'none.json' in capsys.readouterr().err
    helpers.make_run(str(tmp_path / 'run100'), size=100)
    assert detect.main(['--run', str(tmp_path / 'run100')] + base) == 2
    assert 'trained on 100x100' in capsys.readouterr().err


def test_cli_auto_threshold_and_picture_limit(helpers, tmp_path):
    helpers.make_run(str(tmp_path / 'run'))
    helpers.make_images(str(tmp_path / 'images'))
    out = tmp_path / 'out'
    rc = detect.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                      '--out', str(out), '--count', '2', '--threshold', 'auto',
                      '--auto-rule', 'quantile', '--pictures', '0', '--device', '@numpy'])
    assert rc == 0
    assert sorted(n for n in os.listdir(out) if not n.startswith('.')) == [
        'detections.json', 'pictured.npz']
    with open(out / 'detections.json') as f:
        result = json.load(f)
    assert result['settings']['threshold'] == 'auto'
    assert result['settings']['auto_rule'] == 'quantile'
    assert result['settings']['auto_level'] == detection.AUTO_LEVELS['quantile']
    assert result['scores']['truth'] == 2


def test_cli_bad_auto_options(helpers, tmp_path, capsys):
    helpers.make_images(str(tmp_path / 'images'))
    helpers.make_run(str(tmp_path / 'run'))
    base = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
            '--out', str(tmp_path / 'out')]
    for extra, needle in ((['--threshold', 'automatic'], 'auto'),
                          (['--threshold', 'auto', '--auto-level', '2'], '--auto-level'),
                          (['--pictures', '-1'], '--pictures')):
        with pytest.raises(SystemExit) as e:
            detect.main(base + extra)
        err = capsys.readouterr().err
        assert e.value.code == 2 and needle in err and 'Traceback' not in err


def test_cli_output_and_typed(helpers, tmp_path, capsys):
    """--output sq differentiates the square output alone; --typed runs once per output with its
    own count, labels the groups and scores per-type recall and type accuracy."""
    from Counting.detection import detect_typed
    model = helpers.make_run(str(tmp_path / 'run'))
    helpers.make_images(str(tmp_path / 'images'))
    base = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
            '--threshold', '1e-9', '--device', '@numpy', '--limit', '1']
    assert detect.main(base + ['--out', str(tmp_path / 'sq'), '--output', 'sq']) == 0
    x = images.load_image(str(tmp_path / 'images' / '0000.png'))
    with open(tmp_path / 'sq' / 'detections.json') as f:
        entry = json.load(f)['images']['0000.png']
    alone = detection.detect_shapes(model, x, threshold=1e-9, output=1)
    assert entry['count'] == alone.count == int(round(entry['outputs'][1]))
    assert [g['box'] for g in entry['groups']] == [g.box for g in alone]
    assert detect.main(base + ['--out', str(tmp_path / 'typed'), '--typed']) == 0
    with open(tmp_path / 'typed' / 'detections.json') as f:
        result = json.load(f)
    entry = result['images']['0000.png']
    both = detect_typed(model, x, ['tri', 'sq'], threshold=1e-9)
    assert entry['counts'] == {'tri': both.counts[0], 'sq': both.counts[1]}
    assert [(g['type'], g['box']) for g in entry['groups']] == [(g.type, g.box) for g in both]
    assert entry['score'] == detection.score_boxes(both.boxes, entry['truth_boxes'],
                                                   predicted_types=both.box_types,
                                                   truth_types=['sq', 'tri'])
    assert set(result['scores']['recall_by_type']) == {'sq', 'tri'}
    assert 'type_accuracy' in result['scores']
    capsys.readouterr()
    for bad in (['--output', 'circle'], ['--typed', '--output', 'tri'],
                ['--typed', '--count', '2']):
        with pytest.raises(SystemExit) as e:
            detect.main(base + ['--out', str(tmp_path / 'bad')] + bad)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err
