"""Tests of the accelerator of the detection loop (Counting.detection.accelerator)."""

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting import detection
from Counting.detection import detect_shapes
from Counting.detection import accelerator
from Counting import gradients


def _finite_difference_row(model, x, p, output=None, eps=1e-3):
    """``max_c |d saliency[p] / d image|`` by central differences of the saliency map."""
    h = numpy.zeros(x.shape)
    for index in numpy.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        h[index] = (float(gradients.saliency_array(model, plus, output)[p])
                    - float(gradients.saliency_array(model, minus, output)[p])) / (2 * eps)
    return numpy.abs(h).max(axis=0)


def test_second_derivative_row_matches_finite_differences(helpers):
    model = helpers.Tiny(dtype=numpy.float64, map_size=2)
    x = helpers.tiny_image(size=9, dtype=numpy.float64)
    sal = gradients.saliency_map(model, x)
    p = numpy.unravel_index(sal.argmax(), sal.shape)
    row = detection.SecondDerivativeRows(model, x).rows([p])[0]
    expected = _finite_difference_row(model, x, p)
    assert expected.max() > 0
    numpy.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-6 * expected.max())


@pytest.mark.parametrize('batch', [2, 3, 5])
def test_batched_rows_give_the_same_groups(helpers, batch):
    model, x = helpers.Tiny(), helpers.tiny_image()
    threshold = helpers.middle_threshold(model, x)
    one = detect_shapes(model, x, threshold=threshold, count=10, batch=1)
    many = detect_shapes(model, x, threshold=threshold, count=10, batch=batch)
    assert helpers.same_groups(one, many)
    assert many.passes < many.rows
    assert one.passes == one.rows == len(one)
    fresh = detect_shapes(model, x, threshold=threshold, count=10, batch=batch,
                          reuse_graph=False)
    assert helpers.same_groups(one, fresh)


def test_batched_rows_with_a_fixed_spread_and_seed_upper(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    threshold = helpers.middle_threshold(model, x)
    for spread in (0, 2, 20):
        assert helpers.same_groups(detect_shapes(model, x, threshold=threshold, count=7),
                           detect_shapes(model, x, threshold=threshold, count=7, batch=4,
                                         spread=spread))
    capped = detect_shapes(model, x, threshold=threshold, count=7, seed_upper=0.5)
    top = capped.saliency.max()
    assert capped and all(capped.saliency[g.seed] <= 0.5 * top for g in capped)
    assert helpers.same_groups(capped, detect_shapes(model, x, threshold=threshold, count=7,
                                             seed_upper=0.5, batch=3))


def test_rows_of_copies_are_each_their_own(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    pixels = [(3, 4), (8, 8), (5, 2)]
    together = detection.SecondDerivativeRows(model, x, copies=3).rows(pixels)
    alone = detection.SecondDerivativeRows(model, x, copies=1)
    for p, row in zip(pixels, together):
        numpy.testing.assert_allclose(row, alone.rows([p])[0], rtol=1e-5, atol=1e-6 * row.max())


def test_support_boxes_by_hand():
    lo, hi = accelerator._axis_support([(3, 2, 0)], 7)  # units see 0..2, 2..4, 4..6
    numpy.testing.assert_array_equal(lo, [0, 0, 0, 2, 2, 4, 4])
    numpy.testing.assert_array_equal(hi, [2, 2, 4, 4, 6, 6, 6])
    lo, hi = accelerator._axis_support([(3, 5, 0)], 12)  # units see 0..2 and 5..7 only
    assert list(lo <= hi) == [True] * 3 + [False] * 2 + [True] * 3 + [False] * 4
    numpy.testing.assert_array_equal(lo[5:8], 5)
    numpy.testing.assert_array_equal(hi[5:8], 7)
    # Padding: layer 2 units see layer-1 units 0..2 and 2..4, i.e. pixels -1..3 and 1..5.
    lo, hi = accelerator._axis_support([(3, 1, 1), (3, 2, 0)], 6)
    numpy.testing.assert_array_equal(lo, [0, 0, 0, 0, 1, 1])
    numpy.testing.assert_array_equal(hi, [3, 5, 5, 5, 5, 5])
    support = detection.Support.from_convolutions([(3, 5, 0)], (12, 7))
    assert support.box(6, 1) == (5, 7, 0, 2) and support.box(3, 1) is None
    assert support.empty()[3].all() and not support.empty()[6, :3].any()


TINY_CONVOLUTIONS = [(3, 1, 0), (3, 3, 0)]  # (ksize, stride, pad) of helpers.Tiny's convolutions


def test_packed_rows_are_the_rows_computed_alone(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    support = detection.Support.from_convolutions(TINY_CONVOLUTIONS, (12, 12))
    # Bit for bit with dense convolutions (sparse ones crop differently, so round differently).
    engine = detection.SecondDerivativeRows(model, x, support=support, sparse=False)
    # Layer-2 units see pixels 0..4, 3..7 and 6..10 on each axis; pixel 4 is seen by two.
    assert support.box(4, 4) == (0, 7, 0, 7) and support.box(11, 0) is None
    pixels = [(1, 1), (1, 10), (10, 1)]
    boxes = [support.box(*p) for p in pixels]
    assert boxes == [(0, 4, 0, 4), (0, 4, 6, 10), (6, 10, 0, 4)]
    packed = engine.packed_rows([pixels])
    assert engine.passes == 2  # the packed pass and, once per image, a check of its first row
    for p, row in zip(pixels, packed):
        numpy.testing.assert_array_equal(row.full((12, 12)), engine.rows([p])[0])


def test_packing_gives_the_same_groups(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    threshold = helpers.middle_threshold(model, x)
    support = detection.Support.from_convolutions(TINY_CONVOLUTIONS, (12, 12))
    plain = detect_shapes(model, x, threshold=threshold, count=10, support=None, sparse=False)
    packed = detect_shapes(model, x, threshold=threshold, count=10, support=support,
                           sparse=False)
    assert helpers.same_groups(plain, packed)
    for a, b in zip(plain, packed):
        numpy.testing.assert_array_equal(a.importance, b.importance)
    assert packed.passes < plain.passes == 10
    assert helpers.same_groups(plain, detect_shapes(model, x, threshold=threshold, count=10,
                                                       batch=3, support=support))


def test_unseen_pixels_cost_no_pass(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    support = detection.Support.from_convolutions(TINY_CONVOLUTIONS, (12, 12))
    # An unreachable threshold: every group is empty and every pixel becomes a seed in turn.
    plain = detect_shapes(model, x, threshold=1e9, count=144, support=None)
    packed = detect_shapes(model, x, threshold=1e9, count=144, support=support)
    assert len(plain) == 144 and helpers.same_groups(plain, packed)
    assert plain.passes == 144
    # Row 11 and column 11 feed no unit (23 pixels): zero saliency, zero rows, no pass.
    unseen = [g for g in packed if g.seed[0] == 11 or g.seed[1] == 11]
    assert len(unseen) == 23 and all(packed.saliency[g.seed] == 0 for g in unseen)
    assert packed.passes <= 144 - 23 + 1


def test_packing_falls_back_when_the_boxes_are_wrong(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    threshold = helpers.middle_threshold(model, x)
    wrong = detection.Support.from_convolutions([(1, 1, 0)], (12, 12))  # 1-pixel boxes
    plain = detect_shapes(model, x, threshold=threshold, count=6, support=None)
    with pytest.warns(UserWarning, match='leak'):
        packed = detect_shapes(model, x, threshold=threshold, count=6, support=wrong)
    assert helpers.same_groups(plain, packed)


def test_counter_support_is_derived_and_exact(helpers, recwarn):
    from Counting.models import build_counter
    numpy.random.seed(0)
    model = build_counter('convolutional', 'softplus')
    rng = numpy.random.RandomState(0)
    x = numpy.zeros((3, 300, 300), numpy.float32)
    x[2, 40:90, 30:80] = 255
    x[2, 150:260, 180:230] = 255
    x += rng.uniform(0, 5, x.shape).astype(numpy.float32)
    with chainer.using_config('train', False):
        model(x[None])
    model.fc.b.array[:] = 5.0
    support = detection.Support.of_model(model, (300, 300))
    # The last convolution's units see pixels 0..86, 125..211 and 250..299 on each axis.
    assert support.box(50, 130) == (0, 86, 125, 211) and support.box(100, 50) is None
    assert support.box(299, 299) is None  # (11 - 3) // 5 + 1 = 2 units: a 2 x 2 last map
    assert detection.Support.of_model(helpers.Tiny(), (12, 12)) is None
    plain = detect_shapes(model, x, count=6, support=None, sparse=False)
    packed = detect_shapes(model, x, count=6)
    assert helpers.same_groups(plain, packed) and len(packed) == 6
    assert packed.passes < plain.passes
    assert helpers.same_groups(plain, detect_shapes(model, x, count=6, support=None,
                                                       sparse=True))
    assert not [w for w in recwarn if 'leak' in str(w.message)]


@pytest.mark.parametrize('output', [None, 0, 1])
def test_typed_second_derivative_row_matches_finite_differences(helpers, output):
    """With ``output`` the row is d saliency_output[p] / d image, saliency_output being the
    gradient of that output alone; the faithful loop's row and the accelerator's agree."""
    from Counting.detection import second
    model = helpers.Tiny(dtype=numpy.float64, map_size=2)
    x = helpers.tiny_image(size=9, dtype=numpy.float64)
    sal = gradients.saliency_map(model, x, output)
    p = numpy.unravel_index(sal.argmax(), sal.shape)
    row = detection.SecondDerivativeRows(model, x, output=output).rows([p])[0]
    faithful = second.FirstOrder(model, x, output=output).row(*p)
    expected = _finite_difference_row(model, x, p, output)
    assert expected.max() > 0
    numpy.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-6 * expected.max())
    numpy.testing.assert_allclose(faithful, expected, rtol=1e-4, atol=1e-6 * expected.max())


@pytest.mark.parametrize('arch,size,output', [
    ('convolutional', 300, None),
    ('convolutional', 300, 0),
    ('convolutional', 300, 1),
    pytest.param('convolutionallarge', 850, None, marks=pytest.mark.slow)])  # its smallest image
def test_accelerator_finds_the_groups_of_the_faithful_loop(arch, size, output, monkeypatch):
    """The documented check of Counting.detection.accelerator: on the project's counters, the
    default detection (kept graph, packed rows, sparse tangents) gives the seeds and masks of the
    thesis's loop as written (Counting.detection.second), with fewer passes on the small network
    (packing) and the tangents' convolutions going the sparse way. Without sparse tangents the
    rows are bit for bit those of the loop (test_packing_gives_the_same_groups)."""
    from Counting.detection import second
    from Counting.functions import sparse_tangent_convolution as stc
    from Counting.models import build_counter
    numpy.random.seed(0)
    model = build_counter(arch, 'softplus')
    rng = numpy.random.RandomState(0)
    x = numpy.zeros((3, size, size), numpy.float32)
    x[2, size // 8:size // 3, size // 10:size // 4] = 255
    x[2, size // 2:size * 5 // 6, size * 3 // 5:size * 3 // 4] = 255
    x += rng.uniform(0, 5, x.shape).astype(numpy.float32)
    with chainer.using_config('train', False):
        model(x[None])
    model.fc.b.array[:] = 5.0
    first = second.FirstOrder(model, x, output=output)
    p = numpy.unravel_index(first.saliency.argmax(), first.saliency.shape)
    row = first.row(*p)
    threshold = float(numpy.quantile(row[row > 0], 0.5))  # groups stay partial
    faithful = second.second_derivative_groups(first, 6, threshold)
    calls = []
    real = stc.sparse_forward
    monkeypatch.setattr(stc, 'sparse_forward', lambda *a: calls.append(1) or real(*a))
    fast = detect_shapes(model, x, threshold=threshold, count=6, output=output)
    if output is not None:  # the typed loop differentiates that output alone
        numpy.testing.assert_array_equal(fast.saliency, gradients.saliency_map(model, x, output))
        assert not numpy.array_equal(fast.saliency, gradients.saliency_map(model, x))
    assert len(faithful) == len(fast) == 6 and calls
    # Sparse convolutions sum in another order: only a pixel whose importance, in this group or
    # an earlier one (which then took it or not), is within rounding of the threshold may change
    # sides.
    borderline = numpy.zeros(x.shape[1:], bool)
    for a, b in zip(faithful, fast):
        assert a.seed == b.seed
        numpy.testing.assert_allclose(b.importance, a.importance, rtol=1e-4,
                                      atol=1e-6 * float(a.importance.max()))
        borderline |= numpy.isclose(a.importance, threshold, rtol=1e-4, atol=0)
        differ = a.mask != b.mask
        assert differ.sum() <= 2 and not (differ & ~borderline).any()
    if arch == 'convolutional':
        assert fast.passes < first.passes
    plain = detect_shapes(model, x, threshold=threshold, count=6, support=None, sparse=False,
                             output=output)
    assert [g.seed for g in plain] == [g.seed for g in faithful]
    for a, b in zip(plain, faithful):
        numpy.testing.assert_array_equal(a.mask, b.mask)


def test_typed_detection_runs_once_per_output_with_its_own_count(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    threshold = helpers.middle_threshold(model, x)
    found = detection.detect_typed(model, x, ['tri', 'sq'], threshold=threshold,
                                   counts=[2, 3])
    assert found.counts == [2, 3] and found.count == 5
    assert [g.type for g in found] == ['tri'] * 2 + ['sq'] * 3
    for k, kind in enumerate(('tri', 'sq')):
        alone = detect_shapes(model, x, threshold=threshold, count=found.counts[k], output=k)
        mine = [g for g in found if g.type == kind]
        assert helpers.same_groups(alone, mine)
        # the faithful loop (no packing, no sparse tangents) gives the same groups per type
        plain = detect_shapes(model, x, threshold=threshold, count=found.counts[k], output=k,
                                 support=None, sparse=False, batch=1)
        assert helpers.same_groups(plain, mine)
    # its pictures show the saliency of the sum of the outputs
    numpy.testing.assert_array_equal(found.saliency, gradients.saliency_map(model, x))
    # by default each output's own rounded value is the number of groups
    outputs = found.outputs
    default = detection.detect_typed(model, x, ['tri', 'sq'], threshold=threshold)
    assert default.counts == [max(int(round(float(v))), 0) for v in outputs]
    with pytest.raises(ValueError, match='sets count'):
        detection.detect_typed(model, x, ['tri', 'sq'], count=2)
