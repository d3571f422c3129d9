"""Tests of Friendly.evaluation: zero gradients, the float64 copy, the worst case."""
import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer

from Friendly import attacks
from Friendly import evaluate_report
from Friendly import evaluation
from Friendly import models
from Friendly.evaluation import ATTACKS, attack_batch, evaluate_set, float64_copy
from Friendly.evaluation import source_sets


CPU = chainer.get_device('@numpy')


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


def test_float64_copy_leaves_the_original_and_computes_the_same_function(small, images):
    model = small('RS')
    before = [p.array.copy() for p in model.params()]
    copy = float64_copy(model)
    assert all(p.array.dtype == numpy.float32 for p in model.params())
    assert all(p.array.dtype == numpy.float64 for p in copy.params())
    assert all(b.avg_mean.dtype == numpy.float64 for b in copy.batch_renorm_links())
    for b, p in zip(before, model.params()):
        numpy.testing.assert_array_equal(b, p.array)
    x, _ = images(10)
    for mode in models.BN_MODES:
        y32 = evaluation.predict(model, x, mode)
        with models.evaluation_mode(copy, mode), chainer.no_backprop_mode():
            y64 = copy(x.astype(numpy.float64)).array.argmax(axis=1)
        numpy.testing.assert_array_equal(y32, y64)


def test_float64_fgsm_equals_float32_fgsm_on_an_unsaturated_network(small, images):
    model = small('S', seed=3)
    x, t = images(20, seed=5)
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
def test_worst_case_is_the_conjunction_and_fgsm_is_evaluates(variant, small, images,
                                                             fgsm_by_hand):
    model = small(variant, seed=2)
    x, t = images(30, seed=3)
    source = small('S', seed=9)
    sets = source_sets(source, float64_copy(source), x, t, 77, 20, CPU)
    black = sets['blackbox']
    numpy.testing.assert_array_equal(black, attacks.fgsm(source, x, t, 77))
    got = evaluate_set(model, float64_copy(model), x, t, 77, 20, 'batch', CPU, ATTACKS, black,
                       pgd_steps=5, pgd_restarts=2, black64=sets['blackbox_float64'])
    assert 'blackbox_float64' in ATTACKS
    for key in ('clean',) + ATTACKS:
        assert not (got['worst_case'] & ~got[key]).any()      # never above any column
    expected = numpy.logical_and.reduce([got[k] for k in ('clean',) + ATTACKS])
    numpy.testing.assert_array_equal(got['worst_case'], expected)
    # the fgsm, clean and black-box columns are the thesis's FGSM protocol, batch for batch
    by_hand = fgsm_by_hand(model, x, t, 77, 20, black)
    for key in ('clean', 'fgsm', 'blackbox'):
        numpy.testing.assert_array_equal(got[key], by_hand[key])
    if variant == 'S':   # no Batch Renormalization: both modes take the same gradient
        numpy.testing.assert_array_equal(got['fgsm'], got['fgsm_bn_running'])


# -- black-box examples with the source's float64 gradient --------------------------------------

def test_blackbox_float64_equals_blackbox_on_an_unsaturated_source(small, images):
    source = small('S', seed=3)
    model = small('RS', seed=4)
    x, t = images(40, seed=5)
    x = x / 255.0 * 4.0     # pre-activations of order 1: nothing near saturation
    g64 = attacks.loss_gradient(float64_copy(source), x.astype(numpy.float64), t)
    scale = numpy.abs(g64).reshape(len(x), -1).max(axis=1).reshape(-1, 1, 1, 1)
    assert (numpy.abs(g64) > 1e-4 * scale).all()    # no sign float32 rounding could flip
    sets = source_sets(source, float64_copy(source), x, t, 77, 16, CPU)
    numpy.testing.assert_array_equal(sets['blackbox_float64'], sets['blackbox'])
    assert sets['blackbox_float64'].dtype == numpy.float32
    assert not sets['zero_grad'].any() and not sets['zero_grad_float64'].any()
    assert (sets['blackbox'] != x).any()
    got = evaluate_set(model, float64_copy(model), x, t, 77, 16, 'batch', CPU,
                       ['blackbox', 'blackbox_float64'], sets['blackbox'],
                       black64=sets['blackbox_float64'])
    numpy.testing.assert_array_equal(got['blackbox'], got['blackbox_float64'])


def _pixel_sum_victim():
    """S with one hidden unit per layer: class 9 when the pixel sum is above 15, class 0 below."""
    model = models.FC100('S', sizes=(4, 1, 1, 10))
    model.l1.W.array[...] = 0.1
    model.l1.b.array[...] = -1.5       # h1 = sigmoid(sum / 10 - 1.5): 0.82 at 30, 0.18 at 0
    model.l2.W.array[...] = 1.0
    model.l2.b.array[...] = 0.0        # h2 = sigmoid(h1): 0.69 at sum 30, 0.55 at 0; 0.62 at 15
    model.l3.W.array[...] = 0.0
    model.l3.b.array[...] = -10.0
    model.l3.W.array[9], model.l3.b.array[9] = 40.0, -40.0 * 0.62
    model.l3.W.array[0], model.l3.b.array[0] = -40.0, 40.0 * 0.62
    return model


def test_blackbox_float64_attacks_images_a_float32_saturated_source_leaves_alone():
    # The hand-built source: its hidden unit is exactly 1 in float32 once the pixel sum passes
    # ~17, but not in float64 below ~37. Pixel sums 30 are saturated only in float32; there, for
    # truth 9, the float64 loss gradient is negative in every pixel (its output weights
    # -1..1 make class 9's target pull h down), so FGSM takes the image to 0.
    source = _saturating_network()
    x = numpy.zeros((6, 1, 2, 2), numpy.float32)
    x[:3, 0, 0, 0] = 30
    x[3, 0, 0, 0] = 3
    x[4, 0, 0, :] = 1
    x[4, 0, 1, 0] = 1
    x[5] = 255                                   # saturated in both
    t = numpy.array([9, 9, 9, 0, 0, 9], numpy.int32)
    sets = source_sets(source, float64_copy(source), x, t, 77, 4, CPU)
    assert sets['zero_grad'].tolist() == [True, True, True, False, False, True]
    assert sets['zero_grad_float64'].tolist() == [False, False, False, False, False, True]
    moved32 = (sets['blackbox'] != x).reshape(6, -1).any(axis=1)
    moved64 = (sets['blackbox_float64'] != x).reshape(6, -1).any(axis=1)
    # float32 FGSM leaves the three float32-saturated images as they are; float64 moves them
    assert moved32.tolist() == [False, False, False, True, True, False]
    assert moved64.tolist() == [True, True, True, True, True, False]
    numpy.testing.assert_array_equal(sets['blackbox_float64'][:3], 0.0)
    # where the float32 gradient is not zero, both are the same FGSM step
    numpy.testing.assert_array_equal(sets['blackbox'][3:], sets['blackbox_float64'][3:])
    # the float32 victim: correct on every clean image, fooled only by the moved sums 30
    victim = _pixel_sum_victim()
    got = evaluate_set(victim, float64_copy(victim), x, t, 77, 6, 'batch', CPU,
                       ['blackbox', 'blackbox_float64'], sets['blackbox'],
                       black64=sets['blackbox_float64'])
    assert got['clean'].all()
    assert got['blackbox'][:3].all() and got['blackbox'][5]
    assert not got['blackbox_float64'][:3].any() and got['blackbox_float64'][5]
    numpy.testing.assert_array_equal(got['blackbox'][3:], got['blackbox_float64'][3:])
    assert not (got['worst_case'] & ~got['blackbox_float64']).any()
    with pytest.raises(ValueError, match='blackbox_float64'):
        evaluate_set(victim, float64_copy(victim), x, t, 77, 6, 'batch', CPU,
                     ['blackbox_float64'], sets['blackbox'])


@pytest.mark.gpu
def test_source_sets_on_the_gpu_agree_with_numpy(small, images):
    # The path of Friendly.fidelity --device @cupy:0: the float64 copy made on the GPU, its
    # examples brought back to the CPU; float64 gradients of the same weights give the same
    # signs on both devices except where a gradient entry is ~0.
    source = small('S', seed=3)
    x, t = images(40, seed=5)
    expected = source_sets(source, float64_copy(source), x, t, 77, 20, CPU)
    gpu = chainer.get_device('@cupy:0')
    source.to_device(gpu)
    got = source_sets(source, float64_copy(source), x, t, 77, 20, gpu)
    for key in ('blackbox', 'blackbox_float64'):
        assert isinstance(got[key], numpy.ndarray) and got[key].dtype == numpy.float32
        assert (got[key] != expected[key]).mean() < 0.01
    numpy.testing.assert_array_equal(got['zero_grad_float64'], expected['zero_grad_float64'])


# -- the batching and the report keys -----------------------------------------------------------

def test_batches_cover_the_set_in_order():
    assert list(evaluation.batches(5, 2)) == [(0, 2), (2, 4), (4, 5)]
    assert list(evaluation.batches(4, 4)) == [(0, 4)]
    assert list(evaluation.batches(0, 3)) == []


def test_accuracy_pct_maps_the_evaluator_keys_to_the_report_keys():
    got = {'clean': numpy.array([True, True, False, True]),
           'fgsm': numpy.array([True, False, False, False]),
           'blackbox': numpy.array([True, True, False, False]),
           'worst_case': numpy.array([True, False, False, False])}
    assert evaluate_report.accuracy_pct(got) == {'clean': 75.0, 'fgsm_white': 25.0,
                                                 'fgsm_black': 50.0}
    assert list(evaluate_report.accuracy_pct(got)) == ['clean', 'fgsm_white', 'fgsm_black']
