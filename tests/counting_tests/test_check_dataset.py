"""Tests of the dataset check command line (Counting.check_dataset)."""
import os


from Counting import check_dataset as dataset


SIZE = (64, 48)


def test_cli(source, copy, capsys):
    assert dataset.main([source, '--workers', '1']) == 0
    out = capsys.readouterr().out
    assert '7 images of 64x48' in out and 'tri: mean' in out
    os.remove(os.path.join(copy, '0000.png'))
    assert dataset.main([copy, '--workers', '1']) == 2
    err = capsys.readouterr().err
    assert 'error:' in err and '0000.png' in err and 'Traceback' not in err
