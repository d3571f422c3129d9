"""Tests of Friendly.thesis_table and lenses_common.provenance's README blocks, on hand-made files
whose means, standard deviations and inside/outside verdicts are worked out by hand below."""
import json

import pytest

from Friendly import thesis_summary
from Friendly import thesis_table
from lenses_common import provenance

THESIS = {'source': 'hand-made', 'held_back': {'PD': 'later'},
          'networks': {'S': {'clean': 95.86, 'whitebox_fgsm': 46.16, 'blackbox_fgsm': 45.28},
                       'RS': {'clean': 97.8, 'whitebox_fgsm': 43.3, 'blackbox_fgsm': 45.27}}}
HEADER = 'seed,network,clean_pct,fgsm_white_pct,fgsm_black_pct\n'


@pytest.fixture
def files(tmp_path):
    a = tmp_path / 'a.csv'
    a.write_text(HEADER + '0,S,95.90,53.12,50.06\n0,RS,97.46,43.04,48.08\n0,PD,90.00,1.00,30.00\n'
                 '1,S,95.56,50.74,48.32\n')
    b = tmp_path / 'b.csv'
    b.write_text(HEADER + '2,S,96.00,47.00,46.50\n')
    thesis = tmp_path / 'thesis.json'
    thesis.write_text(json.dumps(THESIS))
    return tmp_path, str(a), str(b), str(thesis)


def test_inside_widens_by_one_point():
    assert thesis_summary.inside(46.0, [47.0, 50.0]) == 'yes'      # exactly min - 1
    assert thesis_summary.inside(51.0, [47.0, 50.0]) == 'yes'      # exactly max + 1
    assert thesis_summary.inside(45.99, [47.0, 50.0]) == 'no'
    assert thesis_summary.inside(51.01, [47.0, 50.0]) == 'no'
    assert thesis_summary.inside(None, [47.0]) == 'not given'
    assert thesis_summary.inside(47.0, []) == '-'


def test_mean_sd_min_max_and_inside_by_hand(files, capsys):
    tmp_path, a, b, thesis = files
    out = tmp_path / 'table.md'
    summary = thesis_table.main(['--results', a, b, '--thesis', thesis, '--out', str(out)])
    s = summary['S']
    assert s['seeds'] == [0, 1, 2]
    # clean 95.90, 95.56, 96.00: mean 287.46 / 3 = 95.82; deviations 0.08, -0.26, 0.18,
    # squares 0.0064 + 0.0676 + 0.0324 = 0.1064, / 2 = 0.0532, sd 0.23065
    c = s['clean_pct']
    assert c['mean'] == pytest.approx(95.82) and c['sd'] == pytest.approx(0.23065, abs=1e-5)
    assert (c['min'], c['max'], c['n']) == (95.56, 96.00, 3)
    assert c['inside'] == 'yes'
    # white-box 53.12, 50.74, 47.00: mean 50.28667; deviations 2.83333, 0.45333, -3.28667,
    # squares 8.02778 + 0.20551 + 10.80218 = 19.03547, / 2 = 9.51773, sd 3.08508;
    # 46.16 >= 47.00 - 1: inside
    w = s['fgsm_white_pct']
    assert w['mean'] == pytest.approx(50.28667, abs=1e-5)
    assert w['sd'] == pytest.approx(3.08508, abs=1e-5)
    assert w['inside'] == 'yes'
    # black-box 50.06, 48.32, 46.50: mean 48.29333; deviations 1.76667, 0.02667, -1.79333,
    # squares 3.12111 + 0.00071 + 3.21604 = 6.33787, / 2 = 3.16893, sd 1.78015;
    # 45.28 < 46.50 - 1: outside
    k = s['fgsm_black_pct']
    assert k['mean'] == pytest.approx(48.29333, abs=1e-5)
    assert k['sd'] == pytest.approx(1.78015, abs=1e-5)
    assert k['inside'] == 'no'
    # one seed: no standard deviation; 97.80 in [96.46, 98.46], 48.08 - 1 > 45.27
    r = summary['RS']
    assert r['clean_pct']['sd'] is None and r['clean_pct']['n'] == 1
    assert r['clean_pct']['inside'] == 'yes' and r['fgsm_black_pct']['inside'] == 'no'
    assert summary['PD']['clean_pct']['inside'] == 'not given'
    text = out.read_text()
    assert '| S | 0, 1, 2 | 95.86 | 95.82 ± 0.23 (95.56–96.00, n 3) | yes | 46.16 | ' \
           '50.29 ± 3.09 (47.00–53.12, n 3) | yes | 45.28 | 48.29 ± 1.78 (46.50–50.06, n 3) | ' \
           'no |' in text
    assert '| RS | 0 | 97.80 | 97.46 (97.46–97.46, n 1) | yes |' in text
    assert '| PD | 0 | not given | 90.00 (90.00–90.00, n 1) | not given |' in text
    # thesis column order: S, RS before PD
    assert text.index('| S |') < text.index('| RS |') < text.index('| PD |')
    assert 'python -m Friendly.thesis_table --results' in text


def test_a_copied_results_csv_keeps_its_machine_and_image_count(tmp_path, capsys):
    """A results.csv copied away from its run folder still says what trained it and on how many
    test images it was evaluated (its trained_on and test_images columns)."""
    lone = tmp_path / 'record.csv'
    lone.write_text(HEADER.strip() + ',test_images,trained_on\n'
                    '0,S,95.90,53.12,50.06,10000,"Some CPU, 2 logical CPUs, BLAS 1 thread"\n'
                    '0,RS,97.46,43.04,48.08,10000,"Some CPU, 2 logical CPUs, BLAS 1 thread"\n')
    thesis = tmp_path / 'thesis.json'
    thesis.write_text(json.dumps(THESIS))
    out = tmp_path / 'table.md'
    thesis_table.main(['--results', str(lone), '--thesis', str(thesis), '--out', str(out)])
    text = out.read_text()
    assert 'Networks trained on: Some CPU, 2 logical CPUs, BLAS 1 thread.' in text
    assert 'on all 10,000 MNIST test images' in text
    lone.write_text(HEADER.strip() + ',test_images\n0,S,95.90,53.12,50.06,many\n')
    err = _error(capsys, ['--results', str(lone), '--thesis', str(thesis), '--out', str(out)])
    assert 'test_images is not an integer' in err and 'line 2' in err


def _error(capsys, argv):
    with pytest.raises(SystemExit) as info:
        thesis_table.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err and len(err.splitlines()) == 1
    return err


def test_bad_input_is_one_line(files, capsys):
    tmp_path, a, b, thesis = files
    out = str(tmp_path / 't.md')
    err = _error(capsys, ['--results', a, a, '--thesis', thesis, '--out', out])
    assert 'seed 0 network S' in err and a in err
    dup = tmp_path / 'dup.csv'
    dup.write_text(HEADER + '1,S,1,2,3\n')
    assert 'seed 1 network S' in _error(capsys, ['--results', a, str(dup), '--thesis', thesis,
                                                  '--out', out])
    assert 'nope.csv' in _error(capsys, ['--results', str(tmp_path / 'nope.csv'), '--thesis',
                                         thesis, '--out', out])
    bad = tmp_path / 'bad.csv'
    bad.write_text(HEADER + '0,S,x,2,3\n')
    assert 'clean_pct' in _error(capsys, ['--results', str(bad), '--thesis', thesis, '--out',
                                          out])
    wrong = tmp_path / 'wrong.json'
    wrong.write_text('{"rows": []}')
    assert 'networks' in _error(capsys, ['--results', a, '--thesis', str(wrong), '--out', out])
    assert not (tmp_path / 't.md').exists()


def test_readme_block_is_replaced_and_stays_replaceable(files, capsys):
    tmp_path, a, b, thesis = files
    readme = tmp_path / 'README.md'
    begin, end = provenance.markers('thesis-table')
    readme.write_text('# Title\n\nbefore\n\n{}\nold table\n{}\n\nafter\n'.format(begin, end))
    argv = ['--results', a, b, '--thesis', thesis, '--out', str(tmp_path / 't.md'),
            '--readme', str(readme)]
    thesis_table.main(argv)
    first = readme.read_text()
    assert first.startswith('# Title\n\nbefore\n\n' + begin + '\n')
    assert first.endswith(end + '\n\nafter\n') and 'old table' not in first
    assert '| S | 0, 1, 2 |' in first
    thesis_table.main(argv)
    second = readme.read_text()
    assert second.count(begin) == 1 and second.count('| S | 0, 1, 2 |') == 1
    # without its markers the file is refused, left as it was, and nothing is written
    plain = tmp_path / 'plain.md'
    plain.write_text('no markers\n')
    err = _error(capsys, ['--results', a, '--thesis', thesis, '--out', str(tmp_path / 'x.md'),
                          '--readme', str(plain)])
    assert 'thesis-table:begin' in err
    assert plain.read_text() == 'no markers\n' and not (tmp_path / 'x.md').exists()
    twice = tmp_path / 'twice.md'
    twice.write_text('{0}\n{1}\n{0}\n{1}\n'.format(begin, end))
    with pytest.raises(ValueError, match='found 2 and 2'):
        provenance.replace_block(str(twice), 'thesis-table', 'x')
    swapped = tmp_path / 'swapped.md'
    swapped.write_text('{1}\n{0}\n'.format(begin, end))
    with pytest.raises(ValueError):
        provenance.replace_block(str(swapped), 'thesis-table', 'x')


def test_the_recorded_results_read_and_say_where_they_come_from():
    """Friendly/records/*.csv (copies of run_all's results.csv): every file reads, every row
    names its test-image count and training machine, and a file holds the seed of its name."""
    import glob
    import os
    import re
    folder = os.path.join(os.path.dirname(__file__), '..', '..', 'Friendly', 'records')
    paths = sorted(glob.glob(os.path.join(folder, '*-seed*.csv')))
    assert paths, 'no recorded results in Friendly/records'
    rows = thesis_summary.read_results(paths)
    for path in paths:
        seed = int(re.search(r'-seed(\d+)\.csv$', path).group(1))
        mine = [r for r in rows if r['file'] == path]
        assert mine and {r['seed'] for r in mine} == {seed}
        for r in mine:
            assert r['test_images'] and r['trained_on'], (path, r['network'])
            for column, _, _ in thesis_summary.COLUMNS:
                assert 0 <= r[column] <= 100, (path, r['network'], column)
