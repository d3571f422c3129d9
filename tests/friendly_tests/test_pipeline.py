"""Tests of Friendly.pipeline: command lines of the pipeline, run states, the one settings
comparison, the output root of a sweep."""
import json

from lenses_common import compat  # noqa: F401

from Friendly import pipeline
from Friendly import train_args


def test_where_argv_adds_only_what_is_given():
    assert pipeline.where_argv(None, None) == []
    assert pipeline.where_argv('@numpy', None) == ['--device', '@numpy']
    assert pipeline.where_argv(None, 'M') == ['--mnist-dir', 'M']
    argv = pipeline.train_argv('source', {'epoch': 2}, 1000, 'OUT', '@numpy', 'M')
    assert argv == ['--variant', 'S', '--seed', '1000', '--out', 'OUT', '--no-progress',
                    '--epoch', '2', '--device', '@numpy', '--mnist-dir', 'M']


def test_wanted_settings_are_what_train_writes():
    argv = pipeline.train_argv('GMRES', pipeline.train_options('thesis', 'GMRES'), 3, 'x', None,
                               None)
    args = train_args.build_parser().parse_args(argv)
    assert pipeline.wanted_settings(argv) == train_args.settings_from_args(args)
    assert pipeline.wanted_settings(argv)['stabilize'] is True


def test_same_settings_ignores_where_a_run_ran_only():
    wanted = pipeline.wanted_settings(['--variant', 'S', '--out', 'x'])
    moved = dict(wanted, device='@cupy:0', mnist_dir='elsewhere', environment={'cpu': 'other'})
    assert pipeline.same_settings(moved, wanted)
    assert not pipeline.same_settings(dict(wanted, lr=0.5), wanted)
    # a key one side lacks is a difference: a run folder of an earlier version is another run
    fewer = {k: v for k, v in wanted.items() if k != 'stabilize'}
    assert not pipeline.same_settings(fewer, wanted)


def test_run_state_of_a_folder(make_run, tmp_path):
    argv = pipeline.train_argv('S', pipeline.train_options('smoke', 'S'), 0,
                               str(tmp_path / 'S'), None, None)
    wanted = pipeline.wanted_settings(argv)
    assert pipeline.run_state(str(tmp_path / 'S'), wanted) == 'fresh'
    make_run(tmp_path / 'S', 'S', 0, finished=False)
    assert pipeline.run_state(str(tmp_path / 'S'), wanted) == 'fresh'
    (tmp_path / 'S' / 'snapshot_epoch_1').write_bytes(b'')
    assert pipeline.run_state(str(tmp_path / 'S'), wanted) == 'resume'
    (tmp_path / 'S' / 'model_final.npz').write_bytes(b'')
    assert pipeline.run_state(str(tmp_path / 'S'), wanted) == 'done'
    (tmp_path / 'S' / 'settings.json').write_text(json.dumps(dict(wanted, seed=9)))
    assert pipeline.run_state(str(tmp_path / 'S'), wanted) == 'other'


def test_friendly_root_finds_the_seed_folder_of_a_sweep(tmp_path):
    assert pipeline.friendly_root(str(tmp_path), 3) == str(tmp_path / 'friendly')
    (tmp_path / 'friendly' / 'seed-3' / 'runs').mkdir(parents=True)
    assert pipeline.friendly_root(str(tmp_path), 3) == str(tmp_path / 'friendly' / 'seed-3')
    (tmp_path / 'friendly' / 'runs').mkdir()
    assert pipeline.friendly_root(str(tmp_path), 3) == str(tmp_path / 'friendly')
