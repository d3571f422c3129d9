"""Counting.readme_table: the README block from a summary.json, and one-line errors for bad input
(the end-to-end run of tests/counting_tests/test_run_all.py checks it on a real summary)."""
import json

import pytest

from Counting import readme_table

README = '# top\n<!-- counting-results:begin -->\nSTALE\n<!-- counting-results:end -->\ntail\n'


def _counter(name, mae, ratio, recall, typed_recall):
    metrics = {t: {'ours': {'mae': mae}, 'mae_ratio': ratio} for t in ('tri', 'sq')}
    methods = {'upper': {'recall': recall, 'precision': 0.5},
               'upper_typed': {'recall': typed_recall, 'precision': 0.4, 'type_accuracy': 0.75,
                               'recall_by_type': {'tri': 0.5, 'sq': 1.0}}}
    return {'name': name, 'activation': 'relu', 'batch_renorm': False,
            'training': {'arch': 'edgepool'}, 'metrics': metrics,
            'outline': {'outline_interior_median': 3.25, 'outline_background_median': 9.5},
            'outline_png': {'outline_interior_median': 2.0, 'outline_background_median': 4.0},
            'detection_methods': methods}


def _summary(tmp_path, counters):
    rec = {'command': 'python -m Counting.run_all --preset quick', 'date': '2026-01-01 00:00 UTC',
           'machine': {'cpu_model': 'Some CPU', 'cpu_count': 2, 'blas_threads': 1},
           'device': None}
    path = tmp_path / 'summary.json'
    path.write_text(json.dumps({'preset': 'quick', 'seed': 3, 'elapsed_s': 61.4,
                                'provenance': rec, 'counters': counters}))
    return str(path)


def test_block_is_the_summary_by_hand(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text(README)
    path = _summary(tmp_path, [_counter('relu', 0.4, 2.5, 0.875, 0.625)])
    assert readme_table.main(['--summary', path, '--readme', str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith('# top\n') and text.endswith('tail\n') and 'STALE' not in text
    assert '`python -m Counting.run_all --preset quick`' in text and 'seed 3' in text
    assert 'Some CPU, 2 logical CPUs, BLAS 1 thread' in text and 'took 61 s' in text
    assert ('| relu | `edgepool` relu | 0.400 (2.50x) / 0.400 (2.50x) | 3.25, 9.50 | 2.00, 4.00 '
            '| 0.88 | 0.62 |') in text
    # the typed table keeps the typed methods only
    assert '| relu | `edgepool` relu | upper_typed | 0.62 | 0.50 | 1.00 | 0.75 | 0.40 |' in text
    assert '| relu | `edgepool` relu | upper | 0.88 |' not in text
    assert '\n### Every counter side by side\n' in text and '\n## ' not in text


def _error(capsys, argv):
    with pytest.raises(SystemExit) as info:
        readme_table.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err and len(err.splitlines()) == 1
    return err


def test_bad_input_is_one_line_and_the_readme_stays(tmp_path, capsys):
    readme = tmp_path / 'README.md'
    readme.write_text(README)
    good = _summary(tmp_path, [_counter('relu', 0.4, 2.5, 0.875, 0.625)])
    err = _error(capsys, ['--summary', str(tmp_path / 'none.json'), '--readme', str(readme)])
    assert '--summary' in err and 'none.json' in err
    broken = tmp_path / 'broken.json'
    broken.write_text('{"preset": ')
    assert 'not valid JSON' in _error(capsys, ['--summary', str(broken), '--readme', str(readme)])
    other = tmp_path / 'other.json'
    other.write_text('[1, 2]')
    assert 'not a JSON object' in _error(capsys, ['--summary', str(other), '--readme',
                                                  str(readme)])
    other.write_text('{"preset": "quick"}')
    assert 'no provenance record' in _error(capsys, ['--summary', str(other), '--readme',
                                                     str(readme)])
    assert readme.read_text() == README
    plain = tmp_path / 'PLAIN.md'
    plain.write_text('# no markers\n')
    err = _error(capsys, ['--summary', good, '--readme', str(plain)])
    assert '--readme' in err and 'counting-results:begin' in err
    assert plain.read_text() == '# no markers\n'
