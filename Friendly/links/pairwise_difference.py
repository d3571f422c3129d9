"""Link holding the weights of a fully connected Pairwise Difference layer (thesis 3.2.3)."""
from chainer import initializers
from chainer import link
from chainer import variable

from Friendly.functions import pairwise_difference
from Friendly.functions.pairwise_difference import _check_chunk_size


class PairwiseDifference(link.Link):

    """Fully connected Pairwise Difference layer, without bias.

    ``y[b, k] = sum_ij W[k, i*P + j] sigmoid(v_i - v_j)`` for the flattened input ``v`` of
    ``P = in_size`` entries; see :func:`Friendly.functions.pairwise_difference`.

    Args:
        in_size (int or None): Entries per flattened sample (784 for MNIST). ``None`` defers the
            weight allocation to the first call, which reads it from the input.
        out_size (int): Number of outputs.
        chunk_size (int): Rows processed at a time; bounds the extra memory, not the results.
        initialW: Initializer of ``W``; default uniform in ``[-1, 1]`` (the thesis's).

    Attributes:
        W (~chainer.Parameter): Weights of shape ``(out_size, in_size * in_size)``.
    """

    def __init__(self, in_size, out_size, chunk_size=64, initialW=None):
        super(PairwiseDifference, self).__init__()
        self.out_size = int(out_size)
        self.chunk_size = _check_chunk_size(chunk_size)
        if initialW is None:
            initialW = initializers.Uniform(scale=1.0)
        with self.init_scope():
            self.W = variable.Parameter(initialW)
            if in_size is not None:
                self._initialize_params(in_size)

    def _initialize_params(self, in_size):
        self.W.initialize((self.out_size, int(in_size) * int(in_size)))

    def forward(self, x):
        if self.W.array is None:
            self._initialize_params(x.size // x.shape[0])
        return pairwise_difference(x, self.W, self.chunk_size)
