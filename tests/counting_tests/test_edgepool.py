"""The ``edgepool`` counter (the quick preset's): an edge-like first layer whose uniform regions sit
in the activation's flat tail, stride-free convolutions, 2 x 2 average pooling, a global sum."""
import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting import architectures, detection, links, models
from Counting.detection import detect_shapes
from Counting.detection import second


def _model(activation, dtype=numpy.float32, seed=0):
    """An edgepool counter with random (not zero) linear weights, so that it has a saliency."""
    with chainer.using_config('dtype', dtype):
        numpy.random.seed(seed)
        model = models.build_counter('edgepool', activation, n_types=2)
        models._initialize_lazy(model, (64, 64))
    model.fc.W.array[:] = numpy.random.RandomState(seed).normal(0, 1, model.fc.W.shape)
    return model


def _saliency(model, x):
    with chainer.using_config('train', False):
        xv = chainer.Variable(x[None])
        g, = chainer.grad([chainer.functions.sum(model(xv))], [xv])
    return numpy.abs(g.array[0]).max(axis=0)


def test_geometry_and_receptive_field():
    # 128 -> conv 126 -> pool 63 -> conv 61 -> pool 30 -> conv 28 -> pool 14 -> conv 12
    assert models.output_size('edgepool', (128, 128)) == (12, 12)
    assert architectures.geometry('edgepool') == ((3, 1, 0), (2, 2, 0), (3, 1, 0), (2, 2, 0),
                                           (3, 1, 0), (2, 2, 0), (3, 1, 0))
    model = _model('softplus')
    assert isinstance(model.conv1, links.EdgeConvolution2D) and model.sum_pooled
    # Last unit u sees pixels 8u .. 8u + 37 (receptive field 3, +1 pool, +2x2, +2, +2x4, +4,
    # +2x8 = 38, stride 8); pixel 64 is seen by units 4..8, whose fields span 32..101.
    support = detection.Support.of_model(model, (128, 128))
    assert support.box(64, 64) == (32, 101, 32, 101)
    assert support.box(0, 125) == (0, 37, 88, 125)  # columns 126 and 127 are never seen
    assert support.box(0, 126) is None


def test_uniform_regions_far_from_edges_get_zero_saliency():
    # Every layer is translation-equivariant (stride-free convolutions, poolings that tile the
    # map) and the first one ignores constants, so a pixel whose whole receptive field is uniform
    # moves the summed features by a zero-sum pattern: its saliency is zero, in float64 up to
    # rounding, whatever the weights. (A strided convolution would sample the pattern instead.)
    model = _model('softplus', numpy.float64)
    x = numpy.zeros((3, 200, 200))
    x[2, 10:30, 12:32] = 255.0
    sal = _saliency(model, x)
    edge = sal[9:31, 11:33].max()
    assert edge > 0
    far = sal[90:110, 90:110]  # > 38 px from the square and from the image's borders
    assert far.max() < 1e-12 * edge


def test_the_shift_gates_uniform_regions():
    # The first layer's pre-activations are shifted by -24: with ReLU a uniform region then
    # passes no gradient at all, even 2 px from an edge, where other units of the network still
    # see the edge; with SoftPlus about 4e-11 of an edge's.
    model = _model('relu')
    assert model.edge_shift == 24.0
    model.conv1.b.array[:] = 1.0  # without the shift every unit of a uniform region is open
    x = numpy.zeros((3, 64, 64), numpy.float32)
    x[2, 20:44, 20:44] = 255.0
    sal = _saliency(model, x)
    inside = numpy.zeros((64, 64), bool)
    inside[23:41, 23:41] = True   # 3 px and more inside the square
    outside = numpy.ones((64, 64), bool)
    outside[17:47, 17:47] = False  # 3 px and more outside it
    assert sal[19:45, 19:45].max() > 0
    assert sal[inside].max() == 0 and sal[outside].max() == 0
    model.edge_shift = 0.0
    assert _saliency(model, x)[inside].max() > 0
    soft = _model('softplus', numpy.float64)
    sal = _saliency(soft, x.astype(numpy.float64))
    assert sal[inside].max() < 1e-9 * sal.max() and sal[outside].max() < 1e-9 * sal.max()


def test_edge_layer_is_not_renormalized():
    # Under --batch-renorm every convolution but the edge layer is renormalized (and drops its
    # bias); the edge layer keeps its bias and the scale the shift is measured in.
    model = models.build_counter('edgepool', 'sigmoid', batch_renorm=True)
    assert not hasattr(model, 'brn1') and model.conv1.b is not None
    assert [layer.name for layer in model.renorm_layers()] == ['brn2', 'brn3', 'brn4']
    assert all(getattr(model, 'conv{}'.format(i)).b is None for i in (2, 3, 4))
    model.set_renorm_limits(1.1, 1.1)
    assert all(layer.rmax == 1.1 for layer in model.renorm_layers())


@pytest.mark.parametrize('connected', [False, True])
def test_accelerator_finds_the_groups_of_the_faithful_loop(connected):
    # The packed rows of the accelerator follow the poolings' receptive fields: the default
    # detection gives the seeds and groups of the thesis's loop as written.
    model = _model('softplus')
    rng = numpy.random.RandomState(1)
    x = numpy.zeros((3, 96, 96), numpy.float32)
    x[2, 10:30, 8:26] = 255
    x[2, 60:84, 58:80] = 255
    x += rng.uniform(0, 5, x.shape).astype(numpy.float32)
    first = second.FirstOrder(model, x)
    p = numpy.unravel_index(first.saliency.argmax(), first.saliency.shape)
    row = first.row(*p)
    threshold = float(numpy.quantile(row[row > 0], 0.5))
    faithful = second.second_derivative_groups(first, 4, threshold, connected=connected)
    fast = detect_shapes(model, x, threshold=threshold, count=4, connected=connected)
    assert len(faithful) == len(fast) == 4
    for a, b in zip(faithful, fast):
        assert a.seed == b.seed
        numpy.testing.assert_allclose(b.importance, a.importance, rtol=1e-4,
                                      atol=1e-6 * float(a.importance.max()))
        assert (a.mask != b.mask).sum() <= 2
    # The support is exact: a row is zero outside its pixel's box.
    support = detection.Support.of_model(model, (96, 96))
    y0, y1, x0, x1 = support.box(*p)
    outside = numpy.ones(row.shape, bool)
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert row[outside].max() == 0 and row[~outside].max() > 0


def test_connected_groups_keep_the_part_that_touches_the_seed():
    from Counting.detection.groups import group_mask
    importance = numpy.zeros((10, 12), numpy.float32)
    importance[1:4, 1:4] = 5.0    # the seed's blob
    importance[4, 4] = 2.0        # touches it at a corner (8-connected)
    importance[6:9, 7:11] = 3.0   # another blob, apart
    assigned = numpy.zeros((10, 12), bool)
    assigned[2, 2] = True         # assigned pixels never join a group
    plain = group_mask(importance, 1.0, assigned, (1, 1))
    kept = group_mask(importance, 1.0, assigned, (1, 1), connected=True)
    assert plain.sum() == 8 + 1 + 12 and kept.sum() == 8 + 1
    assert kept[4, 4] and not kept[6:9, 7:11].any() and not kept[2, 2]
    # A seed below the cut still anchors its component.
    importance[1, 1] = 0.0
    assert group_mask(importance, 1.0, assigned, (1, 1), connected=True).sum() == 7 + 1
