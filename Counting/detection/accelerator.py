"""The accelerator of the thesis's loop: the same groups as :mod:`Counting.detection.second`,
computed with fewer and cheaper backward passes (``detect_shapes(method='second')`` by default).

Only the row of the second derivative at ``p`` is needed, so the forward pass and the first
backward pass are done once per image and their graph is kept; each row then costs one more
backward pass. Two ways put several rows into one pass. In both the loop is replayed exactly (the
next seed is still the argmax over the unassigned pixels, and rows are computed only when that
pixel has none yet), so the groups are those of the one-at-a-time loop
(tests/counting_tests/test_detection_accelerator.py checks it against the faithful loop):

* packing (``support``, automatic for :class:`Counting.models.Counter`): the row of ``p`` is zero
  outside the receptive fields of the last convolution's units that see ``p`` (:class:`Support`).
  Pixels whose boxes are disjoint are seeded together in one copy; the pass gives the sum of their
  rows, which separates exactly. The small network's last units see separate 87 x 87 blocks, so
  one pass gives a row in every block; each unit of the large one sees the whole image, so nothing
  packs there;
* stacking (``batch=K``): K copies of the image in one batch; in test mode the copies are
  independent, so seeding copy ``k`` at its own pixel gives K rows per pass. The extra copies go
  to the most salient free pixels spaced about a group's size apart. On a CPU a pass over K copies
  costs about K passes (see :mod:`Counting.bench.detection`), so this is for GPUs;
* sparse tangents (``sparse``, CPU): the tangent of a row's pass starts as one pixel, so the
  counters' first convolutions read almost only zeros there; under
  ``chainer.config.sparse_tangents`` :class:`Counting.links.Convolution2D` convolves it only where
  it is non-zero (:mod:`Counting.functions.sparse_tangent_convolution`).
"""
import warnings

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import numpy

from Counting import gradients
from Counting.detection.groups import Group, SecondDerivativeError, auto_threshold, group_mask
from Counting.detection.groups import DEFAULT_AUTO_RULE, to_cpu


class Support:

    """Per pixel, a box that holds every pixel where its second-derivative row can be non-zero.

    ``d saliency[p] / d image[j]`` needs a unit that is non-linear in both ``p`` and ``j``. For a
    convolutional counter whose last convolution feeds a linear layer and a ReLU (no second
    derivative), that is a unit of the last convolution whose receptive field holds both, so the
    row of ``p`` lives in the union of the receptive fields that contain ``p``. The box is
    separable: rows ``lo_y[y]..hi_y[y]`` by columns ``lo_x[x]..hi_x[x]`` (empty when lo > hi: a
    pixel no unit sees). Rows of pixels with disjoint boxes can share one backward pass (their
    sum separates exactly), which is what :class:`SecondDerivativeRows` does with it.
    """

    def __init__(self, lo_y, hi_y, lo_x, hi_x):
        self.lo_y, self.hi_y = numpy.asarray(lo_y), numpy.asarray(hi_y)
        self.lo_x, self.hi_x = numpy.asarray(lo_x), numpy.asarray(hi_x)

    @classmethod
    def from_convolutions(cls, specs, shape):
        """From ``(ksize, stride, pad)`` per layer (:func:`Counting.architectures.geometry`)
        and the image ``(H, W)``."""
        return cls(*_axis_support(specs, shape[0]), *_axis_support(specs, shape[1]))

    @classmethod
    def of_model(cls, model, shape):
        """The support of a :class:`Counting.models.Counter`, or None for any other model."""
        from Counting import architectures, models
        if type(model) is not models.Counter or model.arch not in architectures.ARCHITECTURES:
            return None
        return cls.from_convolutions(architectures.geometry(model.arch), shape)

    def box(self, y, x):
        """``(y0, y1, x0, x1)`` inclusive, or None when the row of ``(y, x)`` is zero."""
        y0, y1, x0, x1 = self.lo_y[y], self.hi_y[y], self.lo_x[x], self.hi_x[x]
        if y0 > y1 or x0 > x1:
            return None
        return int(y0), int(y1), int(x0), int(x1)

    def empty(self):
        """Bool ``(H, W)``: pixels whose row is zero."""
        return (self.lo_y > self.hi_y)[:, None] | (self.lo_x > self.hi_x)[None, :]

    def overlapping(self, box):
        """Row and column masks of the pixels whose box meets ``box``."""
        y0, y1, x0, x1 = box
        return ((self.lo_y <= y1) & (self.hi_y >= y0) & (self.lo_y <= self.hi_y),
                (self.lo_x <= x1) & (self.hi_x >= x0) & (self.lo_x <= self.hi_x))


def _axis_support(specs, size):
    """Along one axis: for each pixel, the span of the receptive fields of the last
    convolution's units that contain it (lo > hi where none does)."""
    n = size
    for k, s, p in specs:
        n = (n + 2 * p - k) // s + 1
    lo = numpy.full(size, size, dtype=numpy.int64)
    hi = numpy.full(size, -1, dtype=numpy.int64)
    for unit in range(max(n, 0)):
        a = b = unit
        for k, s, p in reversed(specs):
            a, b = a * s - p, b * s - p + k - 1
        a, b = max(a, 0), min(b, size - 1)
        if a > b:
            continue
        lo[a:b + 1] = numpy.minimum(lo[a:b + 1], a)
        hi[a:b + 1] = numpy.maximum(hi[a:b + 1], b)
    return lo, hi


class SupportError(RuntimeError):
    """A packed backward pass had non-zero values outside the boxes of its pixels."""


# ---------------------------------------------------------------------------------------------
# The second derivative, several rows per backward pass

class SecondDerivativeRows:

    """Rows ``d saliency[p] / d image`` of one image's second derivative.

    The forward pass and the first backward pass (with its graph kept for double backprop) run
    once on K stacked copies of the image; each backward pass of :meth:`rows` then seeds every
    copy at its own pixels. A copy can take several pixels at once when their :class:`Support`
    boxes are disjoint: the pass gives the sum of their rows, and each row is its sum restricted to
    its box (bit for bit the row computed alone, the other rows adding exact zeros there). With
    ``reuse_graph=False`` every pass redoes the forward and first backward passes too, as a plain
    loop would (kept for the benchmark).
    """

    def __init__(self, model, x, copies=1, reuse_graph=True, support=None, sparse=True,
                 output=None):
        self.model = model
        self.output = output  # None: the sum of the outputs; else the column differentiated
        self.x = gradients.as_batch(model, x)
        self.copies = int(copies)
        if self.copies < 1:
            raise ValueError('batch must be at least 1, got {}'.format(copies))
        self.reuse_graph = bool(reuse_graph)
        self.support = support
        self.sparse = bool(sparse)
        self.passes = 0
        self._checked = False  # whether a packed pass has been checked against a lone row
        self._build()
        if self.copies == 1:
            outputs, g = self._outputs, self._g
        else:
            # The seeds must not depend on K: a batch of K may round differently from a batch
            # of one (other BLAS kernels), so the saliency comes from the one-image pass.
            _, outputs, g = gradients.input_gradient(self.model, self.x, output=self.output)
        g0 = g.array[0]
        self.saliency = to_cpu(gradients.channel_max_abs(g0))
        self.channel = to_cpu(self.model.xp.abs(g0).argmax(axis=0))
        self.outputs = to_cpu(outputs.array[0])

    def _build(self):
        xp = self.model.xp
        xs = xp.ascontiguousarray(xp.broadcast_to(self.x, (self.copies,) + self.x.shape[1:]))
        self._xs, self._outputs, self._g = gradients.input_gradient(
            self.model, xs, enable_double_backprop=True, output=self.output)
        self._fresh = True

    def rows(self, pixels):
        """Importance maps ``max_c |h|`` (float32 ``(H, W)``) of at most K pixels ``(y, x)``, one
        per copy; None for a pixel whose saliency does not depend on the image (ReLU)."""
        return [None if r is None else r.full(self.saliency.shape)
                for r in self.packed_rows([[p] for p in pixels])]

    def packed_rows(self, packs):
        """One backward pass for ``packs``, at most K lists of pixels ``(y, x)`` (one list per
        copy; the pixels of a list must have disjoint support boxes). Returns one :class:`Row`
        (or None, as :meth:`rows`) per pixel, in order. Raises :class:`SupportError` when a
        packed copy has values outside its boxes."""
        if not 0 < len(packs) <= self.copies or not all(packs):
            raise ValueError('packed_rows() takes 1..{} non-empty lists'.format(self.copies))
        if not self.reuse_graph and not self._fresh:
            self._build()
        self._fresh = False
        xp = self.model.xp
        seed = xp.zeros_like(self._xs.array)
        for k, pack in enumerate(packs):
            for y, x in pack:
                # d|g|/dg = sign(g) only flips h's sign, which max_c |h| ignores.
                seed[k, int(self.channel[y, x]), y, x] = 1
        sparse = self.sparse and xp is numpy
        with chainer.using_config('train', False), chainer.using_config('sparse_tangents', sparse):
            h, = chainer.grad([self._g], [self._xs], grad_outputs=[seed])
        self.passes += 1
        n = sum(len(pack) for pack in packs)
        if h is None:
            return [None] * n
        importance = gradients.channel_max_abs(h.array[:len(packs)])
        importance = to_cpu(importance).astype(numpy.float32, copy=False)
        out = []
        for k, pack in enumerate(packs):
            if len(pack) == 1:
                out.append(Row(None, importance[k]))
                continue
            inside = numpy.zeros(importance.shape[1:], dtype=bool)
            for y, x in pack:
                box = self.support.box(y, x)
                if box is None:
                    out.append(Row((y, y, x, x), numpy.zeros((1, 1), numpy.float32)))
                    continue
                y0, y1, x0, x1 = box
                inside[y0:y1 + 1, x0:x1 + 1] = True
                out.append(Row(box, importance[k, y0:y1 + 1, x0:x1 + 1].copy()))
            if importance[k][~inside].any():
                raise SupportError('a packed row is non-zero outside its support box')
            if not self._checked:
                self._check_packing(pack[0], out[-len(pack)])
        return out

    def _check_packing(self, pixel, packed):
        """Compare the first packed row with the row computed alone (one extra pass per image):
        it must vanish outside its box and match inside, or the boxes are wrong."""
        self._checked = True
        alone = self.rows([pixel])[0]
        if alone is None:
            return
        y0, y1, x0, x1 = packed.box
        outside = alone.copy()
        outside[y0:y1 + 1, x0:x1 + 1] = 0
        inside = alone[y0:y1 + 1, x0:x1 + 1]
        if outside.any() or not numpy.allclose(inside, packed.values, rtol=1e-4,
                                               atol=1e-6 * float(alone.max())):
            raise SupportError('a packed row differs from the row computed alone')


class Row:

    """An importance map stored as the values inside a box (None: the whole image)."""

    __slots__ = ('box', 'values')

    def __init__(self, box, values):
        self.box = box
        self.values = values

    def full(self, shape):
        if self.box is None:
            return self.values
        y0, y1, x0, x1 = self.box
        out = numpy.zeros(shape, dtype=numpy.float32)
        out[y0:y1 + 1, x0:x1 + 1] = self.values
        return out


def _plan_pass(free, p, cached, copies, radius, support):
    """The pixels of the next backward pass: copy 0 holds ``p`` and, with a ``support``, the most
    salient free pixel of every region whose box is disjoint from the others'; each further copy
    holds the most salient free pixel farther than ``radius`` (Chebyshev) from every pixel chosen
    or cached. Returns a list of lists of flat indices."""
    height, width = free.shape
    work = free.copy()
    for q in cached:
        work.flat[q] = -numpy.inf
    work.flat[p] = -numpy.inf
    first = [p]
    if support is not None:
        box = support.box(*divmod(p, width))
        if box is not None:
            packable = work.copy()
            packable[support.empty()] = -numpy.inf
            while box is not None:
                rows, cols = support.overlapping(box)
                packable[numpy.ix_(rows, cols)] = -numpy.inf
                q = int(packable.argmax())
                if packable.flat[q] == -numpy.inf:
                    break
                first.append(q)
                box = support.box(*divmod(q, width))
    packs = [first]
    if copies > 1:
        def block(q):
            y, x = divmod(q, width)
            work[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1] = -numpy.inf

        for q in list(cached) + first:
            block(q)
        while len(packs) < copies:
            q = int(work.argmax())
            if work.flat[q] == -numpy.inf:
                break
            packs.append([q])
            block(q)
    return packs


def second_derivative_groups(engine, count, threshold, seed_upper, spread, callback,
                              auto=(DEFAULT_AUTO_RULE, None), connected=False):
    sal = engine.saliency
    height, width = sal.shape
    # -inf marks pixels that can no longer be seeds. argmax takes the first of equal values, so the
    # order of seeds is fully determined by the saliency map.
    free = sal.astype(numpy.float32, copy=True)
    if seed_upper is not None:
        free[sal > seed_upper] = -numpy.inf
    flat_free = free.reshape(-1)
    assigned = numpy.zeros((height, width), dtype=bool)
    cache = {}
    radii = []
    groups = []
    rows_computed = 0
    while len(groups) < count:
        p = int(flat_free.argmax())
        if flat_free[p] == -numpy.inf:
            break
        py, px = divmod(p, width)
        if (p not in cache and engine.support is not None
                and engine.support.box(py, px) is None):
            cache[p] = Row((py, py, px, px), numpy.zeros((1, 1), numpy.float32))  # no unit sees p
        if p not in cache:
            radius = spread
            if radius is None:
                radius = int(numpy.median(radii)) if radii else max(1, min(height, width) // 20)
            packs = _plan_pass(free, p, cache, engine.copies, radius, engine.support)
            try:
                rows = engine.packed_rows([[divmod(q, width) for q in pack] for pack in packs])
            except SupportError:
                warnings.warn('second-derivative rows leak out of the receptive-field boxes; '
                              'computing them one per copy from now on')
                engine.support = None
                packs = _plan_pass(free, p, cache, engine.copies, radius, None)
                rows = engine.packed_rows([[divmod(q, width) for q in pack] for pack in packs])
            wanted = [q for pack in packs for q in pack]
            rows_computed += len(wanted)
            cache.update(zip(wanted, rows))
        row = cache.pop(p)
        importance = None if row is None else row.full((height, width))
        if importance is None or not importance.any():
            if not groups and sal[py, px] > 0:
                raise SecondDerivativeError()
            importance = numpy.zeros((height, width), dtype=numpy.float32)
        cut = (auto_threshold(importance, ~assigned, *auto) if threshold == 'auto'
               else threshold)
        mask = group_mask(importance, cut, assigned, (py, px), connected)
        assigned |= mask
        assigned[py, px] = True
        free[mask] = -numpy.inf
        free[py, px] = -numpy.inf
        for q in [q for q in cache if assigned.flat[q]]:
            del cache[q]
        group = Group((py, px), engine.channel[py, px], mask, importance)
        if engine.copies > 1 and group.box is not None:  # spacing of the stacked copies
            ys, xs = numpy.nonzero(mask)
            radii.append(int(max(numpy.abs(ys - py).max(), numpy.abs(xs - px).max())))
        groups.append(group)
        if callback is not None:
            callback(group)
    return groups, rows_computed
