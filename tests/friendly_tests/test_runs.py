"""Tests of Friendly.runs: the one loader of a run, row names and order, the --run options."""
import json

import numpy
import pytest

from lenses_common import compat  # noqa: F401

from Friendly import runs
from lenses_common import cli


def test_load_run_gives_the_saved_network(make_run, tmp_path):
    run_dir = make_run(tmp_path / 'RS', 'RS', 4)
    model, settings = runs.load_run(run_dir)
    assert settings['variant'] == 'RS' and settings['seed'] == 4
    numpy.random.seed(4 + len('RS'))          # the draw make_run saved
    from Friendly import models
    expected = models.FC100('RS')
    for (name, a), (_, b) in zip(sorted(model.namedparams()), sorted(expected.namedparams())):
        numpy.testing.assert_array_equal(a.array, b.array, err_msg=name)


def test_a_settings_file_of_an_earlier_version_is_refused_in_one_line(make_run, tmp_path):
    run_dir = make_run(tmp_path / 'S', 'S', 0)
    path = tmp_path / 'S' / 'settings.json'
    settings = json.loads(path.read_text())
    del settings['sizes']
    path.write_text(json.dumps(settings))
    with pytest.raises(ValueError) as info:
        runs.load_run(run_dir)
    assert 'has no sizes' in str(info.value) and '\n' not in str(info.value)


def test_too_many_parameters_are_refused_before_the_build(make_run, tmp_path):
    run_dir = make_run(tmp_path / 'S', 'S', 0)
    path = tmp_path / 'S' / 'settings.json'
    settings = json.loads(path.read_text())
    settings['sizes'] = [784, 10 ** 6, 10 ** 4, 10]   # 7.8e8 + 1e10 weights
    path.write_text(json.dumps(settings))
    with pytest.raises(ValueError, match='above the limit'):
        runs.load_run(run_dir)


def test_row_names_and_their_order():
    assert runs.network_name({'variant': 'S', 'adversarial': 'pgd'}) == 'S-PGDAT'
    assert runs.network_name({'variant': 'S', 'adversarial': 'ibp'}) == 'S-IBP'
    assert runs.network_name({'variant': 'GMRES'}) == 'GMRES'
    assert runs.ordered(['PD', 'S-PGDAT', 'A', 'S', 'RS']) == ['S', 'RS', 'A', 'PD', 'S-PGDAT']


def test_load_networks_refuses_a_source_that_is_not_a_separate_s(make_run, tmp_path, capsys):
    parser = cli.ArgumentParser(prog='prog')
    runs.add_run_arguments(parser, 'the source')
    s = make_run(tmp_path / 'S', 'S', 0)
    rs = make_run(tmp_path / 'RS', 'RS', 0)
    args = parser.parse_args(['--run', s, '--run', rs, '--source', rs])
    assert args.model == 'final'
    cpu = None
    for source, needle in ((rs, 'must be a standard (S) network, not RS'),
                           (s, 'must be trained separately')):
        with pytest.raises(SystemExit) as info:
            runs.load_networks(parser, args.run, source, args.model, cpu)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and needle in err and err.startswith('prog: error: --source')
    networks, source, source_settings = runs.load_networks(
        parser, [s, rs], make_run(tmp_path / 'source', 'source', 1000), 'final', cpu)
    assert sorted(networks) == ['RS', 'S'] and source_settings['seed'] == 1000
    with pytest.raises(SystemExit):
        runs.load_networks(parser, [s, s], None, 'final', cpu)
    assert 'a second S network' in capsys.readouterr().err
