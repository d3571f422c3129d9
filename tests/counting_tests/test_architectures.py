"""Tests of Counting.architectures: every architecture's layers and traits, written out by hand
(the values the counters were trained with), and a counter built from each record."""
import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting import architectures
from Counting import links
from Counting import models

#: arch -> (convolutions as (in, out, ksize, stride, pad), pooled convolutions, summed over
#: space, edge-like first layer, edge shift, edge initial scale, first layer without
#: renormalization, renormalization decay, biases dropped under renormalization)
EXPECTED = {
    'convolutional': (((3, 10, 7, 5, 0), (10, 10, 7, 5, 0), (10, 10, 3, 5, 0)),
                      (), False, False, 0.0, None, False, 0.99, True),
    'convolutionallarge': (((3, 30, 7, 3, 0), (30, 40, 7, 3, 0), (40, 50, 7, 3, 0),
                            (50, 60, 5, 1, 2), (60, 70, 5, 1, 2), (70, 60, 5, 1, 2),
                            (60, 50, 5, 2, 0), (50, 40, 5, 2, 0), (40, 30, 3, 1, 0),
                            (30, 20, 3, 1, 0)),
                           (), False, False, 0.0, None, False, 0.95, False),
    'local': (((3, 8, 3, 1, 0), (8, 8, 3, 1, 0), (8, 8, 3, 1, 0), (8, 8, 3, 1, 0)),
              (), True, True, 0.0, 0.1, False, 0.99, True),
    'edgepool': (((3, 16, 3, 1, 0), (16, 16, 3, 1, 0), (16, 16, 3, 1, 0), (16, 16, 3, 1, 0)),
                 (0, 1, 2), True, True, 24.0, 1.0, True, 0.99, True),
}


def test_the_table_holds_the_four_architectures_in_order():
    assert tuple(architectures.ARCHITECTURES) == ('convolutional', 'convolutionallarge',
                                                   'local', 'edgepool')


@pytest.mark.parametrize('arch', sorted(EXPECTED))
def test_record_traits(arch):
    layers, pools, summed, edge, shift, scale, no_first, decay, nobias = EXPECTED[arch]
    record = architectures.ARCHITECTURES[arch]
    assert record.name == arch
    assert record.layers == layers
    assert record.pool_after == pools
    assert record.sum_pooled is summed
    assert record.edge_first is edge
    assert record.edge_shift == shift
    assert record.edge_init_scale == scale
    assert record.no_renorm_first is no_first
    assert record.renorm_decay == decay
    assert record.nobias_under_renorm is nobias
    with pytest.raises(Exception):  # frozen: one record, one truth
        record.renorm_decay = 0.5


@pytest.mark.parametrize('arch', sorted(EXPECTED))
def test_geometry_interleaves_the_poolings(arch):
    layers, pools = EXPECTED[arch][:2]
    want = []
    for i, (_, _, k, s, p) in enumerate(layers):
        want.append((k, s, p))
        if i in pools:
            want.append((2, 2, 0))
    assert architectures.geometry(arch) == tuple(want)


@pytest.mark.parametrize('arch', sorted(EXPECTED))
@pytest.mark.parametrize('batch_renorm', [False, True])
def test_every_architecture_builds_with_its_traits(arch, batch_renorm):
    layers, pools, summed, edge, shift, scale, no_first, decay, nobias = EXPECTED[arch]
    model = models.build_counter(arch, 'softplus', n_types=2, batch_renorm=batch_renorm)
    assert model.n_conv == len(layers)
    assert model.sum_pooled is summed
    assert tuple(model.pool_after) == pools
    assert model.edge_shift == shift
    renorm_from = 1 if no_first else 0
    for i, (c_in, c_out, k, s, p) in enumerate(layers):
        conv = getattr(model, 'conv{}'.format(i + 1))
        assert isinstance(conv, links.EdgeConvolution2D) is (edge and i == 0)
        assert conv.W.shape == (c_out, c_in, k, k)
        assert conv.stride == (s, s) and conv.pad == (p, p)
        renorm = batch_renorm and i >= renorm_from
        assert hasattr(model, 'brn{}'.format(i + 1)) is renorm
        if renorm:
            assert getattr(model, 'brn{}'.format(i + 1)).decay == decay
        assert (conv.b is None) is (renorm and nobias)
    if edge:
        # LeCun's normal times the scale: the spread of the first kernels follows the scale.
        fan_in = layers[0][0] * layers[0][2] ** 2
        std = float(numpy.std(model.conv1.W.array))
        assert std < 3 * scale / numpy.sqrt(fan_in)
    size = 835 if arch == 'convolutionallarge' else 96
    h, w = models.output_size(arch, (size, size))
    with chainer.using_config('train', False):
        y = model(numpy.zeros((1, 3, size, size), numpy.float32))
    assert y.shape == (1, 2)
    last = layers[-1][1]
    assert model.fc.W.shape == (2, last if summed else last * h * w)
