import json
import os

import numpy
import pytest
from PIL import Image

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
import chainer.links as L

from Counting import saliency


class WeightedSum(chainer.Chain):
    """out[b, 0] = sum(w * x[b]): its input gradient is w for every image."""

    def __init__(self, w):
        super().__init__()
        with self.init_scope():
            self.w = chainer.Parameter(w)

    def forward(self, x):
        return F.sum(x * F.broadcast_to(self.w, x.shape), axis=(1, 2, 3))[:, None]


class OneHidden(chainer.Chain):
    """out = W2 softplus(W1 vec(x) + b1) + b2, with two outputs."""

    def __init__(self, n_in, n_hidden=5, dtype=numpy.float64):
        super().__init__()
        rng = numpy.random.RandomState(3)
        with self.init_scope(), chainer.using_config('dtype', dtype):
            self.l1 = L.Linear(n_in, n_hidden, initialW=rng.normal(0, 0.05, (n_hidden, n_in))
                               .astype(dtype), initial_bias=rng.normal(0, 1, n_hidden)
                               .astype(dtype))
            self.l2 = L.Linear(n_hidden, 2, initialW=rng.normal(0, 1, (2, n_hidden))
                               .astype(dtype), initial_bias=numpy.zeros(2, dtype))

    def forward(self, x):
        return self.l2(F.softplus(self.l1(x)))


def test_saliency_of_weighted_sum_is_max_abs_weight():
    rng = numpy.random.RandomState(0)
    w = rng.normal(size=(1, 3, 5, 7)).astype(numpy.float32)
    model = WeightedSum(w)
    x = rng.uniform(0, 255, (3, 5, 7)).astype(numpy.float32)
    sal = saliency.saliency_map(model, x)
    assert sal.dtype == numpy.float32 and sal.shape == (5, 7)
    numpy.testing.assert_array_equal(sal, numpy.abs(w[0]).max(axis=0))
    # A (1, C, H, W) batch gives the same map.
    numpy.testing.assert_array_equal(saliency.saliency_map(model, x[None]), sal)


def test_saliency_of_one_hidden_layer_matches_hand_gradient():
    rng = numpy.random.RandomState(1)
    c, h, w = 3, 4, 6
    model = OneHidden(c * h * w)
    x = rng.uniform(0, 255, (c, h, w))
    w1, b1 = model.l1.W.array, model.l1.b.array
    w2 = model.l2.W.array
    z = w1 @ x.ravel() + b1
    # d/dx sum_k (W2 softplus(z))_k = W1^T (sigmoid(z) * sum_k W2[k])
    g = w1.T @ (1 / (1 + numpy.exp(-z)) * w2.sum(axis=0))
    expected = numpy.abs(g.reshape(c, h, w)).max(axis=0)
    numpy.testing.assert_allclose(saliency.saliency_map(model, x), expected, rtol=1e-5)


def test_saliency_of_one_output_matches_hand_gradient():
    rng = numpy.random.RandomState(1)
    c, h, w = 3, 4, 6
    model = OneHidden(c * h * w)
    x = rng.uniform(0, 255, (c, h, w))
    w1, b1 = model.l1.W.array, model.l1.b.array
    w2 = model.l2.W.array
    z = w1 @ x.ravel() + b1
    gs = []
    for k in range(w2.shape[0]):
        # d/dx (W2 softplus(z))_k = W1^T (sigmoid(z) * W2[k])
        g = w1.T @ (1 / (1 + numpy.exp(-z)) * w2[k])
        gs.append(g)
        numpy.testing.assert_allclose(saliency.saliency_map(model, x, k),
                                      numpy.abs(g.reshape(c, h, w)).max(axis=0), rtol=1e-5)
    assert saliency.output_index('sq', ['tri', 'sq']) == 1
    assert saliency.output_index('sum', ['tri', 'sq']) is None
    with pytest.raises(ValueError, match='circle'):
        saliency.output_index('circle', ['tri', 'sq'])


def test_saliency_runs_in_test_mode():
    seen = []

    class Spy(chainer.Chain):
        def forward(self, x):
            seen.append(chainer.config.train)
            return F.sum(x * x, axis=(1, 2, 3))[:, None]

    x = numpy.arange(12, dtype=numpy.float32).reshape(3, 2, 2)
    sal = saliency.saliency_map(Spy(), x)
    assert seen == [False]
    numpy.testing.assert_array_equal(sal, 2 * x.max(axis=0))


def test_saliency_rejects_a_batch_of_two():
    model = WeightedSum(numpy.ones((1, 3, 2, 2), numpy.float32))
    with pytest.raises(ValueError, match='one image'):
        saliency.saliency_map(model, numpy.zeros((2, 3, 2, 2), numpy.float32))


def test_picture_is_normalised_tenth_root():
    sal = numpy.array([[0, 1], [2 ** 10, 3 ** 10]], dtype=numpy.float32)
    # Tenth roots 0, 1, 2, 3; divided by 3, times 255: 0, 85, 170, 255.
    numpy.testing.assert_array_equal(saliency.saliency_picture(sal), [[0, 85], [170, 255]])
    pic = saliency.saliency_picture(numpy.array([[5e-10, 1e-3]], numpy.float32))
    assert pic.dtype == numpy.uint8
    assert pic[0, 0] == int(round(255 * (5e-10 / 1e-3) ** 0.1))  # 69


def test_picture_of_zero_map_and_bad_maps():
    numpy.testing.assert_array_equal(saliency.saliency_picture(numpy.zeros((2, 3))),
                                     numpy.zeros((2, 3), numpy.uint8))
    with pytest.raises(ValueError, match='non-finite'):
        saliency.saliency_picture(numpy.array([[1.0, numpy.nan]]))
    with pytest.raises(ValueError, match='negative'):
        saliency.saliency_picture(numpy.array([[1.0, -1.0]]))


def test_load_image_and_png_round_trip(tmp_path):
    rgb = numpy.random.RandomState(0).randint(0, 256, (4, 5, 3)).astype(numpy.uint8)
    Image.fromarray(rgb).save(tmp_path / 'a.png')
    x = saliency.load_image(str(tmp_path / 'a.png'))
    assert x.dtype == numpy.float32 and x.shape == (3, 4, 5)
    numpy.testing.assert_array_equal(x, rgb.transpose(2, 0, 1))
    numpy.testing.assert_array_equal(saliency.image_to_rgb(x), rgb)
    gray = numpy.arange(20, dtype=numpy.uint8).reshape(4, 5)
    saliency.save_png(str(tmp_path / 'g.png'), gray)
    numpy.testing.assert_array_equal(numpy.asarray(Image.open(tmp_path / 'g.png')), gray)
    with pytest.raises(ValueError, match='does not exist'):
        saliency.load_image(str(tmp_path / 'missing.png'))


# ---------------------------------------------------------------------------------------------
# Command line, with a real run folder of the small counter on 90 x 90 images

def make_run(path, activation='softplus', size=90, seed=0):
    """A run folder as Counting.train writes it: settings.json and model.npz."""
    from Counting.models import build_counter
    numpy.random.seed(seed)
    model = build_counter('convolutional', activation)
    with chainer.using_config('train', False):
        model(numpy.zeros((1, 3, size, size), numpy.float32))
    model.fc.b.array[:] = 1.0  # untrained, but with positive counts
    os.makedirs(path, exist_ok=True)
    chainer.serializers.save_npz(os.path.join(path, 'model.npz'), model)
    settings = {'arch': 'convolutional', 'activation': activation, 'base': 1.1,
                'batch_renorm': False, 'types': ['tri', 'sq'], 'image_size': [size, size]}
    with open(os.path.join(path, 'settings.json'), 'w') as f:
        json.dump(settings, f)
    return model


def make_images(path, size=90, count=2):
    """Images with a blue square and a blue triangle, and their annotations.json."""
    from PIL import ImageDraw
    os.makedirs(path, exist_ok=True)
    annotations = {}
    for i in range(count):
        im = Image.new('RGB', (size, size))
        draw = ImageDraw.Draw(im)
        square = [(10 + i, 10), (40 + i, 10), (40 + i, 40), (10 + i, 40)]
        triangle = [(50, 50), (80, 50), (50, 80)]
        for poly in (square, triangle):
            draw.polygon(poly, fill=(0, 0, 255), outline=(0, 0, 255))
        name = '{:04d}.png'.format(i)
        im.save(os.path.join(path, name))
        annotations[name] = [
            {'type': 'sq', 'polygon': square, 'box': [10 + i, 10, 40 + i, 40]},
            {'type': 'tri', 'polygon': triangle, 'box': [50, 50, 80, 80]}]
    with open(os.path.join(path, 'annotations.json'), 'w') as f:
        json.dump(annotations, f)
    return annotations


def test_cli_writes_saliency_pictures(tmp_path):
    model = make_run(str(tmp_path / 'run'))
    make_images(str(tmp_path / 'images'))
    out = tmp_path / 'out'
    rc = saliency.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                        '--out', str(out), '--device', '@numpy'])
    assert rc == 0
    assert sorted(n for n in os.listdir(out) if not n.startswith('.')) == [
        '0000_saliency.png', '0001_saliency.png']
    x = saliency.load_image(str(tmp_path / 'images' / '0001.png'))
    expected = saliency.saliency_picture(saliency.saliency_map(model, x))
    numpy.testing.assert_array_equal(numpy.asarray(Image.open(out / '0001_saliency.png')),
                                     expected)


def test_cli_output_is_one_type(tmp_path, capsys):
    model = make_run(str(tmp_path / 'run'))
    make_images(str(tmp_path / 'images'), count=1)
    out = tmp_path / 'out'
    argv = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
            '--out', str(out), '--device', '@numpy']
    assert saliency.main(argv + ['--output', 'tri']) == 0
    x = saliency.load_image(str(tmp_path / 'images' / '0000.png'))
    numpy.testing.assert_array_equal(
        numpy.asarray(Image.open(out / '0000_saliency.png')),
        saliency.saliency_picture(saliency.saliency_map(model, x, 0)))
    with pytest.raises(SystemExit) as e:
        saliency.main(argv + ['--output', 'circle'])
    assert e.value.code == 2 and '--output' in capsys.readouterr().err


def test_cli_names_and_limit(tmp_path):
    make_run(str(tmp_path / 'run'))
    make_images(str(tmp_path / 'images'), count=3)
    out = tmp_path / 'out'
    assert saliency.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                          '--out', str(out), '--names', '0002.png', '0000.png',
                          '--limit', '1', '--device', '@numpy']) == 0
    assert [n for n in os.listdir(out) if not n.startswith('.')] == ['0002_saliency.png']


def test_cli_progress_is_one_line_off_a_terminal_and_none_with_no_progress(tmp_path, capsys):
    make_run(str(tmp_path / 'run'))
    make_images(str(tmp_path / 'images'))
    args = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'), '--device',
            '@numpy']
    assert saliency.main(args + ['--out', str(tmp_path / 'a')]) == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith('saliency: 2/2 image')]) == 1
    assert saliency.main(args + ['--out', str(tmp_path / 'b'), '--no-progress']) == 0
    assert 'saliency: 2/2' not in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    make_images(str(tmp_path / 'images'))
    with pytest.raises(SystemExit) as e:
        saliency.main(['--run', str(tmp_path / 'nowhere'), '--images', str(tmp_path / 'images'),
                       '--out', str(tmp_path / 'out'), '--device', '@numpy'])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert 'nowhere' in err and 'does not exist' in err and 'Traceback' not in err
    # An image the network was not trained for.
    make_run(str(tmp_path / 'run'), size=200)
    rc = saliency.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                        '--out', str(tmp_path / 'out'), '--device', '@numpy'])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.partition('error: ')[2].startswith('image ') and '90x90' in err and '200x200' in err
    with pytest.raises(SystemExit):
        saliency.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                       '--out', str(tmp_path / 'out'), '--names', 'nope.png'])
    assert 'nope.png' in capsys.readouterr().err


@pytest.mark.gpu
def test_saliency_on_gpu_matches_cpu():
    rng = numpy.random.RandomState(1)
    model = OneHidden(3 * 4 * 6)
    x = rng.uniform(0, 255, (3, 4, 6))
    cpu = saliency.saliency_map(model, x)
    model.to_device('@cupy:0')
    import cupy
    gpu = saliency.saliency_map(model, cupy.asarray(x))
    assert isinstance(gpu, numpy.ndarray)
    numpy.testing.assert_allclose(gpu, cpu, rtol=1e-6)
