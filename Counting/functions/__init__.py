"""Counting's functions (thesis chapter 2), one hand-written ``FunctionNode`` per module, and
:data:`ACTIVATIONS`, the registry of the counters' activations.

A new activation for the counters: its FunctionNode and function in a new module here, and one
line in :data:`ACTIVATIONS` (``--activation`` of ``Counting.train`` then offers it).
"""
import collections

import chainer.functions as F

from Counting.functions.logistic import Logistic  # NOQA
from Counting.functions.logistic import logistic  # NOQA
from Counting.functions.logistic import LogisticGrad  # NOQA
from Counting.functions.modified_softplus import modified_softplus  # NOQA
from Counting.functions.modified_softplus import ModifiedSoftplus  # NOQA
from Counting.functions.softplus import stable_softplus  # NOQA
from Counting.functions.softplus import StableSoftplus  # NOQA
from Counting.functions.sparse_tangent_convolution import tangent_sparse_convolution_2d  # NOQA


def _softplus(base, softplus):
    return F.softplus if softplus == 'chainer' else stable_softplus


def _modsoftplus(base, softplus):
    base = float(base)
    ModifiedSoftplus(base)  # validates the base now, not at the first forward

    def modsoftplus(x):
        return modified_softplus(x, base)
    return modsoftplus


#: One counter activation: ``factory(base, softplus)`` returns the element-wise function
#: (``base`` is the ``modsoftplus`` base; ``softplus`` is ``'stable'``, this project's node, or
#: ``'chainer'``, ``F.softplus``, the author's); ``smooth`` says whether its second derivative is
#: non-zero, which the second-derivative detection of thesis 2.2.2 needs.
Activation = collections.namedtuple('Activation', ('factory', 'smooth'))

#: Activation name -> :class:`Activation`. The order is that of the command lines' choices.
ACTIVATIONS = {
    'relu': Activation(lambda base, softplus: F.relu, smooth=False),
    'softplus': Activation(_softplus, smooth=True),
    'sigmoid': Activation(lambda base, softplus: F.sigmoid, smooth=True),
    'sin': Activation(lambda base, softplus: F.sin, smooth=True),
    'modsoftplus': Activation(_modsoftplus, smooth=True),
}
