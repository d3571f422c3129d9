"""Tests of the argparse type functions of Counting.train's rates (lenses_common.cli) and of the
settings a resumed run must share (Counting.train_checks)."""
import argparse
import math

import pytest

from Counting import models, train_checks
from lenses_common import cli


def test_momentum_type_takes_the_half_open_interval():
    parse = cli.finite_float(0, 1, high_open=True)
    assert parse('0') == 0.0 and parse('0.85') == 0.85 and parse('0.999') == 0.999
    for text in ('1', '1.5', '-0.1', 'nan', 'inf', 'x'):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_non_negative_number_takes_infinity_but_not_nan():
    assert cli.non_negative_number('0') == 0.0
    assert cli.non_negative_number('3') == 3.0
    assert math.isinf(cli.non_negative_number('inf'))
    for text in ('-1', 'nan', '-inf', 'three'):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.non_negative_number(text)


def test_resume_keys_hold_the_network_and_the_trajectory():
    assert set(models.NETWORK_KEYS) <= set(train_checks.RESUME_KEYS)
    for key in ('optimizer', 'lr', 'momentum', 'batchsize', 'seed', 'train', 'renorm_decay'):
        assert key in train_checks.RESUME_KEYS
    assert 'epoch' not in train_checks.RESUME_KEYS  # a run may be trained further
