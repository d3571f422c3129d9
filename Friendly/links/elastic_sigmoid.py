"""Link holding the learnable slope of an Elastic Sigmoid (thesis section 3.2.2)."""
from chainer import initializers
from chainer import link
from chainer import variable

from Friendly.functions import elastic_sigmoid


class ElasticSigmoid(link.Link):

    """Elastic Sigmoid activation ``sigmoid(s x)`` with one learnable scalar ``s`` per layer.

    Args:
        initial_s (float): Initial value of ``s`` (the thesis starts at 1, a plain sigmoid).

    Attributes:
        s (~chainer.Parameter): The slope, shape ``(1,)``.
    """

    def __init__(self, initial_s=1.0):
        super(ElasticSigmoid, self).__init__()
        with self.init_scope():
            self.s = variable.Parameter(initializers.Constant(initial_s), (1,))

    def forward(self, x):
        return elastic_sigmoid(x, self.s)
