"""Momentum SGD without full-size temporaries on the CPU.

Chainer's ``MomentumSGDRule.update_core_cpu`` computes ``v -= lr * grad``, which allocates an
array the size of the parameter for ``lr * grad`` on every update: 246 MB for the 61.5 M weights
of the Pairwise Difference layer, most of the update's time going to page faults. The rule below
performs the very same float operations (``v *= momentum; v -= lr * grad; param += v``, in that
order and in the parameter's dtype, so results are bit-identical) block by block through one
small reused buffer. State and serialization are MomentumSGD's; on CuPy the stock fused kernel
runs unchanged.
"""
import numpy

from chainer.backends import intel64
from chainer import optimizers


class FastMomentumSGDRule(optimizers.momentum_sgd.MomentumSGDRule):

    """:class:`~chainer.optimizers.MomentumSGDRule` whose CPU update works in place.

    Args:
        block_size (int): Elements processed per block (the size of the scratch buffer).
            Other arguments as for ``MomentumSGDRule``.
    """

    def __init__(self, parent_hyperparam=None, lr=None, momentum=None, block_size=1 << 16):
        super(FastMomentumSGDRule, self).__init__(parent_hyperparam, lr, momentum)
        self.block_size = int(block_size)
        self._buffer = None  # scratch space, deliberately not in self.state (not serialized)

    def update_core_cpu(self, param):
        grad = param.grad
        if grad is None:
            return
        v = self.state['v']
        data = param.data
        if (isinstance(v, intel64.mdarray) or not all(
                isinstance(a, numpy.ndarray) and a.flags.c_contiguous
                for a in (data, grad, v))):
            return super(FastMomentumSGDRule, self).update_core_cpu(param)
        lr = self.hyperparam.lr
        momentum = self.hyperparam.momentum
        data = data.reshape(-1)
        grad = grad.reshape(-1)
        v = v.reshape(-1)
        size = data.size
        step = min(self.block_size, size)
        if (self._buffer is None or self._buffer.dtype != grad.dtype
                or self._buffer.size < step):
            self._buffer = numpy.empty(step, dtype=grad.dtype)
        # One block at a time, so the block stays in cache across the four passes.
        for start in range(0, size, step):
            stop = min(start + step, size)
            v_b = v[start:stop]
            tmp = self._buffer[:stop - start]
            v_b *= momentum
            numpy.multiply(lr, grad[start:stop], out=tmp)
            v_b -= tmp
            data[start:stop] += v_b


class FastMomentumSGD(optimizers.MomentumSGD):

    """Momentum SGD with the CPU update done in place, block by block.

    Same hyperparameters, update (``v = momentum * v - lr * grad; param += v``), state and
    snapshots as :class:`~chainer.optimizers.MomentumSGD`, which it subclasses, so a snapshot of
    one resumes the other. On the GPU it is the stock fused kernel.

    Args:
        lr (float): Learning rate.
        momentum (float): Exponential decay rate of the first order moment.
        block_size (int): Elements per block of the CPU update (memory of the scratch buffer).
    """

    def __init__(self, lr=optimizers.momentum_sgd._default_hyperparam.lr,
                 momentum=optimizers.momentum_sgd._default_hyperparam.momentum,
                 block_size=1 << 16):
        super(FastMomentumSGD, self).__init__(lr=lr, momentum=momentum)
        self.block_size = int(block_size)
        if self.block_size < 1:
            raise ValueError('block_size must be positive, got {}'.format(block_size))

    def create_update_rule(self):
        return FastMomentumSGDRule(self.hyperparam, block_size=self.block_size)
