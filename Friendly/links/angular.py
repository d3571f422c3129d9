"""Link holding the weights and bias of an Angular layer (thesis section 3.2.4)."""
from chainer import initializers
from chainer import variable

from Friendly.functions import angular
from Friendly.links.lazy_weight import LazyWeightLink


class Angular(LazyWeightLink):

    """Angular layer ``y_k = (w_k . a) / (||w_k|| ||a|| + c) + b_k``.

    See :func:`Friendly.functions.angular`.

    Args:
        in_size (int or None): Entries per flattened sample; ``None`` defers the allocation of
            ``W`` to the first call.
        out_size (int): Number of outputs.
        c (float): Positive constant in the denominator (thesis: 0.2).
        nobias (bool): Leave out the bias.
        initialW: Initializer of ``W``; default uniform in ``[-1, 1]``.
        initial_bias: Initializer of ``b``; default 0.

    Attributes:
        W (~chainer.Parameter): Weights ``(out_size, in_size)``.
        b (~chainer.Parameter): Bias ``(out_size,)``, or None with ``nobias``.
    """

    def __init__(self, in_size, out_size, c=0.2, nobias=False, initialW=None,
                 initial_bias=None):
        c = float(c)
        if not c > 0:
            raise ValueError('c must be positive, got {}'.format(c))
        super(Angular, self).__init__(in_size, out_size, initialW)
        self.c = c
        with self.init_scope():
            if nobias:
                self.b = None
            else:
                if initial_bias is None:
                    initial_bias = initializers.Zero()
                self.b = variable.Parameter(initial_bias, self.out_size)

    def weight_columns(self, in_size):
        return in_size

    def forward(self, x):
        self._initialize_from(x)
        return angular(x, self.W, self.b, self.c)
