"""The counters' convolution links (parameters ``W`` and ``b``, as ``L.Convolution2D``'s)."""
from lenses_common import compat  # noqa: F401  (before chainer)
import chainer.functions as F
import chainer.links as L

from Counting import functions


class Convolution2D(L.Convolution2D):

    """``L.Convolution2D`` computed by :func:`Counting.functions.tangent_sparse_convolution_2d`:
    same values and derivatives, and the detection loop's second-order tangents are convolved
    only where they are non-zero (see :mod:`Counting.functions.sparse_tangent_convolution`)."""

    def forward(self, x):
        if self.W.array is None:
            self._initialize_params(x.shape[1])
        return functions.tangent_sparse_convolution_2d(x, self.W, self.b, self.stride, self.pad)


class EdgeConvolution2D(L.Convolution2D):

    """A convolution whose kernels are made zero-sum over their window before use.

    The weights used are ``W - mean(W over (kh, kw))`` per output and input channel, so the
    output on a constant input is the bias alone. The stored parameter ``W`` is free; the
    projection is part of the forward pass (and of its derivatives).
    """

    def forward(self, x):
        if self.W.array is None:
            self._initialize_params(x.shape[1])
        W = self.W - F.broadcast_to(F.mean(self.W, axis=(2, 3), keepdims=True), self.W.shape)
        return F.convolution_2d(x, W, self.b, self.stride, self.pad)
