import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
from chainer import gradient_check
from chainer import testing

from Friendly import links

# The links' initializers and gradient_check draw from the global generators.
pytestmark = pytest.mark.usefixtures('fixed_random')


class TestElasticSigmoid:

    def test_s_is_one_scalar_parameter_starting_at_one(self):
        layer = links.ElasticSigmoid()
        params = dict(layer.namedparams())
        assert list(params) == ['/s']
        assert layer.s.shape == (1,)
        assert layer.s.dtype == numpy.float32
        assert layer.s.array[0] == 1

    def test_forward_is_sigmoid_of_s_x(self):
        layer = links.ElasticSigmoid()
        layer.s.array[...] = 2
        x = numpy.linspace(-3, 3, 7, dtype=numpy.float32).reshape(1, 7)
        numpy.testing.assert_allclose(layer(x).array, 1 / (1 + numpy.exp(-2 * x)), atol=1e-7)

    def test_backward_over_s(self):
        layer = links.ElasticSigmoid()
        layer.s.array[...] = 0.7
        x = numpy.random.RandomState(0).uniform(-2, 2, (3, 4)).astype(numpy.float32)
        gy = numpy.random.RandomState(1).randn(3, 4).astype(numpy.float32)
        gradient_check.check_backward(layer, x, gy, layer.s, dtype=numpy.float64,
                                      atol=1e-4, rtol=1e-3)


class TestPairwiseDifference:

    def test_weight_shape_and_initial_range(self):
        layer = links.PairwiseDifference(6, 5)
        assert layer.W.shape == (5, 36)
        assert layer.W.dtype == numpy.float32
        assert set(dict(layer.namedparams())) == {'/W'}  # no bias
        W = links.PairwiseDifference(30, 20).W.array
        assert W.min() >= -1 and W.max() <= 1
        assert W.min() < -0.9 and W.max() > 0.9  # spans the range, not a narrower initializer
        assert abs(W.mean()) < 0.05

    def test_lazy_initialisation(self):
        layer = links.PairwiseDifference(None, 3)
        assert layer.W.array is None
        y = layer(numpy.zeros((2, 1, 2, 2), dtype=numpy.float32))
        assert layer.W.shape == (3, 16)
        assert y.shape == (2, 3)

    def test_forward_matches_the_function(self):
        layer = links.PairwiseDifference(4, 2, chunk_size=3)
        x = numpy.random.RandomState(0).uniform(0, 255, (2, 4)).astype(numpy.float32)
        v = x.astype(numpy.float64)
        s = 1 / (1 + numpy.exp(-(v[:, :, None] - v[:, None, :])))
        expected = s.reshape(2, 16) @ layer.W.array.T.astype(numpy.float64)
        numpy.testing.assert_allclose(layer(x).array, expected, rtol=1e-5, atol=1e-5)

    def test_backward_over_W(self):
        layer = links.PairwiseDifference(4, 3, chunk_size=3)
        x = numpy.random.RandomState(0).uniform(-2, 2, (2, 4)).astype(numpy.float32)
        gy = numpy.random.RandomState(1).randn(2, 3).astype(numpy.float32)
        gradient_check.check_backward(layer, x, gy, layer.W, dtype=numpy.float64,
                                      atol=1e-3, rtol=1e-3)

    def test_bad_chunk_size(self):
        with pytest.raises(ValueError, match='chunk_size'):
            links.PairwiseDifference(4, 3, chunk_size=0)


class TestAngular:

    def test_parameter_shapes_and_initial_values(self):
        layer = links.Angular(40, 30)
        assert layer.W.shape == (30, 40)
        assert layer.b.shape == (30,)
        assert layer.c == 0.2
        numpy.testing.assert_array_equal(layer.b.array, 0)
        W = layer.W.array
        assert W.min() >= -1 and W.max() <= 1
        assert W.min() < -0.9 and W.max() > 0.9

    def test_nobias_and_lazy(self):
        layer = links.Angular(None, 3, nobias=True)
        assert layer.b is None
        y = layer(numpy.ones((2, 1, 2, 3), dtype=numpy.float32))
        assert layer.W.shape == (3, 6)
        assert y.shape == (2, 3)

    def test_forward_matches_formula(self):
        layer = links.Angular(3, 2, c=0.5)
        layer.b.array[...] = [0.1, -0.1]
        x = numpy.array([[1, 2, 2]], dtype=numpy.float32)
        W = layer.W.array.astype(numpy.float64)
        expected = W @ [1, 2, 2] / (numpy.linalg.norm(W, axis=1) * 3 + 0.5) + [0.1, -0.1]
        numpy.testing.assert_allclose(layer(x).array[0], expected, rtol=1e-6)

    def test_backward_over_params(self):
        layer = links.Angular(4, 3)
        x = numpy.random.RandomState(0).uniform(-1, 1, (2, 4)).astype(numpy.float32)
        gy = numpy.random.RandomState(1).randn(2, 3).astype(numpy.float32)
        gradient_check.check_backward(layer, x, gy, (layer.W, layer.b), dtype=numpy.float64,
                                      atol=1e-3, rtol=1e-3)

    def test_c_must_be_positive(self):
        with pytest.raises(ValueError, match='c must be positive'):
            links.Angular(3, 2, c=0)


@pytest.mark.gpu
@pytest.mark.parametrize('make', [
    lambda: links.ElasticSigmoid(),
    lambda: links.PairwiseDifference(6, 3, chunk_size=4),
    lambda: links.Angular(6, 3),
])
def test_links_on_gpu_match_cpu(make):
    rng = numpy.random.RandomState(0)
    layer = make()
    x = rng.uniform(-2, 2, (2, 6)).astype(numpy.float32)
    gy = rng.randn(*layer(x).shape).astype(numpy.float32)
    y_cpu = layer(x)
    y_cpu.grad = gy
    layer.cleargrads()
    y_cpu.backward()
    cpu_grads = {n: p.grad.copy() for n, p in layer.namedparams()}
    layer.to_device('@cupy:0')
    x_gpu = chainer.Variable(layer.device.send(x))
    y_gpu = layer(x_gpu)
    y_gpu.grad = layer.device.send(gy)
    layer.cleargrads()
    y_gpu.backward()
    numpy.testing.assert_allclose(chainer.backend.CpuDevice().send(y_gpu.array), y_cpu.array,
                                  rtol=1e-5, atol=1e-5)
    for name, param in layer.namedparams():
        numpy.testing.assert_allclose(chainer.backend.CpuDevice().send(param.grad),
                                      cpu_grads[name], rtol=1e-4, atol=1e-4)


testing.run_module(__name__, __file__)
