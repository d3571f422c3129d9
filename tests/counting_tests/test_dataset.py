"""Tests of the dataset check command line (Counting.dataset)."""
import os
import shutil

import pytest


from Counting import dataset
from Counting.datasets.generator import generate_dataset


SIZE = (64, 48)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('data'))
    generate_dataset(folder, 7, image_size=SIZE, shape_limit=5, scale=(5, 10), seed=1,
                     workers=1, progress=False)
    return folder


@pytest.fixture
def copy(source, tmp_path):
    folder = str(tmp_path / 'copy')
    shutil.copytree(source, folder)
    return folder


def test_cli(source, copy, capsys):
    assert dataset.main([source, '--workers', '1']) == 0
    out = capsys.readouterr().out
    assert '7 images of 64x48' in out and 'tri: mean' in out
    os.remove(os.path.join(copy, '0000.png'))
    assert dataset.main([copy, '--workers', '1']) == 2
    err = capsys.readouterr().err
    assert 'error:' in err and '0000.png' in err and 'Traceback' not in err
