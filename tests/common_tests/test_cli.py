"""Every command line reports a bad option in exactly one line (lenses_common.cli)."""
import importlib
import subprocess
import sys

import pytest

from lenses_common import cli

SCRIPTS = ('Counting.generate', 'Counting.check_dataset', 'Counting.train', 'Counting.evaluate',
           'Counting.saliency', 'Counting.detect', 'Counting.outline', 'Counting.run_all',
           'Counting.bench.__main__', 'Friendly.train', 'Friendly.evaluate', 'Friendly.robustness',
           'Friendly.run_all', 'Friendly.run_robustness', 'Friendly.stop_rules',
           'Friendly.mnist.__main__', 'Friendly.bench.__main__', 'Friendly.fidelity',
           'Friendly.thesis_table', 'Friendly.certify', 'Friendly.run_certify')


def test_error_is_one_line_with_status_2(capsys):
    parser = cli.ArgumentParser(prog='prog')
    parser.add_argument('--n', type=int, required=True)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(['--n', 'seven'])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == "prog: error: argument --n: invalid int value: 'seven'\n"


def test_help_still_shows_the_usage(capsys):
    parser = cli.ArgumentParser(prog='prog')
    parser.add_argument('--n', type=int)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(['-h'])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith('usage: prog')


@pytest.mark.parametrize('module', SCRIPTS)
def test_unknown_option_is_one_line(module, capsys):
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as e:
        main(['--no-such-option'])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert ': error: ' in err   # a missing required option may be named before the unknown one


def test_friendly_train_refuses_an_infinite_rate_in_one_line(tmp_path):
    # ``--lr inf`` exits non-zero with one line, no traceback, no model file.
    out = tmp_path / 'run'
    proc = subprocess.run([sys.executable, '-m', 'Friendly.train', '--variant', 'S', '--lr', 'inf',
                           '--out', str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        'error: argument --lr: inf is not a positive finite number')
    assert not (out / 'model_final.npz').exists()


def test_type_functions_refuse_out_of_range_values():
    import argparse
    assert cli.positive_int('3') == 3
    for bad in ('0', '-2', 'x', '1.5'):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.positive_int(bad)
    momentum = cli.finite_float(0, 1, high_open=True)
    assert momentum('0') == 0.0 and momentum('0.85') == 0.85
    for bad in ('1', '-0.1', 'nan', 'inf', 'x'):
        with pytest.raises(argparse.ArgumentTypeError):
            momentum(bad)
    rate = cli.finite_float(0, low_open=True)
    with pytest.raises(argparse.ArgumentTypeError, match='not a positive finite number'):
        rate('0')
    assert rate('1e-4') == 1e-4
