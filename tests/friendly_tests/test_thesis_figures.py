"""Tests of Friendly.thesis_figures: the thesis JSON, image counts in words, README blocks."""
import json

import pytest

from Friendly import thesis_figures
from lenses_common import cli


def test_load_thesis_reads_numbers_and_refuses_others(tmp_path):
    path = tmp_path / 'thesis.json'
    path.write_text(json.dumps({'source': 'Tables 3.2, 3.3', 'networks': {
        'S': {'clean': 95.86, 'whitebox_fgsm': 3, 'blackbox_fgsm': None}}}))
    table, source = thesis_figures.load_thesis(str(path))
    assert table == {'S': {'clean': 95.86, 'whitebox_fgsm': 3.0, 'blackbox_fgsm': None}}
    assert source == 'Tables 3.2, 3.3'
    for bad, needle in (('{', 'is not JSON'), ('[]', 'no "networks"'),
                        ('{"networks": {"S": {"clean": "high"}}}', 'S.clean is not a number')):
        path.write_text(bad)
        with pytest.raises(ValueError, match=needle):
            thesis_figures.load_thesis(str(path))


def test_image_text():
    assert thesis_figures.image_text([10000]) == 'all 10,000'
    assert thesis_figures.image_text([2000, 500]) == 'the first 500/2,000'


def test_readme_block_is_checked_before_and_replaced_after(tmp_path, capsys):
    parser = cli.ArgumentParser(prog='prog')
    readme = tmp_path / 'README.md'
    readme.write_text('a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n')
    thesis_figures.check_readme(parser, str(readme), 't')
    thesis_figures.write_readme(parser, str(readme), 't', 'new table')
    assert readme.read_text() == 'a\n<!-- t:begin -->\nnew table\n<!-- t:end -->\nb\n'
    readme.write_text('no markers\n')
    with pytest.raises(SystemExit) as info:
        thesis_figures.check_readme(parser, str(readme), 't')
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('prog: error: --readme: ') and err.count('\n') == 1
