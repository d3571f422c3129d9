import argparse
import io
import json
import os
import random
import subprocess
import sys

import numpy
import pytest

from lenses_common import device, runfolder, seeding
from lenses_common.progress import Progress, add_progress_argument
import chainer


def test_default_device_is_numpy_without_gpu(monkeypatch):
    monkeypatch.setattr(device, 'gpu_available', lambda: False)
    assert device.default_device_spec() == '@numpy'
    assert device.get_device(None).xp is numpy
    assert device.get_device('@numpy').xp is numpy


def test_default_device_is_cupy_with_gpu(monkeypatch):
    monkeypatch.setattr(device, 'gpu_available', lambda: True)
    assert device.default_device_spec() == '@cupy:0'


@pytest.mark.parametrize('spec', ['@tpu:0', 'gpu', '@numpy:3x'])
def test_unknown_specifier_is_a_clear_error(spec):
    with pytest.raises(device.DeviceError, match='--device {}'.format(spec)):
        device.get_device(spec)


def test_cupy_asked_for_but_missing(monkeypatch):
    monkeypatch.setattr(device, 'gpu_available', lambda: False)
    with pytest.raises(device.DeviceError, match=r'CuPy.*pip install \.\[gpu\]'):
        device.get_device('@cupy:0')


def test_device_argument_exits_through_the_parser(capsys):
    import argparse
    parser = device.add_device_argument(argparse.ArgumentParser(prog='x'))
    args = parser.parse_args(['--device', '@nonsense'])
    with pytest.raises(SystemExit):
        device.device_from_args(args, parser)
    assert '--device @nonsense' in capsys.readouterr().err


@pytest.mark.gpu
def test_cupy_device_when_present():
    assert device.get_device('@cupy:0').xp.__name__ == 'cupy'
    assert device.default_device_spec() == '@cupy:0'


def test_seed_makes_python_numpy_and_chainer_init_repeatable():
    def draw():
        seeding.seed_everything(123)
        link = chainer.links.Linear(5, 4)
        return random.random(), numpy.random.rand(3).tolist(), link.W.array.copy()

    a, b = draw(), draw()
    assert a[0] == b[0] and a[1] == b[1]
    numpy.testing.assert_array_equal(a[2], b[2])
    seeding.seed_everything(124)
    assert random.random() != a[0]


def test_seed_out_of_range():
    with pytest.raises(ValueError, match='--seed'):
        seeding.seed_everything(-1)


@pytest.mark.gpu
def test_seed_reaches_cupy():
    import cupy
    seeding.seed_everything(5)
    a = cupy.random.rand(4).get()
    seeding.seed_everything(5)
    numpy.testing.assert_array_equal(a, cupy.random.rand(4).get())


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / 'result.json'
    runfolder.atomic_write_json(path, {'a': 1})
    with pytest.raises(RuntimeError):
        with runfolder.atomic_path(path) as tmp:
            with open(tmp, 'w') as f:
                f.write('{"half')
            raise RuntimeError('crash while writing')
    assert json.loads(path.read_text()) == {'a': 1}
    assert os.listdir(tmp_path) == ['result.json']  # no temporary left behind


def test_save_npz_roundtrip_and_keeps_extension(tmp_path):
    link = chainer.links.Linear(3, 2)
    path = tmp_path / 'model.npz'
    runfolder.save_npz(path, link)
    other = chainer.links.Linear(3, 2)
    chainer.serializers.load_npz(str(path), other)
    numpy.testing.assert_array_equal(link.W.array, other.W.array)
    assert os.listdir(tmp_path) == ['model.npz']


def test_run_folder_writes_settings_and_commands(tmp_path):
    run = runfolder.RunFolder(tmp_path / 'run', {'lr': 0.1, 'seed': numpy.int64(3)},
                              argv=['train.py', '--lr', '0.1'])
    written = json.loads(open(run.file('settings.json')).read())
    assert written.pop('environment')['cpu_count'] == os.cpu_count()
    assert written == {'lr': 0.1, 'seed': 3}
    runfolder.RunFolder(tmp_path / 'run', {'lr': 99}, resume=True,
                        argv=['train.py', '--resume', 'snap 1'])
    assert json.loads(open(run.file('settings.json')).read())['lr'] == 0.1
    commands = open(run.file('command.txt')).read()
    assert 'train.py --lr 0.1' in commands and "--resume 'snap 1'" in commands


def test_load_json_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match='settings file .*missing.json does not exist'):
        runfolder.load_json(tmp_path / 'missing.json')
    bad = tmp_path / 'bad.json'
    bad.write_text('{')
    with pytest.raises(ValueError, match='bad.json is not valid JSON'):
        runfolder.load_json(bad)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_a_tqdm_bar_on_a_terminal():
    stream = _Terminal()
    with Progress(4, desc='work', unit='img', stream=stream) as bar:
        for _ in range(4):
            bar.update()
    text = stream.getvalue()
    assert '\r' in text  # tqdm redraws the line in place
    assert 'work: 100%' in text and '4/4' in text


def test_progress_prints_one_line_per_stage_off_a_terminal():
    stream = io.StringIO()
    with Progress(4, desc='work', unit='img', stream=stream) as bar:
        for _ in range(3):
            bar.update()
        assert stream.getvalue() == ''  # nothing until the stage ends
        bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith('work: 4/4 img in ')


def test_no_progress_turns_bars_and_lines_off():
    parser = argparse.ArgumentParser()
    add_progress_argument(parser)
    assert parser.parse_args([]).progress is True
    args = parser.parse_args(['--no-progress'])
    for stream in (io.StringIO(), _Terminal()):
        with Progress(4, desc='work', stream=stream, enabled=args.progress) as bar:
            bar.update(4)
        assert stream.getvalue() == ''


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# numpy.sctypes as NumPy 1.26 has it on Linux x86_64, written out by type name.
NUMPY1_SCTYPES = {
    'int': ['int8', 'int16', 'int32', 'int64'],
    'uint': ['uint8', 'uint16', 'uint32', 'uint64'],
    'float': ['float16', 'float32', 'float64', 'longdouble'],
    'complex': ['complex64', 'complex128', 'clongdouble'],
    'others': ['bool', 'object', 'bytes', 'str', 'void'],
}


def run_python(code):
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO,
                         check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_numpy2_compat_restores_sctypes():
    # In a fresh interpreter: under NumPy 1, delete numpy.sctypes to simulate NumPy 2 (which has
    # none); then the shim must restore NumPy 1.26's content and Chainer must import.
    code = (
        'import json, numpy\n'
        'native = numpy.__dict__.get("sctypes")\n'
        'if native is not None:\n'
        '    del numpy.sctypes\n'
        'from lenses_common import compat\n'
        'names = {k: [t.__name__ for t in v] for k, v in numpy.sctypes.items()}\n'
        'import chainer\n'
        'print(json.dumps({"numpy1": native is not None, "same": native in (None, numpy.sctypes),\n'
        '                  "names": names, "chainer": chainer.__version__}))\n')
    result = json.loads(run_python(code))
    assert result['numpy1'] == numpy.__version__.startswith('1.')
    assert result['same']
    assert result['names'] == NUMPY1_SCTYPES
    assert result['chainer'] == '7.8.1'


@pytest.mark.parametrize('missing', ['pkg_resources', 'numpy.distutils'])
def test_compat_stands_in_for_chainer_environment_check(missing):
    # Python 3.12 with NumPy 2 has no numpy.distutils, setuptools >= 81 no pkg_resources; Chainer's
    # environment check imports both. Hide one, and Chainer must still import, with the stand-in.
    code = (f'import sys; sys.modules[{missing!r}] = None\n'
            'from lenses_common import compat\n'
            'import chainer\n'
            'print(chainer.__version__, chainer._environment_check.LENSES_STAND_IN)')
    assert run_python(code).split() == ['7.8.1', 'True']


def test_compat_keeps_chainer_environment_check_when_it_can_run():
    import importlib.util
    runnable = all(importlib.util.find_spec(name) is not None
                   for name in ('numpy.distutils', 'pkg_resources'))
    stand_in = getattr(chainer._environment_check, 'LENSES_STAND_IN', False)
    assert stand_in is not runnable
    assert callable(chainer._environment_check.check)


def test_fixed_random_states_seed_inside_and_restore_after():
    import random
    import numpy
    from lenses_common.seeding import fixed_random_states
    numpy.random.seed(123)
    random.seed(123)
    outside = numpy.random.rand(), random.random()
    numpy.random.seed(123)
    random.seed(123)
    with fixed_random_states(7):
        inside = numpy.random.rand(), random.random()
    assert (numpy.random.rand(), random.random()) == outside   # as if nothing was drawn inside
    numpy.random.seed(7)
    random.seed(7)
    assert (numpy.random.rand(), random.random()) == inside
