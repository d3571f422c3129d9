import csv
import io
import json
import shutil

import pytest

from lenses_common import compat  # noqa: F401

from Friendly import evaluate
from Friendly import train
from Friendly import evaluate_report

FAKE = {v: {'clean': 90.0 + i, 'fgsm_white': 10.0 + i, 'fgsm_black': 50.0 + i / 4}
        for i, v in enumerate(['PD', 'S', 'GMRES', 'A', 'RS', 'GMR'])}


def test_tables_have_six_rows_in_thesis_order():
    text = evaluate_report.format_tables(FAKE, 77, 10000, 'batch')
    rows = [line for line in text.splitlines() if line.startswith('| ') and '%' in line]
    main_rows = rows[:6]
    assert [r.split('|')[1].strip() for r in main_rows] == ['S', 'RS', 'A', 'GMR', 'GMRES', 'PD']
    assert '| S | 91.00% | 11.00% | 50.25% |' in text
    assert '| network | clean | white-box FGSM | black-box FGSM |' in text
    assert 'Table 3.3' in text and 'Table 3.2' in text
    assert '| White-box (FGSM) | 11.00% | 14.00% | 13.00% | 15.00% | 12.00% | 10.00% |' in text
    assert 'PGD' not in text


def test_csv():
    rows = list(csv.reader(io.StringIO(evaluate_report.format_csv(FAKE))))
    assert rows[0] == ['network', 'clean_pct', 'fgsm_white_pct', 'fgsm_black_pct']
    assert rows[1] == ['S', '91.00', '11.00', '50.25']
    assert len(rows) == 7


def test_bar_chart(tmp_path):
    path = tmp_path / 'bars.png'
    evaluate_report.plot_bars(FAKE, str(path), 77)
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def _tiny(out, variant, seed, mnist_dir, extra=()):
    train.main(['--variant', variant, '--seed', str(seed), '--out', str(out), '--epoch', '2',
                '--train-subset', '3000', '--val-subset', '200', '--no-progress',
                '--mnist-dir', mnist_dir] + list(extra))
    return str(out)


# S learns slowly from its saturated start at the thesis's rate; a larger one gets a usable
# network (~70%) within a few seconds.
FAST_S = ['--lr', '0.01', '--epoch', '3', '--train-subset', '5000']


@pytest.fixture(scope='module')
def runs(tmp_path_factory, mnist_dir):
    root = tmp_path_factory.mktemp('eval')
    return {'S': _tiny(root / 'S', 'S', 0, mnist_dir, FAST_S),
            'RS': _tiny(root / 'RS', 'RS', 0, mnist_dir),
            'source': _tiny(root / 'source', 'S', 11, mnist_dir, FAST_S),
            'root': root}


def test_end_to_end_tables(runs, mnist_dir, tmp_path):
    out = tmp_path / 'out'
    results = evaluate.main(['--run', runs['S'], '--run', runs['RS'], '--source', runs['source'],
                             '--out', str(out), '--test-subset', '400',
                             '--mnist-dir', mnist_dir])
    assert set(results) == {'S', 'RS'}
    for name in ('table.md', 'table.csv', 'results.json', 'accuracy_bars.png'):
        assert (out / name).exists()
    s = results['S']
    assert 50 < s['clean'] <= 100
    assert s['fgsm_white'] < s['clean'] - 10          # the white-box attack works (25 points
    # with one BLAS thread, 34 with two: the margin leaves room for other CPUs)
    assert s['fgsm_black'] < s['clean']               # transferred examples hurt too
    saved = json.loads((out / 'results.json').read_text())
    assert saved['test_images'] == 400 and saved['eps'] == 77
    assert saved['accuracy_pct']['RS']['clean'] == pytest.approx(results['RS']['clean'])
    text = (out / 'table.md').read_text()
    assert 'separate S network (seed 11)' in text
    # Percentages are multiples of 1/400 of the test set
    for value in s.values():
        assert abs(value * 4 - round(value * 4)) < 1e-6


def test_running_average_mode_leaves_plain_networks_alone(runs, mnist_dir, tmp_path):
    common = ['--run', runs['S'], '--run', runs['RS'], '--test-subset', '200',
              '--mnist-dir', mnist_dir]
    batch = evaluate.main(common + ['--out', str(tmp_path / 'a')])
    running = evaluate.main(common + ['--out', str(tmp_path / 'b'), '--bn-eval', 'running'])
    assert batch['S'] == running['S']
    assert 'fgsm_black' not in batch['S']


def test_pgd_option(runs, mnist_dir, tmp_path):
    n = 500
    results = evaluate.main(['--run', runs['S'], '--source', runs['source'], '--out',
                             str(tmp_path), '--test-subset', str(n), '--pgd', '--pgd-steps', '5',
                             '--pgd-restarts', '2', '--mnist-dir', mnist_dir])
    s = results['S']
    # PGD with the default step (38 units here) is at least as strong as FGSM in expectation. On
    # n images the sampling error of an accuracy is at most 50 / sqrt(n) points; allow three of
    # them (6.7 points at n = 500), far less than the ~25 points PGD gains on such a network.
    assert s['pgd_white'] <= s['fgsm_white'] + 3 * 50 / n ** 0.5
    assert s['fgsm_white'] < s['clean'] - 10     # the bound is about a network FGSM can hurt
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert saved['pgd']['step_size'] == 38.0 and saved['pgd']['steps'] == 5
    assert 'white-box PGD' in (tmp_path / 'table.md').read_text()


@pytest.mark.parametrize('step', ['-4', '0', 'inf', 'nan'])
def test_pgd_step_size_must_be_positive_and_finite(capsys, runs, tmp_path, step):
    with pytest.raises(SystemExit) as info:
        evaluate.main(['--run', runs['S'], '--out', str(tmp_path), '--pgd',
                       '--pgd-step-size', step])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert '--pgd-step-size' in err and 'positive' in err


def _error(capsys, argv):
    with pytest.raises(SystemExit) as info:
        evaluate.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert 'Traceback' not in '\n'.join(err)
    return err[-1]


@pytest.mark.parametrize('eps', ['-1', '256', '300'])
def test_eps_outside_range(capsys, runs, tmp_path, eps):
    msg = _error(capsys, ['--run', runs['S'], '--out', str(tmp_path), '--eps', eps])
    assert '--eps' in msg and '0..255' in msg


def test_missing_model(capsys, runs, tmp_path):
    msg = _error(capsys, ['--run', str(tmp_path / 'nothing'), '--out', str(tmp_path)])
    assert 'does not exist' in msg


def test_model_of_another_network(capsys, runs, tmp_path):
    other = tmp_path / 'mixed'
    shutil.copytree(runs['S'], other)
    shutil.copy(runs['RS'] + '/model_final.npz', other / 'model_final.npz')
    msg = _error(capsys, ['--run', str(other), '--out', str(tmp_path)])
    assert 'does not fit the S network' in msg


def test_source_must_be_another_seed_and_standard(capsys, runs, tmp_path):
    msg = _error(capsys, ['--run', runs['S'], '--source', runs['S'], '--out', str(tmp_path)])
    assert 'another seed' in msg
    msg = _error(capsys, ['--run', runs['S'], '--source', runs['RS'], '--out', str(tmp_path)])
    assert 'standard (S)' in msg


def test_same_network_twice(capsys, runs, tmp_path):
    msg = _error(capsys, ['--run', runs['S'], '--run', runs['S'], '--out', str(tmp_path)])
    assert 'a second S network' in msg


def test_black_box_uses_source_examples(runs, mnist_dir, tmp_path, monkeypatch):
    # The black-box column must be computed on the source's examples: replacing them by the
    # clean images makes it equal to the clean accuracy.
    monkeypatch.setattr(evaluate, 'black_box_set', lambda source, x, *a, **k: x.copy())
    results = evaluate.main(['--run', runs['S'], '--source', runs['source'], '--out',
                             str(tmp_path), '--test-subset', '200', '--mnist-dir', mnist_dir])
    assert results['S']['fgsm_black'] == results['S']['clean']
