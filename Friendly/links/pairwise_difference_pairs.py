"""Link of the half-size pair form of the Pairwise Difference layer (exact; see the function).

Its parameters ``A`` (``out_size x P (P - 1) / 2``) and ``b`` (``out_size``) start as the fold of
the very draw the full link makes (``W`` uniform in [-1, 1], same RNG calls), so one seed gives
the same network in both forms. Trained with SGD or momentum SGD, the two forms follow the same
trajectory when ``A`` learns at twice and ``b`` at ``P^2 / 4`` times the learning rate:
:func:`Friendly.optimizers.apply_pair_form_lr_factors` sets these factors on the update rules.
"""
import numpy

import chainer
from chainer import initializers
from chainer import link
from chainer import variable

from Friendly.functions.pairwise_difference import _check_chunk_size
from Friendly.functions.pairwise_difference_pairs import GradientBuffer, fold
from Friendly.functions.pairwise_difference_pairs import pairwise_difference_pairs
from Friendly.links.lazy_weight import uniform_or
import chainer.functions as F


class PairwiseDifferencePairs(link.Link):

    """Pair form of the fully connected Pairwise Difference layer.

    ``y[b, k] = 1/2 sum_m A[k, m] tanh((v_i - v_j) / 2) + b[k]`` over the pairs ``m = (i, j)``
    of :func:`Friendly.functions.pairwise_difference_pairs.pair_indices`, which equals the full
    layer ``sum_ij W[k, i, j] sigmoid(v_i - v_j)`` for ``A, b = fold(W)``.

    Args:
        in_size (int or None): Entries per flattened sample ``P`` (784 for MNIST); ``None`` defers
            the allocation to the first call.
        out_size (int): Number of outputs.
        chunk_size (int): ``chunk_size * P`` pairs at a time (default 64; Friendly.models
            uses 16); memory and speed, not results.
        initialW: Initializer of the full ``W`` that is drawn and folded; default uniform in
            ``[-1, 1]`` (the thesis's, as :class:`Friendly.links.PairwiseDifference`).

    Attributes:
        A (~chainer.Parameter): Pair weights ``(out_size, P (P - 1) / 2)``.
        b (~chainer.Parameter): Bias ``(out_size,)``, half the sum of the full weights.
    """

    form = 'pairs'

    def __init__(self, in_size, out_size, chunk_size=64, initialW=None):
        super(PairwiseDifferencePairs, self).__init__()
        self.out_size = int(out_size)
        self.chunk_size = _check_chunk_size(chunk_size)
        self.initialW = uniform_or(initialW)
        self.in_size = None
        self._gradient_buffer = GradientBuffer()   # scratch, not a parameter (not serialized)
        with self.init_scope():
            self.A = variable.Parameter()
            self.b = variable.Parameter()
        if in_size is not None:
            self._initialize_params(in_size)

    def _initialize_params(self, in_size):
        P = int(in_size)
        if P < 2:
            raise ValueError('the pair form needs at least 2 inputs, got {}'.format(P))
        self.in_size = P
        # The full link's draw, on the full shape, then folded (one temporary N x P^2 array).
        W = initializers.generate_array(self.initialW, (self.out_size, P * P), numpy,
                                        dtype=chainer.get_dtype())
        A, b = fold(W, P)
        del W
        self.A.initialize(A.shape)
        self.b.initialize(b.shape)
        self.A.array[...] = A
        self.b.array[...] = b
        device = self.device
        if device.xp is not numpy:
            self.A.to_device(device)
            self.b.to_device(device)

    def lr_factors(self):
        """``{'A': 2, 'b': P^2 / 4}``: the learning-rate factors that make SGD exact."""
        if self.in_size is None:
            if self.A.array is None:
                raise ValueError('the pair-form layer is not initialized yet')
            self.in_size = int(round((1 + (1 + 8 * self.A.shape[1]) ** 0.5) / 2))
        return {'A': 2.0, 'b': self.in_size ** 2 / 4.0}

    def forward(self, x):
        if self.A.array is None:
            self._initialize_params(x.size // x.shape[0])
        y = pairwise_difference_pairs(x, self.A, self.chunk_size, self._gradient_buffer)
        return F.bias(y, self.b)
