import os

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
from chainer import testing
from chainer import training
import chainer.functions as F

from Counting import functions
from Counting import links
from Counting import models
from lenses_common.runfolder import save_npz
from lenses_common.snapshots import FINAL_MODEL


def _images(b, h, w, seed=0):
    rng = numpy.random.RandomState(seed)
    return rng.randint(0, 256, (b, 3, h, w)).astype(numpy.float32)


@pytest.mark.parametrize('activation', models.ACTIVATIONS)
@pytest.mark.parametrize('batch_renorm', [False, True])
def test_small_counter_shapes(activation, batch_renorm):
    model = models.build_counter('convolutional', activation, n_types=2,
                                 batch_renorm=batch_renorm)
    x = _images(3, 120, 90)
    with chainer.using_config('train', False):
        y = model(x)
    assert y.shape == (3, 2) and y.dtype == numpy.float32
    assert (y.array >= 0).all()  # ReLU on the output
    # The lazy linear layer takes 10 channels times the last map (h, w).
    h, w = models.output_size('convolutional', (120, 90))
    assert model.fc.W.shape == (2, 10 * h * w)
    # Convolutions drop their bias exactly when BRN is on.
    assert (model.conv1.b is None) == batch_renorm


def test_large_counter_thesis_shape():
    # For a 1000 x 1000 input the last map of convolutionallarge is 20 x 2 x 2.
    assert models.output_size('convolutionallarge', (1000, 1000)) == (2, 2)
    # Hand-computed: 1000 -> 199 -> 39 -> 8 for the small network.
    assert models.output_size('convolutional', (1000, 1000)) == (8, 8)
    model = models.build_counter('convolutionallarge', 'relu', n_types=1, batch_renorm=True)
    assert model.n_conv == 10
    assert model.brn1.decay == 0.95
    assert models.build_counter('convolutional', batch_renorm=True).brn1.decay == 0.99
    # Its three stride-3 and two stride-2 convolutions need at least 835 x 835 pixels.
    assert models.output_size('convolutionallarge', (835, 835)) == (1, 1)
    with pytest.raises(ValueError, match='too small'):
        models.output_size('convolutionallarge', (834, 834))


def test_forward_matches_manual_composition():
    model = models.build_counter('convolutional', 'sin', n_types=2)
    x = _images(2, 90, 95, seed=1)
    y = model(x).array  # shapes the lazy linear layer
    h = x
    for i in (1, 2, 3):
        conv = getattr(model, 'conv{}'.format(i))
        h = F.sin(F.convolution_2d(h, conv.W, conv.b, stride=conv.stride, pad=conv.pad))
    expected = numpy.maximum(h.array.reshape(2, -1) @ model.fc.W.array.T + model.fc.b.array, 0)
    numpy.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_activation_lookup():
    x = numpy.array([-2., 0., 300.], numpy.float32)
    numpy.testing.assert_allclose(models.get_activation('relu')(x).array, [0, 0, 300])
    numpy.testing.assert_allclose(models.get_activation('softplus')(x).array,
                                  functions.stable_softplus(x).array)
    b = 2.0
    numpy.testing.assert_allclose(models.get_activation('modsoftplus', b)(x[:2]).array,
                                  numpy.log1p(b ** x[:2]) / numpy.log(b), rtol=1e-6)
    with pytest.raises(ValueError, match='unknown activation'):
        models.get_activation('tanh')
    with pytest.raises(ValueError, match='base'):
        models.get_activation('modsoftplus', 1.0)
    with pytest.raises(ValueError, match='architecture'):
        models.build_counter('resnet')


def test_too_small_images():
    with pytest.raises(ValueError, match='too small'):
        models.output_size('convolutional', (20, 20))


def test_softplus_counter_second_derivative_finite():
    # The saliency-of-saliency of the SoftPlus counter stays finite on raw pixels.
    model = models.build_counter('convolutional', 'softplus', n_types=2)
    x = chainer.Variable(_images(1, 90, 90, seed=2))
    g, = chainer.grad([F.sum(model(x))], [x], enable_double_backprop=True)
    h, = chainer.grad([F.max(F.absolute(g))], [x])
    assert numpy.isfinite(g.array).all() and numpy.isfinite(h.array).all()


class _FakeUpdater:
    def __init__(self):
        self.epoch_detail = 0.0


class _FakeTrainer:
    def __init__(self):
        self.updater = _FakeUpdater()
        self.observation = {}


def test_renorm_schedule_steps_and_resumes(tmp_path):
    model = models.build_counter('convolutional', 'sigmoid', batch_renorm=True)
    ext = models.RenormSchedule(model, threshold=3.0, interval=20)
    trainer = _FakeTrainer()
    ext.initialize(trainer)
    assert (model.brn1.rmax, model.brn3.dmax) == (1.0, 0.0)
    seen = []
    # Loss above the threshold until epoch 5.5, then below; visit epochs in tenths.
    for k in range(1, 1000):
        epoch = k / 10.0
        trainer.updater.epoch_detail = epoch
        trainer.observation = {'main/loss': chainer.Variable(
            numpy.array(5.0 if epoch < 5.5 else 2.0, numpy.float32))}
        ext(trainer)
        seen.append((epoch, model.brn2.rmax, model.brn2.dmax))
    values = dict(((e, (r, d)) for e, r, d in seen))
    assert values[5.4] == (1.0, 0.0)
    assert values[5.5] == (1.1, 1.1)
    assert values[25.4] == (1.1, 1.1)
    assert values[25.5] == (10.0, 10.0)
    assert values[45.5] == (100.0, 100.0)
    assert values[65.5] == (1000.0, 1000.0)
    assert values[99.9] == (1000.0, 1000.0)

    # Snapshot at stage 2 and resume into a fresh model and extension.
    ext2 = models.RenormSchedule(model)
    ext2.stage, ext2.start_epoch = 2, 5.5
    path = str(tmp_path / 'ext.npz')
    chainer.serializers.save_npz(path, ext2)
    model_b = models.build_counter('convolutional', 'sigmoid', batch_renorm=True)
    ext_b = models.RenormSchedule(model_b)
    chainer.serializers.load_npz(path, ext_b)
    ext_b.initialize(trainer)
    assert (model_b.brn1.rmax, model_b.brn1.dmax) == (10.0, 10.0)
    assert isinstance(ext_b, training.Extension)


SETTINGS = {'arch': 'convolutional', 'activation': 'softplus', 'base': 1.1, 'batch_renorm': True,
            'types': ['tri', 'sq'], 'image_size': [90, 100], 'softplus': 'stable'}


def test_load_counter_roundtrip(helpers, tmp_path):
    model = models.build_counter('convolutional', 'softplus', batch_renorm=True)
    x = _images(2, 90, 100)
    with chainer.using_config('train', True):
        model(x)  # updates the BRN running averages, which must be saved and loaded too
    with chainer.using_config('train', False):
        expected = model(x).array
    helpers.write_run(str(tmp_path / 'run'), SETTINGS, model)
    loaded, settings = models.load_counter(str(tmp_path / 'run'))
    assert settings['activation'] == 'softplus'
    with chainer.using_config('train', False):
        numpy.testing.assert_array_equal(loaded(x).array, expected)


def test_load_counter_errors(helpers, tmp_path):
    with pytest.raises(models.RunError, match='does not exist'):
        models.load_counter(str(tmp_path / 'nothing'))
    os.makedirs(str(tmp_path / 'empty'))
    with pytest.raises(models.RunError, match='settings file .* does not exist'):
        models.load_counter(str(tmp_path / 'empty'))
    helpers.write_run(str(tmp_path / 'friendly'), {'network': 'S', 'lr': 0.002})
    with pytest.raises(models.RunError, match='not a counting run: missing arch'):
        models.load_counter(str(tmp_path / 'friendly'))
    helpers.write_run(str(tmp_path / 'nomodel'), SETTINGS)
    with pytest.raises(models.RunError, match='model file .* does not exist'):
        models.load_counter(str(tmp_path / 'nomodel'))
    # A model of another architecture does not fit.
    other = models.build_counter('convolutionallarge', 'relu')
    other.fc._initialize_params(80)
    helpers.write_run(str(tmp_path / 'mismatch'), SETTINGS, other)
    with pytest.raises(models.RunError, match='does not fit'):
        models.load_counter(str(tmp_path / 'mismatch'))
    with open(str(tmp_path / 'mismatch' / 'settings.json'), 'w') as f:
        f.write('{broken')
    with pytest.raises(models.RunError, match='not valid JSON'):
        models.load_counter(str(tmp_path / 'mismatch'))
    # A run folder of an earlier version: no softplus setting, a model file that records no
    # network, or one under the former name model.npz.
    old = {k: v for k, v in SETTINGS.items() if k != 'softplus'}
    helpers.write_run(str(tmp_path / 'old'), old)
    with pytest.raises(models.RunError, match='not a counting run: missing softplus'):
        models.load_counter(str(tmp_path / 'old'))
    model = models.build_counter('convolutional', 'softplus', batch_renorm=True)
    model(_images(1, 90, 100))
    helpers.write_run(str(tmp_path / 'unrecorded'), SETTINGS)
    save_npz(str(tmp_path / 'unrecorded' / FINAL_MODEL), model)
    with pytest.raises(models.RunError, match='records no network'):
        models.load_counter(str(tmp_path / 'unrecorded'))
    helpers.write_run(str(tmp_path / 'renamed'), SETTINGS, model)
    renamed = tmp_path / 'renamed'
    os.rename(str(renamed / FINAL_MODEL), str(renamed / 'model.npz'))
    with pytest.raises(models.RunError, match='model_final.npz does not exist'):
        models.load_counter(str(tmp_path / 'renamed'))


@testing.attr.gpu
def test_counter_on_gpu():
    import cupy
    model = models.build_counter('convolutional', 'modsoftplus', batch_renorm=True)
    model.to_device('@cupy:0')
    x = cupy.asarray(_images(2, 90, 90))
    y = model(x)
    assert isinstance(y.array, cupy.ndarray) and y.shape == (2, 2)


def test_biases_under_batch_renorm_follow_the_author():
    # The author's small network drops its convolution biases under Batch Renormalization, his
    # convolutionallarge keeps them (the author's code).
    small = models.build_counter('convolutional', 'sigmoid', batch_renorm=True)
    large = models.build_counter('convolutionallarge', 'sigmoid', batch_renorm=True)
    assert all(getattr(small, 'conv{}'.format(i)).b is None for i in (1, 2, 3))
    assert all(getattr(large, 'conv{}'.format(i)).b is not None for i in range(1, 11))
    assert all(getattr(models.build_counter('convolutionallarge'), 'conv{}'.format(i)).b
               is not None for i in range(1, 11))


def test_chainer_softplus_has_the_thesis_nan_second_derivative():
    # Same forward values, but F.softplus's second derivative is inf/inf = NaN for large inputs,
    # where the stable one is a tiny finite number (e / (1 + e)^2 with e = exp(-100)).
    x = chainer.Variable(numpy.array([-3.0, 0.5, 100.0], numpy.float32))
    values = {}
    for impl in models.SOFTPLUS_IMPLEMENTATIONS:
        f = models.get_activation('softplus', softplus=impl)
        y = f(x)
        g, = chainer.grad([F.sum(y)], [x], enable_double_backprop=True)
        h, = chainer.grad([F.sum(g)], [x])
        values[impl] = (y.array, g.array, h.array)
    numpy.testing.assert_allclose(values['chainer'][0], values['stable'][0], rtol=1e-6)
    numpy.testing.assert_allclose(values['chainer'][1], values['stable'][1], rtol=1e-6)
    s = 1 / (1 + numpy.exp(-0.5))
    numpy.testing.assert_allclose(values['stable'][2][:2],
                                  [numpy.exp(-3) / (1 + numpy.exp(-3)) ** 2, s * (1 - s)],
                                  rtol=1e-5)
    assert numpy.isfinite(values['stable'][2]).all()
    assert numpy.isnan(values['chainer'][2][2])
    with pytest.raises(ValueError, match='softplus'):
        models.get_activation('softplus', softplus='torch')


def test_chainer_softplus_counter_round_trips(helpers, tmp_path):
    model = models.build_counter('convolutional', 'softplus', softplus='chainer')
    assert model.activation_fn is F.softplus
    x = _images(1, 90, 90, seed=4)
    with chainer.using_config('train', False):
        y = model(x).array
    helpers.write_run(str(tmp_path), {'arch': 'convolutional', 'activation': 'softplus',
                                      'softplus': 'chainer', 'base': 1.1, 'batch_renorm': False,
                                      'types': ['tri', 'sq'], 'image_size': [90, 90]}, model)
    loaded, _ = models.load_counter(str(tmp_path))
    assert loaded.activation_fn is F.softplus
    with chainer.using_config('train', False):
        numpy.testing.assert_allclose(loaded(x).array, y, rtol=1e-6)


def test_local_counter_adds_up_its_patches():
    # The local counter's output is the linear layer applied to the spatial sum of its last map:
    # moving a shape away from the borders leaves it unchanged.
    model = models.build_counter('local', 'softplus', n_types=2)
    # 100 -> 98 -> 96 -> 94 -> 92 (four 3 x 3 convolutions, no stride)
    assert models.output_size('local', (100, 100)) == (92, 92)
    x = numpy.zeros((2, 3, 100, 100), numpy.float32)
    x[0, 2, 20:34, 30:44] = 255
    x[1, 2, 50:64, 41:55] = 255
    with chainer.using_config('train', False):
        y = model(x).array
    assert model.fc.W.shape == (2, 8)
    # It starts at a count of one for every image (zero weights, bias 1), its output ReLU open.
    numpy.testing.assert_array_equal(y, numpy.ones((2, 2)))
    model.fc.W.array[:] = numpy.random.RandomState(3).normal(0, 0.1, (2, 8))
    with chainer.using_config('train', False):
        y = model(x).array
    h = numpy.concatenate([x, numpy.zeros_like(x[:1])])
    for i in range(1, 5):
        h = functions.stable_softplus(getattr(model, 'conv{}'.format(i))(h))
    h = h.array
    assert numpy.ptp(h[2], axis=(1, 2)).max() < 1e-5  # the blank image: one value per channel
    pooled = (h[:2] - h[2:, :, :1, :1]).sum(axis=(2, 3))
    expected = numpy.maximum(pooled @ model.fc.W.array.T + model.fc.b.array, 0)
    numpy.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    numpy.testing.assert_allclose(y[0], y[1], rtol=1e-4)
    # Uniform images, black or blue, add nothing: the output is the linear layer's bias.
    model.fc.b.array[:] = [0.5, 2.0]
    flat = numpy.zeros((2, 3, 40, 40), numpy.float32)
    flat[1, 2] = 255
    with chainer.using_config('train', False):
        numpy.testing.assert_allclose(model(flat).array, [[0.5, 2.0], [0.5, 2.0]], atol=2e-3)


def test_edge_convolution_ignores_uniform_regions():
    # The local counter's first convolution uses zero-sum kernels: on a constant image its output
    # is the bias, and on any image it equals a plain convolution with the centred kernels.
    model = models.build_counter('local', 'sigmoid')
    conv = model.conv1
    assert isinstance(conv, links.EdgeConvolution2D)
    conv.b.array[:] = numpy.arange(8, dtype=numpy.float32)
    flat = numpy.full((1, 3, 12, 12), 200.0, numpy.float32)
    out = conv(flat).array
    numpy.testing.assert_allclose(out, numpy.broadcast_to(
        numpy.arange(8, dtype=numpy.float32)[None, :, None, None], out.shape), atol=1e-3)
    x = _images(1, 12, 12, seed=5)
    W = conv.W.array - conv.W.array.mean(axis=(2, 3), keepdims=True)
    numpy.testing.assert_allclose(conv(x).array, F.convolution_2d(x, W, conv.b.array).array,
                                  rtol=1e-4, atol=1e-3)
    # Its initial weights are LeCun's scaled down for raw 0..255 pixels (std 0.1 / sqrt(27)).
    assert conv.W.array.std() < 0.2 / numpy.sqrt(27)


@pytest.mark.parametrize('name', models.ACTIVATIONS)
def test_registry_smooth_flag_matches_the_second_derivative(name):
    # The registry's ``smooth`` decides whether the second-derivative detection accepts a
    # counter: it must be True exactly when the activation's second derivative is non-zero.
    x = chainer.Variable(numpy.linspace(-2.95, 3.05, 13).astype(numpy.float32))
    f = functions.ACTIVATIONS[name].factory(1.1, 'stable')
    gx, = chainer.grad([F.sum(f(x))], [x], enable_double_backprop=True)
    ggx, = chainer.grad([F.sum(gx)], [x])
    curvature = 0.0 if ggx is None else float(numpy.abs(ggx.array).max())
    assert (curvature > 1e-3) == functions.ACTIVATIONS[name].smooth
