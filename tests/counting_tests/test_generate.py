"""Tests of the generator command line (Counting.generate)."""

import pytest
from PIL import Image

from Counting import generate


def test_cli(helpers, tmp_path, capsys):
    out = tmp_path / 'cli'
    assert generate.main(['--out', str(out), '--count', '3', '--image-size', '64', '48',
                          '--types', 'sq', '--shape-limit', '4', '--scale', '5', '9',
                          '--seed', '3', '--no-progress', '--workers', '1']) == 0
    truths, _ = helpers.dataset_json(out)
    assert len(truths) == 3 and all(list(t) == ['sq'] for t in truths.values())
    with Image.open(out / '0000.png') as image:
        assert image.size == (64, 48)


@pytest.mark.parametrize('argv,option', [
    (['--count', '0'], '--count'),
    (['--count', '2', '--scale', '9', '3'], '--scale'),
    (['--count', '2', '--types', 'hex'], '--types'),
    (['--count', '2', '--types', 'sq', 'sq'], '--types'),
    (['--count', '2', '--min-gap', '-2'], '--min-gap'),
    (['--count', '2', '--color', '0', '0', '0'], '--color'),
    (['--count', 'x'], '--count'),
])
def test_cli_bad_options(tmp_path, capsys, argv, option):
    with pytest.raises(SystemExit) as info:
        generate.main(['--out', str(tmp_path)] + argv)
    assert info.value.code == 2
    assert option in capsys.readouterr().err


def test_cli_shape_fit_error_is_one_line(tmp_path, capsys):
    code = generate.main(['--out', str(tmp_path), '--count', '2', '--image-size', '20', '20',
                          '--scale', '30', '40', '--no-progress'])
    err = capsys.readouterr().err
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert 'error:' in last and '--scale' in last and 'Traceback' not in err
