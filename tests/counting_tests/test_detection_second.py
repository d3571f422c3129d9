"""Tests of the thesis's detection loop as written (Counting.detection.second)."""

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer.functions as F

from Counting import detection
from Counting.detection import detect_shapes


def test_detect_equals_the_thesis_loop_written_out(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    threshold = helpers.middle_threshold(model, x)
    found = detect_shapes(model, x, threshold=threshold, count=6)
    reference = helpers.reference_groups(model, x, 6, threshold)
    assert len(found) == len(reference) == 6
    for group, (seed, mask) in zip(found, reference):
        assert group.seed == seed
        numpy.testing.assert_array_equal(group.mask, mask)


def test_groups_are_disjoint_and_boxed(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    found = detect_shapes(model, x, threshold=helpers.middle_threshold(model, x), count=8)
    assert len(found) == 8 and found.count == 8 and found.method == 'second'
    seen = numpy.zeros(x.shape[1:], bool)
    seeds = set()
    for group in found:
        assert group.mask.dtype == bool and group.importance.dtype == numpy.float32
        assert not (seen & group.mask).any()
        seen |= group.mask
        assert group.seed not in seeds
        seeds.add(group.seed)
        if group.mask.any():
            ys, xs = numpy.nonzero(group.mask)
            assert group.box == [xs.min(), ys.min(), xs.max(), ys.max()]
        else:
            assert group.box is None
    # A seed is never inside a later group.
    for i, group in enumerate(found):
        assert not any(later.mask[group.seed] for later in found[i + 1:])


def test_count_defaults_to_rounded_sum_of_outputs(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    model.l.b.array[:] = [1.2, 1.4 - model(x[None]).array[0].sum()]  # outputs sum to 2.6
    found = detect_shapes(model, x, threshold=helpers.middle_threshold(model, x))
    assert found.count == 3 and len(found) == 3
    numpy.testing.assert_allclose(found.outputs.sum(), 2.6, rtol=1e-5)


def test_loop_stops_when_every_pixel_is_assigned(helpers):
    model, x = helpers.Tiny(), helpers.tiny_image()
    found = detect_shapes(model, x, threshold=0.0, count=5)
    # threshold 0 puts every unassigned pixel in the first group.
    assert len(found) == 1 and found[0].mask.all()


def test_relu_has_no_second_derivative(helpers):
    model, x = helpers.Tiny(activation=F.relu), helpers.tiny_image()
    with pytest.raises(detection.SecondDerivativeError) as e:
        detect_shapes(model, x, count=2)
    message = str(e.value)
    assert '\n' not in message
    for word in ('smooth activation', 'softplus', 'sigmoid', '--method upper', 'kmeans'):
        assert word in message
    # The first-derivative variants work on it.
    assert len(detect_shapes(model, x, method='kmeans', count=2)) >= 1
    assert len(detect_shapes(model, x, method='upper', count=2)) >= 1


@pytest.mark.parametrize('rule,level', [('fraction', 0.3), ('quantile', 0.8)])
def test_auto_threshold_is_the_loop_with_each_groups_own_cut(helpers, rule, level):
    # The thesis's loop written out, with the threshold of each group computed by hand from its
    # own importance row.
    model, x = helpers.Tiny(), helpers.tiny_image()
    found = detect_shapes(model, x, threshold='auto', count=3, auto_rule=rule, auto_level=level)
    engine = detection.SecondDerivativeRows(model, x)
    assigned = numpy.zeros(x.shape[1:], bool)
    sal = engine.saliency
    assert len(found) == 3
    for group in found:
        p = numpy.unravel_index(numpy.where(assigned, -numpy.inf, sal).argmax(), sal.shape)
        assert group.seed == tuple(int(v) for v in p)
        row = engine.rows([p])[0]
        if rule == 'fraction':
            cut = level * row.max()
        else:
            cut = numpy.quantile(row[~assigned & (row > 0)], level)
        mask = (row >= cut) & ~assigned
        numpy.testing.assert_array_equal(group.mask, mask)
        assigned |= mask
        assigned[p] = True
