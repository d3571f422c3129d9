"""What Friendly's fully connected layers share: the thesis's weight initializer and a weight
``W`` of ``out_size`` rows whose columns follow from the flattened input size, known when the
link is built or read from the first input."""
from chainer import initializers
from chainer import link
from chainer import variable


def uniform_or(initialW):
    """``initialW``, or the thesis's initializer of the Pairwise Difference and Angular weights
    (uniform in ``[-1, 1]``) where it is None."""
    return initializers.Uniform(scale=1.0) if initialW is None else initialW


class LazyWeightLink(link.Link):

    """A link with the weight ``W`` of shape ``(out_size, weight_columns(in_size))``.

    ``in_size`` is the number of entries of a flattened sample; ``None`` defers the allocation
    of ``W`` to the first call (:meth:`_initialize_from`). ``initialW`` defaults to
    :func:`uniform_or`'s uniform initializer.
    """

    def __init__(self, in_size, out_size, initialW=None):
        super(LazyWeightLink, self).__init__()
        self.out_size = int(out_size)
        with self.init_scope():
            self.W = variable.Parameter(uniform_or(initialW))
            if in_size is not None:
                self._initialize_params(in_size)

    def weight_columns(self, in_size):
        """Columns of ``W`` for ``in_size`` entries per sample."""
        raise NotImplementedError

    def _initialize_params(self, in_size):
        self.W.initialize((self.out_size, self.weight_columns(int(in_size))))

    def _initialize_from(self, x):
        """Allocate ``W`` for the samples of the batch ``x`` if that is not done yet."""
        if self.W.array is None:
            self._initialize_params(x.size // x.shape[0])
