"""Tests of Friendly.robustness_attacks: zero gradients, the float64 copy, the worst case."""
import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer

from Friendly import attacks
from Friendly import evaluate
from Friendly import models
from Friendly.robustness_attacks import ATTACKS, attack_batch, evaluate_set, float64_copy


CPU = chainer.get_device('@numpy')


def _small(variant, seed=0, sizes=(16, 8, 8, 10)):
    numpy.random.seed(seed)
    return models.FC100(variant, sizes=sizes)


def _data(n, seed=1, shape=(1, 4, 4)):
    rng = numpy.random.RandomState(seed)
    x = rng.randint(0, 256, (n,) + shape).astype(numpy.float32)
    t = rng.randint(0, 10, n).astype(numpy.int32)
    return x, t


# -- zero gradients and float64 -----------------------------------------------------------------

def _saturating_network():
    """S with one hidden unit h = sigmoid(sum of the 4 pixels): exactly 1 in float32 once the sum
    reaches ~17 (float64: ~37), and then every input gradient is exactly 0."""
    model = models.FC100('S', sizes=(4, 1, 1, 10))
    model.l1.W.array[...] = 1.0
    model.l1.b.array[...] = 0.0
    model.l2.W.array[...] = 1.0
    model.l2.b.array[...] = 0.0
    model.l3.W.array[...] = numpy.linspace(-1, 1, 10, dtype=numpy.float32)[:, None]
    model.l3.b.array[...] = 0.0
    return model


def test_zero_gradient_count_of_a_hand_built_saturated_network():
    # pixel sums: 0 and 3 (unsaturated everywhere), 30 (saturated in float32 only: 1 - 9e-14 in
    # float64), 255 and 1020 (saturated in both)
    sums = [0, 3, 30, 30, 255, 1020, 3]
    x = numpy.zeros((len(sums), 1, 2, 2), numpy.float32)
    x[:, 0, 0, 0] = numpy.minimum(sums, 255)
    x[5] = 255
    t = numpy.arange(len(sums), dtype=numpy.int32) % 10
    model = _saturating_network()
    got = attack_batch(model, float64_copy(model), x, t, 77, 'batch', ['fgsm', 'fgsm_float64'],
                       zero_grad=True)
    assert got['zero_grad'].tolist() == [False, False, True, True, True, True, False]
    assert got['zero_grad_float64'].tolist() == [False, False, False, False, True, True, False]


def test_float64_copy_leaves_the_original_and_computes_the_same_function():
    model = _small('RS')
    before = [p.array.copy() for p in model.params()]
    copy = float64_copy(model)
    assert all(p.array.dtype == numpy.float32 for p in model.params())
    assert all(p.array.dtype == numpy.float64 for p in copy.params())
    assert all(b.avg_mean.dtype == numpy.float64 for b in copy.batch_renorm_links())
    for b, p in zip(before, model.params()):
        numpy.testing.assert_array_equal(b, p.array)
    x, _ = _data(10)
    for mode in models.BN_MODES:
        y32 = evaluate.predict(model, x, mode)
        with models.evaluation_mode(copy, mode), chainer.no_backprop_mode():
            y64 = copy(x.astype(numpy.float64)).array.argmax(axis=1)
        numpy.testing.assert_array_equal(y32, y64)


def test_float64_fgsm_equals_float32_fgsm_on_an_unsaturated_network():
    model = _small('S', seed=3)
    x, t = _data(20, seed=5)
    x = x / 255.0 * 4.0     # pre-activations of order 1: nothing near saturation
    g64 = attacks.loss_gradient(float64_copy(model), x.astype(numpy.float64), t)
    # no gradient entry close enough to 0 for float32 rounding (~1e-7 relative) to flip its sign
    scale = numpy.abs(g64).reshape(len(x), -1).max(axis=1).reshape(-1, 1, 1, 1)
    assert (numpy.abs(g64) > 1e-4 * scale).all()
    expected = attacks.fgsm(model, x, t, 77)
    numpy.testing.assert_array_equal(attacks.fgsm_step(x, g64, 77.0), expected)
    got = attack_batch(model, float64_copy(model), x, t, 77, 'batch', ['fgsm', 'fgsm_float64'])
    numpy.testing.assert_array_equal(got['fgsm'], got['fgsm_float64'])


# -- the table -----------------------------------------------------------------------------------

@pytest.mark.parametrize('variant', ['S', 'RS'])
def test_worst_case_is_the_conjunction_and_fgsm_is_evaluates(variant):
    model = _small(variant, seed=2)
    x, t = _data(30, seed=3)
    black = attacks.fgsm(_small('S', seed=9), x, t, 77)
    got = evaluate_set(model, float64_copy(model), x, t, 77, 20, 'batch', CPU, ATTACKS, black,
                       pgd_steps=5, pgd_restarts=2)
    for key in ('clean',) + ATTACKS:
        assert not (got['worst_case'] & ~got[key]).any()      # never above any column
    expected = numpy.logical_and.reduce([got[k] for k in ('clean',) + ATTACKS])
    numpy.testing.assert_array_equal(got['worst_case'], expected)
    # the fgsm, clean and black-box columns are Friendly.evaluate's counts, batch for batch
    counts = evaluate.evaluate_network(model, x, t, 77, 20, 'batch', CPU, black=black)
    assert counts['clean'] == got['clean'].sum()
    assert counts['fgsm_white'] == got['fgsm'].sum()
    assert counts['fgsm_black'] == got['blackbox'].sum()
    if variant == 'S':   # no Batch Renormalization: both modes take the same gradient
        numpy.testing.assert_array_equal(got['fgsm'], got['fgsm_bn_running'])
