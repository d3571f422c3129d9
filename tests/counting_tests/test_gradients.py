"""Tests of Counting.gradients: saliency maps against hand-computed gradients, and their
pictures."""
import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
import chainer.links as L

from Counting import gradients


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
    sal = gradients.saliency_map(model, x)
    assert sal.dtype == numpy.float32 and sal.shape == (5, 7)
    numpy.testing.assert_array_equal(sal, numpy.abs(w[0]).max(axis=0))
    # A (1, C, H, W) batch gives the same map.
    numpy.testing.assert_array_equal(gradients.saliency_map(model, x[None]), sal)


def _one_hidden_case(c=3, h=4, w=6):
    """A :class:`OneHidden` network, an image, and the network's ``W1``, ``W2`` and
    pre-activations ``z`` on it."""
    model = OneHidden(c * h * w)
    x = numpy.random.RandomState(1).uniform(0, 255, (c, h, w))
    w1, w2 = model.l1.W.array, model.l2.W.array
    return model, x, w1, w2, w1 @ x.ravel() + model.l1.b.array


def test_saliency_of_one_hidden_layer_matches_hand_gradient():
    model, x, w1, w2, z = _one_hidden_case()
    c, h, w = x.shape
    # d/dx sum_k (W2 softplus(z))_k = W1^T (sigmoid(z) * sum_k W2[k])
    g = w1.T @ (1 / (1 + numpy.exp(-z)) * w2.sum(axis=0))
    expected = numpy.abs(g.reshape(c, h, w)).max(axis=0)
    numpy.testing.assert_allclose(gradients.saliency_map(model, x), expected, rtol=1e-5)


def test_saliency_of_one_output_matches_hand_gradient():
    model, x, w1, w2, z = _one_hidden_case()
    c, h, w = x.shape
    gs = []
    for k in range(w2.shape[0]):
        # d/dx (W2 softplus(z))_k = W1^T (sigmoid(z) * W2[k])
        g = w1.T @ (1 / (1 + numpy.exp(-z)) * w2[k])
        gs.append(g)
        numpy.testing.assert_allclose(gradients.saliency_map(model, x, k),
                                      numpy.abs(g.reshape(c, h, w)).max(axis=0), rtol=1e-5)
    assert gradients.output_index('sq', ['tri', 'sq']) == 1
    assert gradients.output_index('sum', ['tri', 'sq']) is None
    with pytest.raises(ValueError, match='circle'):
        gradients.output_index('circle', ['tri', 'sq'])


def test_saliency_runs_in_test_mode():
    seen = []

    class Spy(chainer.Chain):
        def forward(self, x):
            seen.append(chainer.config.train)
            return F.sum(x * x, axis=(1, 2, 3))[:, None]

    x = numpy.arange(12, dtype=numpy.float32).reshape(3, 2, 2)
    sal = gradients.saliency_map(Spy(), x)
    assert seen == [False]
    numpy.testing.assert_array_equal(sal, 2 * x.max(axis=0))


def test_saliency_rejects_a_batch_of_two():
    model = WeightedSum(numpy.ones((1, 3, 2, 2), numpy.float32))
    with pytest.raises(ValueError, match='one image'):
        gradients.saliency_map(model, numpy.zeros((2, 3, 2, 2), numpy.float32))


def test_picture_is_normalised_tenth_root():
    sal = numpy.array([[0, 1], [2 ** 10, 3 ** 10]], dtype=numpy.float32)
    # Tenth roots 0, 1, 2, 3; divided by 3, times 255: 0, 85, 170, 255.
    numpy.testing.assert_array_equal(gradients.saliency_picture(sal), [[0, 85], [170, 255]])
    pic = gradients.saliency_picture(numpy.array([[5e-10, 1e-3]], numpy.float32))
    assert pic.dtype == numpy.uint8
    assert pic[0, 0] == int(round(255 * (5e-10 / 1e-3) ** 0.1))  # 69


def test_picture_of_zero_map_and_bad_maps():
    numpy.testing.assert_array_equal(gradients.saliency_picture(numpy.zeros((2, 3))),
                                     numpy.zeros((2, 3), numpy.uint8))
    with pytest.raises(ValueError, match='non-finite'):
        gradients.saliency_picture(numpy.array([[1.0, numpy.nan]]))
    with pytest.raises(ValueError, match='negative'):
        gradients.saliency_picture(numpy.array([[1.0, -1.0]]))


@pytest.mark.gpu
def test_saliency_on_gpu_matches_cpu():
    rng = numpy.random.RandomState(1)
    model = OneHidden(3 * 4 * 6)
    x = rng.uniform(0, 255, (3, 4, 6))
    cpu = gradients.saliency_map(model, x)
    model.to_device('@cupy:0')
    import cupy
    gpu = gradients.saliency_map(model, cupy.asarray(x))
    assert isinstance(gpu, numpy.ndarray)
    numpy.testing.assert_allclose(gpu, cpu, rtol=1e-6)
