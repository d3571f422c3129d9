"""The thesis's detection loop (method ``second``, thesis 2.2.2), as written there.

Read it beside the thesis: ``n = round(sum(outputs))``; at most ``n`` times, while unassigned
pixels remain, the most salient unassigned pixel ``p`` is differentiated once more,
``h = d saliency[p] / d image`` (double backprop), ``importance = max_c |h|``; the unassigned
pixels with ``importance >= threshold`` form a group, and they and ``p`` become assigned.

The forward and first backward passes are kept (``keep_graph``, what the thesis's code redoes for
every shape). :mod:`Counting.detection.accelerator` computes the same groups faster.
"""
from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import numpy

from Counting import gradients
from Counting.detection.groups import Group, SecondDerivativeError, auto_threshold, group_mask
from Counting.detection.groups import DEFAULT_AUTO_RULE, to_cpu


class FirstOrder:

    """One image's forward pass and first backward pass, ``g = d sum(outputs) / d image`` (with
    ``output``, a column index: ``d outputs[output] / d image``, one shape type's saliency), with
    the graph kept; ``saliency = max_c |g|`` and the ``channel`` it comes from, per pixel."""

    def __init__(self, model, image, keep_graph=True, output=None):
        self.model, self.keep_graph, self.passes, self.output = model, keep_graph, 0, output
        self.x = gradients.as_batch(model, image)
        self.xs, outputs, self.g = gradients.input_gradient(model, self.x, True, output)
        self.outputs = to_cpu(outputs.array[0])
        self.saliency = to_cpu(gradients.channel_max_abs(self.g.array[0]))
        self.channel = to_cpu(model.xp.abs(self.g.array[0]).argmax(axis=0))

    def row(self, y, x):
        """``max_c |d saliency[y, x] / d image|`` (float32 ``(H, W)``), or None (ReLU)."""
        if not self.keep_graph and self.passes:  # the thesis's code: everything again
            self.xs, _, self.g = gradients.input_gradient(self.model, self.x, True,
                                                             self.output)
        seed = self.model.xp.zeros_like(self.xs.array)
        seed[0, int(self.channel[y, x]), y, x] = 1  # d|g|/dg = sign(g): max_c |h| ignores it
        with chainer.using_config('train', False):
            h, = chainer.grad([self.g], [self.xs], grad_outputs=[seed])
        self.passes += 1
        if h is None:
            return None
        return to_cpu(gradients.channel_max_abs(h.array[0])).astype(numpy.float32)


def second_derivative_groups(first, count, threshold, seed_upper=None, callback=None,
                             auto=(DEFAULT_AUTO_RULE, None), connected=False):
    """The loop of thesis 2.2.2 on a :class:`FirstOrder`; returns the list of :class:`Group`.

    ``threshold``: a number or ``'auto'`` (:func:`auto_threshold` with ``auto``);
    ``seed_upper``: seeds only where the saliency is at most this (thesis 2.2.3; None: no bound);
    ``connected``: keep only the part of each group that touches its seed (:func:`group_mask`).
    """
    sal = first.saliency
    free = sal.astype(numpy.float32, copy=True)  # -inf: no longer a seed; argmax takes the first
    if seed_upper is not None:
        free[sal > seed_upper] = -numpy.inf
    assigned = numpy.zeros(sal.shape, dtype=bool)
    groups = []
    while len(groups) < count:
        p = numpy.unravel_index(int(free.argmax()), sal.shape)
        if free[p] == -numpy.inf:
            break
        importance = first.row(*p)
        if importance is None or not importance.any():
            if not groups and sal[p] > 0:
                raise SecondDerivativeError()
            importance = numpy.zeros(sal.shape, dtype=numpy.float32)
        cut = auto_threshold(importance, ~assigned, *auto) if threshold == 'auto' else threshold
        mask = group_mask(importance, cut, assigned, p, connected)
        assigned |= mask
        assigned[p] = True
        free[assigned] = -numpy.inf
        groups.append(Group(p, first.channel[p], mask, importance))
        if callback is not None:
            callback(groups[-1])
    return groups
