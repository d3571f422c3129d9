import unittest
import warnings

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
from chainer import testing
import chainer.functions as F

from Counting import functions


def _derivatives(fn, x):
    """Value, first and second derivative of an element-wise ``fn`` at the array ``x``."""
    xv = chainer.Variable(x)
    y = fn(xv)
    gx, = chainer.grad([F.sum(y)], [xv], enable_double_backprop=True)
    ggx, = chainer.grad([F.sum(gx)], [xv])
    return y.array, gx.array, ggx.array


class TestLargeInputs(unittest.TestCase):
    """Raw pixel-sized inputs: where the thesis's SoftPlus counter broke."""

    x = numpy.array([200., 255., 500., 1000.], dtype=numpy.float32)

    def test_stable_softplus_is_finite_and_correct(self):
        y, g, gg = _derivatives(functions.stable_softplus, self.x)
        for a in (y, g, gg):
            assert a.dtype == numpy.float32
            assert numpy.isfinite(a).all()
        numpy.testing.assert_allclose(y, self.x, rtol=1e-6)  # log(1 + e^x) = x here
        numpy.testing.assert_array_equal(g, 1.0)
        # True second derivative is e^-x (1 + e^-x)^-2 < 1e-86: zero in float32.
        numpy.testing.assert_array_equal(gg, 0.0)

    def test_chainer_softplus_second_derivative_breaks(self):
        # Documents the thesis's "numerical issues": exp overflows, then inf / inf.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            y, g, gg = _derivatives(F.softplus, self.x)
        assert numpy.isfinite(y).all()
        assert not numpy.isfinite(gg).any()

    def test_large_negative_inputs(self):
        x = -self.x
        y, g, gg = _derivatives(functions.stable_softplus, x)
        for a in (y, g, gg):
            assert numpy.isfinite(a).all()
        assert (y >= 0).all() and (y < 1e-30).all()
        assert (g >= 0).all() and (g < 1e-30).all()

    def test_modified_softplus_closed_forms(self):
        # Derivatives against the thesis's closed forms, in float64, including large |x|.
        b = 1.1
        x = numpy.array([-1000., -255., -20., -1., 0., 3., 40., 255., 1000.])
        y, g, gg = _derivatives(lambda v: functions.modified_softplus(v, base=b), x)
        with numpy.errstate(over='ignore'):
            bmx = numpy.power(b, -x)
        lnb = numpy.log(b)
        expected_y = numpy.where(x > 0, x + numpy.log1p(numpy.power(b, -numpy.abs(x))) / lnb,
                                 numpy.log1p(numpy.power(b, -numpy.abs(x))) / lnb)
        expected_g = numpy.where(numpy.isinf(bmx), 0.0, 1 / (1 + bmx))
        with numpy.errstate(invalid='ignore', over='ignore'):
            expected_gg = numpy.where(numpy.isinf(bmx), 0.0, lnb * bmx / (1 + bmx) ** 2)
        numpy.testing.assert_allclose(y, expected_y, rtol=1e-10, atol=1e-300)
        numpy.testing.assert_allclose(g, expected_g, rtol=1e-10, atol=1e-300)
        numpy.testing.assert_allclose(gg, expected_gg, rtol=1e-8, atol=1e-300)
        # Beyond finiteness: at 255 the base-1.1 curve still bends measurably.
        assert gg[x == 255.][0] > 1e-12

    def test_modified_softplus_float32_large(self):
        y, g, gg = _derivatives(lambda v: functions.modified_softplus(v, 1.1), self.x)
        for a in (y, g, gg):
            assert numpy.isfinite(a).all()
        numpy.testing.assert_allclose(g, 1 / (1 + 1.1 ** -self.x.astype(numpy.float64)),
                                      rtol=1e-6)

    def test_third_derivative_is_finite(self):
        x = chainer.Variable(self.x)
        g, = chainer.grad([F.sum(functions.stable_softplus(x))], [x],
                          enable_double_backprop=True)
        gg, = chainer.grad([F.sum(g)], [x], enable_double_backprop=True)
        ggg, = chainer.grad([F.sum(gg)], [x])
        assert numpy.isfinite(ggg.array).all()


class TestFailures(unittest.TestCase):

    def test_integer_input(self):
        with pytest.raises(chainer.utils.type_check.InvalidType):
            functions.stable_softplus(numpy.arange(3, dtype=numpy.int32))

    def test_bad_base(self):
        for base in (1.0, 0.0, -2.0, float('inf')):
            with pytest.raises(ValueError):
                functions.modified_softplus(numpy.zeros(3, numpy.float32), base=base)

    def test_bad_beta(self):
        with pytest.raises(ValueError):
            functions.stable_softplus(numpy.zeros(3, numpy.float32), beta=0)

    def test_logistic_grad_shape_mismatch(self):
        with pytest.raises(chainer.utils.type_check.InvalidType):
            functions.LogisticGrad(1.0).apply((numpy.zeros(3, numpy.float32),
                                               numpy.zeros(4, numpy.float32)))


testing.run_module(__name__, __file__)
