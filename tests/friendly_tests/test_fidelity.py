"""Tests of Friendly.fidelity on run folders made here (untrained networks, real MNIST)."""
import csv
import json
import os

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer

from Friendly import fidelity_eval
from Friendly import attacks
from Friendly import evaluation
from Friendly import fidelity
from Friendly import runs
from Friendly.mnist import get_mnist
from lenses_common import provenance

N = 40


@pytest.fixture
def roots(tmp_path, make_run):
    one = tmp_path / 'one'                       # run_all --seed 0 layout
    for network in ('S', 'RS'):
        make_run(one / 'friendly' / 'runs' / network, network, 0)
    make_run(one / 'friendly' / 'runs' / 'GMR', 'GMR', 0, finished=False)
    make_run(one / 'friendly' / 'runs' / 'source', 'source', 1000)
    sweep = tmp_path / 'sweep'                   # run_all --seeds 1,... layout
    make_run(sweep / 'friendly' / 'seed-1' / 'runs' / 'S', 'S', 1)
    make_run(sweep / 'friendly' / 'seed-1' / 'runs' / 'source', 'source', 1001)
    thesis = tmp_path / 'thesis.json'
    thesis.write_text(json.dumps({'networks': {
        'S': {'clean': 95.86, 'whitebox_fgsm': 150.0, 'blackbox_fgsm': 45.28}}}))
    return tmp_path, str(one), str(sweep), str(thesis)


def test_inside_by_hand():
    assert fidelity_eval.inside(46.16, 50.74, 42.11) == 'yes'
    assert fidelity_eval.inside(45.28, 48.32, 39.69) == 'yes'
    assert fidelity_eval.inside(41.11, 50.74, 42.11) == 'yes'     # exactly the lower end - 1
    assert fidelity_eval.inside(41.10, 50.74, 42.11) == 'no'
    assert fidelity_eval.inside(51.75, 42.11, 50.74) == 'no'
    assert fidelity_eval.inside(None, 1.0, 2.0) == 'not given'


def test_table_of_two_layouts_matches_friendly_evaluate(roots, mnist_dir, capsys, fgsm_by_hand):
    tmp_path, one, sweep, thesis = roots
    out = tmp_path / 'out'
    readme = tmp_path / 'README.md'
    begin, end = provenance.markers('fidelity-table')
    readme.write_text('top\n{}\n{}\nbottom\n'.format(begin, end))
    rows = fidelity.main(['--runs', one, sweep, '--preset', 'smoke', '--thesis', thesis,
                          '--out', str(out), '--test-subset', str(N), '--mnist-dir', mnist_dir,
                          '--no-progress', '--readme', str(readme)])
    assert [(r['network'], r['seed']) for r in rows] == [('S', 0), ('S', 1), ('RS', 0)]
    # the unfinished GMR run is listed, not evaluated
    assert 'skipped: {}'.format(os.path.join(one, 'friendly', 'runs', 'GMR')) in \
        capsys.readouterr().out
    # float32 columns: Friendly.evaluate's own counts on the same images and source
    _, test = get_mnist(mnist_dir)
    x, t = test._datasets
    x = numpy.ascontiguousarray(x[:N], numpy.float32)
    t = numpy.asarray(t[:N], numpy.int32)
    cpu = chainer.get_device('@numpy')
    for r in rows:
        model, _ = runs.load_run(r['run'])
        source, _ = runs.load_run(r['source'])
        black = evaluation.black_box_set(source, x, t, 77, 200, cpu, progress=False)
        numpy.testing.assert_array_equal(black, attacks.fgsm(source, x, t, 77))
        counts = {k: int(v.sum()) for k, v in fgsm_by_hand(model, x, t, 77, 200, black).items()}
        assert r['clean'] == pytest.approx(100.0 * counts['clean'] / N)
        assert r['fgsm'] == pytest.approx(100.0 * counts['fgsm'] / N)
        assert r['blackbox'] == pytest.approx(100.0 * counts['blackbox'] / N)
        for key in ('fgsm_float64', 'blackbox_float64', 'zero_grad', 'source_zero_grad'):
            assert 0.0 <= r[key] <= 100.0
        assert r['images'] == N and r['source_seed'] == r['seed'] + 1000
    # thesis verdicts: 150% cannot lie near any accuracy; RS is not in the JSON
    assert rows[0]['whitebox_inside'] == 'no'
    assert rows[2]['whitebox_inside'] == 'not given' and rows[2]['thesis_blackbox'] is None
    table = list(csv.DictReader((out / 'fidelity.csv').open()))
    assert [(r['network'], r['seed']) for r in table] == [('S', '0'), ('S', '1'), ('RS', '0')]
    assert float(table[0]['fgsm']) == pytest.approx(rows[0]['fgsm'], abs=0.005)
    text = (out / 'fidelity.md').read_text()
    assert 'python -m Friendly.fidelity --runs' in text and 'BLAS' in text
    assert 'Not included' in text and 'GMR' in text
    report = json.loads((out / 'fidelity.json').read_text())
    assert report['provenance']['machine']['cpu_count'] == os.cpu_count()
    block = readme.read_text()
    assert block.startswith('top\n' + begin + '\nWritten by') and block.endswith(end +
                                                                                 '\nbottom\n')


def _error(capsys, argv):
    with pytest.raises(SystemExit) as info:
        fidelity.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err and len(err.splitlines()) == 1
    return err


def test_bad_input_is_one_line(roots, capsys):
    tmp_path, one, sweep, thesis = roots
    out = str(tmp_path / 'out')
    err = _error(capsys, ['--runs', one, one, '--preset', 'smoke', '--thesis', thesis,
                          '--out', out])
    assert 'S seed 0 is in' in err
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert 'holds no friendly/runs' in _error(capsys, ['--runs', str(empty), '--thesis', thesis,
                                                       '--out', out])
    # the runs are smoke runs: as thesis-preset runs nothing is found
    assert 'no finished run of the thesis preset' in _error(
        capsys, ['--runs', one, '--thesis', thesis, '--out', out])
    assert '--networks' in _error(capsys, ['--runs', one, '--networks', 'S,XX', '--thesis',
                                           thesis, '--out', out])
    assert 'nope.json' in _error(capsys, ['--runs', one, '--thesis', str(tmp_path / 'nope.json'),
                                          '--out', out])
    assert not os.path.exists(out)
