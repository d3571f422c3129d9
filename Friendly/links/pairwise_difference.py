"""Link holding the weights of a fully connected Pairwise Difference layer (thesis 3.2.3)."""
from Friendly.functions import pairwise_difference
from Friendly.functions.pairwise_difference import _check_chunk_size
from Friendly.links.lazy_weight import LazyWeightLink


class PairwiseDifference(LazyWeightLink):

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
        chunk_size = _check_chunk_size(chunk_size)
        super(PairwiseDifference, self).__init__(in_size, out_size, initialW)
        self.chunk_size = chunk_size

    def weight_columns(self, in_size):
        return in_size * in_size

    def forward(self, x):
        self._initialize_from(x)
        return pairwise_difference(x, self.W, self.chunk_size)
