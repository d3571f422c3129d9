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
from chainer import optimizer as optimizer_module
from chainer import optimizers


class FastMomentumSGDRule(optimizers.momentum_sgd.MomentumSGDRule):

    """:class:`~chainer.optimizers.MomentumSGDRule` whose CPU update works in place.

    Args:
        block_size (int): Elements processed per block (the size of the scratch buffer).
            Other arguments as for ``MomentumSGDRule``.
    """

    def __init__(self, parent_hyperparam=None, lr=None, momentum=None, block_size=1 << 18):
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
                 block_size=1 << 18):
        super(FastMomentumSGD, self).__init__(lr=lr, momentum=momentum)
        self.block_size = int(block_size)
        if self.block_size < 1:
            raise ValueError('block_size must be positive, got {}'.format(block_size))

    def create_update_rule(self):
        return FastMomentumSGDRule(self.hyperparam, block_size=self.block_size)


class ScaledLearningRate(optimizer_module.Hyperparameter):

    """Hyperparameters of one update rule whose ``lr`` is ``scale`` times its parent's ``lr``.

    Every other entry is the parent's, and ``lr`` is read from the parent at each update, so a
    learning-rate change made on the optimizer (``optimizer.lr = ...``, a schedule extension)
    reaches this rule with its factor.
    """

    def __init__(self, parent, scale):
        super(ScaledLearningRate, self).__init__(parent)
        self.__dict__['lr_scale'] = float(scale)

    @property
    def lr(self):
        return self._parent.lr * self.lr_scale

    def get_dict(self):
        d = self._parent.get_dict()
        d['lr'] = self.lr
        d['lr_scale'] = self.lr_scale
        return d


# Update rules whose update is linear in the gradient with the learning rate as a plain factor:
# there the pair form's trajectory is the full form's exactly.
EXACT_PAIR_FORM_RULES = (optimizers.sgd.SGDRule, optimizers.momentum_sgd.MomentumSGDRule)


def _hook_names(hookable):
    return [name for attr in ('_pre_update_hooks', '_post_update_hooks')
            for name in (getattr(hookable, attr, None) or {})]


class PairFormError(ValueError):
    """The pair form cannot be trained exactly with this optimizer or hook."""


def apply_pair_form_lr_factors(model, optimizer=None):
    """Give the pair-form Pairwise Difference parameters of ``model`` their learning-rate factors.

    ``A`` learns at twice, ``b`` at ``P^2 / 4`` times the optimizer's learning rate (see
    :class:`Friendly.links.PairwiseDifferencePairs`); call after ``optimizer.setup(model)``.
    Raises :class:`PairFormError` where the mapping onto the full form is not exact: an update
    rule that is not (momentum) SGD (Adam, RMSprop, ...), a per-rule hook, or an optimizer hook
    (gradient clipping sees another norm, weight decay another penalty) on ``optimizer``.
    Returns the number of parameters changed.
    """
    from Friendly.links import PairwiseDifferencePairs
    if optimizer is not None:
        hooks = _hook_names(getattr(optimizer, '_hookable', optimizer))
        if hooks:
            raise PairFormError('the pair form is exact only without optimizer hooks '
                                '(gradient clipping, weight decay); found {}'.format(
                                    ', '.join(hooks)))
    changed = 0
    for link in model.links():
        if not isinstance(link, PairwiseDifferencePairs):
            continue
        for name, factor in link.lr_factors().items():
            rule = getattr(link, name).update_rule
            if rule is None:
                raise PairFormError('parameter {} has no update rule: call optimizer.setup '
                                    'first'.format(name))
            if not isinstance(rule, EXACT_PAIR_FORM_RULES):
                raise PairFormError('the pair form is exact only under SGD and momentum SGD, '
                                    'not {}'.format(type(rule).__name__))
            if _hook_names(getattr(rule, '_hookable', None)):
                raise PairFormError('the pair form is exact only without update-rule hooks')
            # The rule's own hyperparameters read the optimizer's (their parent); a second call
            # replaces the factor rather than compounding it.
            rule.hyperparam = ScaledLearningRate(rule.hyperparam.parent, factor)
            changed += 1
    return changed
