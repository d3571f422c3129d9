"""A 2-D convolution whose second-order tangents skip the zeros (detection speed, thesis 2.2.2).

A second-derivative row of the detection loop pushes a tangent that starts as one pixel back
through the first-order graph; at each convolution that tangent meets ``convolution_2d(tangent,
W)``, the backward of the deconvolution that carried the first derivative. Its input is zero
outside a small box, so most of its outputs are the bias alone.

The three nodes below are Chainer's own convolution nodes with one thing changed, each created
explicitly by the one above it (nothing in Chainer is replaced):

* :class:`TangentSparseConvolution2D`: a plain convolution (same values and first derivative)
  whose input gradient is a :class:`TangentSparseDeconvolution2D`;
* :class:`TangentSparseDeconvolution2D`: Chainer's deconvolution whose input gradient, the
  tangent, is a :class:`SparseInputConvolution2D`;
* :class:`SparseInputConvolution2D`: on the CPU, and only while ``chainer.config.sparse_tangents``
  is True (``chainer.using_config('sparse_tangents', True)``, thread-local), computes only the
  outputs whose windows read a non-zero input (:func:`sparse_forward`), the rest being the bias.
  Same values up to float rounding (the crop sums in another order).

:class:`Counting.links.Convolution2D` calls :func:`tangent_sparse_convolution_2d`.
"""
import chainer
from chainer.functions.connection import convolution_2d
from chainer.functions.connection import deconvolution_2d
from chainer.utils import conv as conv_utils
import numpy


def _window_range(lo, hi, size, k, s, p, d):
    """Output size along one axis and the first and last outputs whose window reads any of the
    inputs ``lo..hi``."""
    out = (size + 2 * p - (k - 1) * d - 1) // s + 1
    first = max(0, -(-(lo + p - (k - 1) * d) // s))
    last = min(out - 1, (hi + p) // s)
    return out, first, last


def sparse_forward(x, W, b, stride, pad, dilate):
    """``convolution_2d(x, W, b)`` (NumPy, no ``cover_all``) for an ``x`` that is zero outside a
    small box: the outputs whose windows read only zeros are the bias, the others are computed on
    a crop. Returns None when the box covers more than a quarter of the outputs (dense is faster).
    """
    n, _, h, w = x.shape
    _, _, kh, kw = W.shape
    (sy, sx), (ph, pw), (dy, dx) = stride, pad, dilate
    seen = x.any(axis=(0, 1))
    rows = numpy.flatnonzero(seen.any(axis=1))
    cols = numpy.flatnonzero(seen.any(axis=0))
    if rows.size == 0:
        rows = cols = numpy.array([-kh * dy - ph - 1])  # no window reads it
    out_h, y0, y1 = _window_range(rows[0], rows[-1], h, kh, sy, ph, dy)
    out_w, x0, x1 = _window_range(cols[0], cols[-1], w, kw, sx, pw, dx)
    if 4 * max(y1 - y0 + 1, 0) * max(x1 - x0 + 1, 0) > out_h * out_w:
        return None
    y = numpy.zeros((n, out_h, out_w, W.shape[0]), dtype=x.dtype)
    if y1 >= y0 and x1 >= x0:
        # The input span those outputs read, zero-filled where it leaves the image (padding).
        iy0, iy1 = y0 * sy - ph, y1 * sy - ph + (kh - 1) * dy
        ix0, ix1 = x0 * sx - pw, x1 * sx - pw + (kw - 1) * dx
        crop = numpy.zeros(x.shape[:2] + (iy1 - iy0 + 1, ix1 - ix0 + 1), dtype=x.dtype)
        a0, a1, c0, c1 = max(iy0, 0), min(iy1, h - 1), max(ix0, 0), min(ix1, w - 1)
        crop[:, :, a0 - iy0:a1 - iy0 + 1, c0 - ix0:c1 - ix0 + 1] = x[:, :, a0:a1 + 1, c0:c1 + 1]
        col = conv_utils.im2col_cpu(crop, kh, kw, sy, sx, 0, 0, dy=dy, dx=dx)
        y[:, y0:y1 + 1, x0:x1 + 1] = numpy.tensordot(col, W, ((1, 2, 3), (1, 2, 3)))
    if b is not None:
        y += b
    return numpy.rollaxis(y, 3, 1)


class SparseInputConvolution2D(convolution_2d.Convolution2DFunction):

    """Chainer's convolution, computed by :func:`sparse_forward` on the CPU while
    ``chainer.config.sparse_tangents`` is True and the input is mostly zero."""

    def _forward_cpu_core(self, x, W, b):
        if (getattr(chainer.config, 'sparse_tangents', False) and not self._use_ideep
                and not self.cover_all):
            y = sparse_forward(x, W, b, (self.sy, self.sx), (self.ph, self.pw),
                               (self.dy, self.dx))
            if y is not None:
                return y,
        return super()._forward_cpu_core(x, W, b)


class TangentSparseDeconvolution2D(deconvolution_2d.Deconvolution2DFunction):

    """Chainer's deconvolution whose input gradient is a :class:`SparseInputConvolution2D`."""

    def backward(self, indexes, grad_outputs):
        ret = list(super().backward([i for i in indexes if i != 0], grad_outputs))
        if 0 in indexes:
            x, W = self.get_retained_inputs()
            if self.cover_all is None:
                self._set_cover_all(x.shape, W.shape)
            gx, = SparseInputConvolution2D(
                stride=(self.sy, self.sx), pad=(self.ph, self.pw), cover_all=self.cover_all,
                dilate=(self.dy, self.dx), groups=self.groups).apply((grad_outputs[0], W))
            ret.insert(0, gx)
        return ret


class TangentSparseConvolution2D(convolution_2d.Convolution2DFunction):

    """Chainer's convolution whose input gradient is a :class:`TangentSparseDeconvolution2D`."""

    def backward(self, indexes, grad_outputs):
        ret = list(super().backward([i for i in indexes if i != 0], grad_outputs))
        if 0 in indexes:
            x, W = self.get_retained_inputs()
            gx, = TangentSparseDeconvolution2D(
                stride=(self.sy, self.sx), pad=(self.ph, self.pw), outsize=x.shape[2:],
                dilate=(self.dy, self.dx), groups=self.groups).apply((grad_outputs[0], W))
            ret.insert(0, gx)
        return ret


def tangent_sparse_convolution_2d(x, W, b=None, stride=1, pad=0):
    """``F.convolution_2d(x, W, b, stride, pad)`` (same values and first derivative) whose
    second-order tangents are convolved sparsely under ``chainer.config.sparse_tangents``."""
    inputs = (x, W) if b is None else (x, W, b)
    y, = TangentSparseConvolution2D(stride, pad).apply(inputs)
    return y
