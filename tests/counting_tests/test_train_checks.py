"""Tests of Counting.train_checks: the argparse type functions of Counting.train's rates and the
settings a resumed run must share."""
import argparse
import math

import pytest

from Counting import models, train_checks


def test_below_one_takes_the_half_open_interval():
    parse = train_checks.below_one(0)
    assert parse('0') == 0.0 and parse('0.85') == 0.85 and parse('0.999') == 0.999
    for text in ('1', '1.5', '-0.1', 'nan', 'inf', 'x'):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_at_least_zero_takes_infinity_but_not_nan():
    assert train_checks.at_least_zero('0') == 0.0
    assert train_checks.at_least_zero('3') == 3.0
    assert math.isinf(train_checks.at_least_zero('inf'))
    for text in ('-1', 'nan', '-inf', 'three'):
        with pytest.raises(argparse.ArgumentTypeError):
            train_checks.at_least_zero(text)


def test_resume_keys_hold_the_network_and_the_trajectory():
    assert set(models.NETWORK_KEYS) <= set(train_checks.RESUME_KEYS)
    for key in ('optimizer', 'lr', 'momentum', 'batchsize', 'seed', 'train', 'renorm_decay'):
        assert key in train_checks.RESUME_KEYS
    assert 'epoch' not in train_checks.RESUME_KEYS  # a run may be trained further
