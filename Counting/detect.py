"""Shape detection from a counter's saliency: the "saliency of saliency" of thesis 2.2.2.

The thesis's loop (``method='second'``, the default): ``n = round(sum(outputs))``. Repeat at most
``n`` times while unassigned pixels remain: take the unassigned pixel ``p`` with the largest
saliency (:mod:`Counting.saliency`), differentiate the saliency at ``p`` once more,
``h = d saliency[p] / d image`` (double backprop, so the activations must be smooth), reduce it
per pixel to ``importance = max_c |h|``; the still unassigned pixels with
``importance >= threshold`` (default 5e-10, the original's) form one group; mark them and ``p``
assigned. Each group gets a bounding box.

Only the row of the second derivative at ``p`` is needed, so the forward pass and the first
backward pass are done once per image and their graph is kept; each row then costs one more
backward pass. Two ways put several rows into one pass. In both the loop is replayed exactly (the
next seed is still the argmax over the unassigned pixels, and rows are computed only when that
pixel has none yet), so the groups are those of the one-at-a-time loop:

* packing (``support``, automatic for :class:`Counting.models.Counter`): the row of ``p`` is zero
  outside the receptive fields of the last convolution's units that see ``p`` (:class:`Support`).
  Pixels whose boxes are disjoint are seeded together in one copy; the pass gives the sum of their
  rows, which separates exactly. The small network's last units see separate 87 x 87 blocks, so
  one pass gives a row in every block; each unit of the large one sees the whole image, so nothing
  packs there;
* stacking (``batch=K``): K copies of the image in one batch; in test mode the copies are
  independent, so seeding copy ``k`` at its own pixel gives K rows per pass. The extra copies go
  to the most salient free pixels spaced about a group's size apart. On a CPU a pass over K copies
  costs about K passes (see :mod:`Counting.bench_detection`), so this is for GPUs.

Beyond the thesis (2.2.3 proposes them; both use only the first derivative, so ReLU counters work):

* ``method='upper'``: keep the pixels with ``lower * max <= saliency <= upper * max`` (the upper
  bound drops the over-salient pixels between shapes), then the ``n`` largest 8-connected blobs;
* ``method='kmeans'``: K-means with 3 clusters over the saliency values (optionally after a tenth
  root or a logarithm; SciPy's ``kmeans2``, run to convergence), keep the middle cluster, then the
  ``n`` largest 8-connected blobs (SciPy's labelling, CuPy's on a GPU for ``upper``);
* ``seed_upper`` for the thesis's loop: seeds only among pixels with
  ``saliency <= seed_upper * max``;
* scoring against the generator's annotations: greedy one-to-one matching of boxes by IoU >= 0.5,
  precision, recall and mean IoU of the matches.

Boxes are inclusive pixel boxes ``[xmin, ymin, xmax, ymax]``, like the generator's annotations.

Command line::

    python -m Counting.detect --run RUN_DIR --images FOLDER --out DIR [--names ...] [--limit N]
        [--threshold 5e-10] [--method second|upper|kmeans] [--batch K] [--device D]

writes ``<name>_group<k>_mask.png`` (the group's pixels white), ``<name>_group<k>_importance.png``
(its importance map, tenth root, normalised), ``<name>_boxes.png`` (the input with the boxes in
red, the annotated ones in green) and ``detections.json``: ``settings``; ``images``, per image the
network's ``outputs``, the ``count`` looked for, its ``groups`` (``seed`` as ``[x, y]``, ``box``,
``pixels``), ``seconds`` and, with annotations, ``truth_boxes`` and ``score``; and ``scores``,
pooled over the images (None without annotations).
"""
import argparse
import contextlib
import os
import sys
import time
import warnings

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
from chainer.functions.connection import convolution_2d
from chainer.utils import conv as conv_utils
import numpy
from PIL import Image, ImageDraw
from scipy.cluster.vq import kmeans2

from Counting import limits
from Counting import saliency as saliency_lib
from Counting.shapes import label_blobs
from lenses_common.device import device_from_args, positive_int
from lenses_common.progress import Progress
from lenses_common.runfolder import atomic_write_json, load_json
from lenses_common.seeding import add_seed_argument

DEFAULT_THRESHOLD = 5e-10
METHODS = ('second', 'upper', 'kmeans')
#: Rules of ``threshold='auto'`` and their default levels (chosen by measurement, see
#: Counting/README.md "Automatic thresholds").
AUTO_RULES = ('fraction', 'quantile')
AUTO_LEVELS = {'fraction': 0.1, 'quantile': 0.5}
SMOOTH_ACTIVATIONS = ('softplus', 'sigmoid', 'modsoftplus', 'sin')
KMEANS_SPACES = ('linear', 'root', 'log')


class SecondDerivativeError(ValueError):
    """The second derivative the thesis's loop needs is identically zero (e.g. ReLU)."""

    def __init__(self, reason='the second derivative of this network is identically zero'):
        super().__init__(
            '{}: the second-derivative detection (--method second) needs a smooth activation '
            '({}); train the counter with one of those, or use a first-derivative variant '
            '(--method upper or --method kmeans)'.format(reason, ', '.join(SMOOTH_ACTIVATIONS)))


class Group:

    """One detected group.

    Attributes:
        seed: ``(y, x)`` of the pixel whose saliency was differentiated (for the first-derivative
            methods: the group's most salient pixel).
        channel: the channel of the seed's saliency (the largest |gradient|), or None.
        mask: bool ``(H, W)``, the group's pixels.
        importance: float32 ``(H, W)``, ``max_c |d saliency[seed] / d image|`` (first-derivative
            methods: the saliency inside the group, zero elsewhere).
        box: inclusive ``[xmin, ymin, xmax, ymax]`` around ``mask``, or None when it is empty.
    """

    __slots__ = ('seed', 'channel', 'mask', 'importance', 'box')

    def __init__(self, seed, channel, mask, importance):
        self.seed = (int(seed[0]), int(seed[1]))
        self.channel = None if channel is None else int(channel)
        self.mask = mask
        self.importance = importance
        self.box = mask_box(mask)

    def to_json(self):
        return {'seed': [self.seed[1], self.seed[0]], 'channel': self.channel, 'box': self.box,
                'pixels': int(self.mask.sum())}

    def __repr__(self):
        return 'Group(seed={}, pixels={}, box={})'.format(self.seed, int(self.mask.sum()),
                                                          self.box)


class Detections(list):

    """The groups found in one image (a list of :class:`Group`), with what they came from.

    Attributes: ``outputs`` (the counter's outputs, numpy), ``count`` (the number of groups asked
    for), ``saliency`` (float32 ``(H, W)``), ``method``, ``rows`` (second-derivative rows computed)
    and ``passes`` (backward passes that computed them).
    """

    def __init__(self, groups=(), **info):
        super().__init__(groups)
        self.outputs = info.get('outputs')
        self.count = info.get('count')
        self.saliency = info.get('saliency')
        self.method = info.get('method')
        self.rows = info.get('rows', 0)
        self.passes = info.get('passes', 0)

    @property
    def boxes(self):
        return [g.box for g in self if g.box is not None]


def mask_box(mask):
    """Inclusive ``[xmin, ymin, xmax, ymax]`` of the True pixels of ``mask``, or None."""
    rows = numpy.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = numpy.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])]


# ---------------------------------------------------------------------------------------------
# Where a row can be non-zero

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
        """From ``(in, out, ksize, stride, pad)`` per convolution and the image ``(H, W)``."""
        return cls(*_axis_support(specs, shape[0]), *_axis_support(specs, shape[1]))

    @classmethod
    def of_model(cls, model, shape):
        """The support of a :class:`Counting.models.Counter`, or None for any other model."""
        from Counting import models
        if type(model) is not models.Counter or model.arch not in models.ARCHITECTURES:
            return None
        return cls.from_convolutions(models.ARCHITECTURES[model.arch], shape)

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
    for _, _, k, s, p in specs:
        n = (n + 2 * p - k) // s + 1
    lo = numpy.full(size, size, dtype=numpy.int64)
    hi = numpy.full(size, -1, dtype=numpy.int64)
    for unit in range(max(n, 0)):
        a = b = unit
        for _, _, k, s, p in reversed(specs):
            a, b = a * s - p, b * s - p + k - 1
        a, b = max(a, 0), min(b, size - 1)
        if a > b:
            continue
        lo[a:b + 1] = numpy.minimum(lo[a:b + 1], a)
        hi[a:b + 1] = numpy.maximum(hi[a:b + 1], b)
    return lo, hi


# ---------------------------------------------------------------------------------------------
# Convolutions of mostly-zero inputs

def _window_range(lo, hi, size, k, s, p, d):
    """Output size along one axis and the first and last outputs whose window reads any of the
    inputs ``lo..hi``."""
    out = (size + 2 * p - (k - 1) * d - 1) // s + 1
    first = max(0, -(-(lo + p - (k - 1) * d) // s))
    last = min(out - 1, (hi + p) // s)
    return out, first, last


def _sparse_convolution_core(node, dense_core, x, W, b):
    """``Convolution2DFunction._forward_cpu_core`` for an input that is zero outside a small box:
    the outputs whose windows read only zeros are the bias, the others are computed on a crop."""
    if node._use_ideep or node.cover_all:
        return dense_core(node, x, W, b)
    n, _, h, w = x.shape
    _, _, kh, kw = W.shape
    seen = x.any(axis=(0, 1))
    rows = numpy.flatnonzero(seen.any(axis=1))
    cols = numpy.flatnonzero(seen.any(axis=0))
    if rows.size == 0:
        rows = cols = numpy.array([-kh * node.dy - node.ph - 1])  # no window reads it
    out_h, y0, y1 = _window_range(rows[0], rows[-1], h, kh, node.sy, node.ph, node.dy)
    out_w, x0, x1 = _window_range(cols[0], cols[-1], w, kw, node.sx, node.pw, node.dx)
    if 4 * max(y1 - y0 + 1, 0) * max(x1 - x0 + 1, 0) > out_h * out_w:
        return dense_core(node, x, W, b)
    y = numpy.zeros((n, out_h, out_w, W.shape[0]), dtype=x.dtype)
    if y1 >= y0 and x1 >= x0:
        # The input span those outputs read, zero-filled where it leaves the image (padding).
        iy0, iy1 = y0 * node.sy - node.ph, y1 * node.sy - node.ph + (kh - 1) * node.dy
        ix0, ix1 = x0 * node.sx - node.pw, x1 * node.sx - node.pw + (kw - 1) * node.dx
        crop = numpy.zeros(x.shape[:2] + (iy1 - iy0 + 1, ix1 - ix0 + 1), dtype=x.dtype)
        a0, a1, c0, c1 = max(iy0, 0), min(iy1, h - 1), max(ix0, 0), min(ix1, w - 1)
        crop[:, :, a0 - iy0:a1 - iy0 + 1, c0 - ix0:c1 - ix0 + 1] = x[:, :, a0:a1 + 1, c0:c1 + 1]
        col = conv_utils.im2col_cpu(crop, kh, kw, node.sy, node.sx, 0, 0, dy=node.dy, dx=node.dx)
        y[:, y0:y1 + 1, x0:x1 + 1] = numpy.tensordot(col, W, ((1, 2, 3), (1, 2, 3)))
    if b is not None:
        y += b
    return numpy.rollaxis(y, 3, 1),


@contextlib.contextmanager
def sparse_convolutions():
    """Within the block, CPU convolutions of inputs that are zero outside a small box compute only
    the outputs that can be non-zero (same values up to rounding).

    The tangent that a second-derivative row pushes through the network starts as one pixel, so
    the first convolutions of that pass read almost only zeros; on the large counter they are about
    a third of the pass. Patches ``Convolution2DFunction._forward_cpu_core`` for the block and
    puts it back after it (not thread-safe).
    """
    cls = convolution_2d.Convolution2DFunction
    dense_core = cls._forward_cpu_core

    def core(node, x, W, b):
        return _sparse_convolution_core(node, dense_core, x, W, b)

    cls._forward_cpu_core = core
    try:
        yield
    finally:
        cls._forward_cpu_core = dense_core


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

    def __init__(self, model, x, copies=1, reuse_graph=True, support=None, sparse=True):
        self.model = model
        self.x = saliency_lib.as_batch(model, x)
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
            _, outputs, g = saliency_lib.input_gradient(self.model, self.x)
        g0 = g.array[0]
        self.saliency = self._to_cpu(saliency_lib.channel_max_abs(g0))
        self.channel = self._to_cpu(self.model.xp.abs(g0).argmax(axis=0))
        self.outputs = self._to_cpu(outputs.array[0])

    @staticmethod
    def _to_cpu(a):
        return numpy.asarray(chainer.backend.CpuDevice().send(a))

    def _build(self):
        xp = self.model.xp
        xs = xp.ascontiguousarray(xp.broadcast_to(self.x, (self.copies,) + self.x.shape[1:]))
        self._xs, self._outputs, self._g = saliency_lib.input_gradient(
            self.model, xs, enable_double_backprop=True)
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
        sparse = sparse_convolutions() if self.sparse and xp is numpy else contextlib.nullcontext()
        with chainer.using_config('train', False), sparse:
            h, = chainer.grad([self._g], [self._xs], grad_outputs=[seed])
        self.passes += 1
        n = sum(len(pack) for pack in packs)
        if h is None:
            return [None] * n
        importance = saliency_lib.channel_max_abs(h.array[:len(packs)])
        importance = self._to_cpu(importance).astype(numpy.float32, copy=False)
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


def auto_threshold(importance, free, rule='quantile', level=None):
    """The threshold of one group chosen from its own importance map (thesis 2.2.3 asks for
    automatic thresholds instead of the absolute 5e-10).

    ``fraction``: ``level`` times the largest importance of the row (the group's own scale, so
    the rule does not depend on the network's units); ``quantile``: the ``level`` quantile of the
    non-zero importance values of the still unassigned pixels (``free``, bool). Returns inf when
    the row is zero there (no group).
    """
    if rule not in AUTO_RULES:
        raise ValueError('unknown automatic threshold rule {!r}; choose from {}'.format(
            rule, ', '.join(AUTO_RULES)))
    level = AUTO_LEVELS[rule] if level is None else float(level)
    if not 0 <= level <= 1:
        raise ValueError('the level of the {} rule must be in [0, 1], got {}'.format(rule, level))
    if rule == 'fraction':
        top = float(importance.max()) if importance.size else 0.0
        return level * top if top > 0 else numpy.inf
    values = importance[free & (importance > 0)]
    if not values.size:
        return numpy.inf
    return float(numpy.quantile(values, level))


def _second_derivative_groups(engine, count, threshold, seed_upper, spread, callback,
                              auto=('quantile', None)):
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
        mask = (importance >= cut) & ~assigned
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


# ---------------------------------------------------------------------------------------------
# First-derivative variants

#: Lloyd steps per call of :func:`scipy.cluster.vq.kmeans2` while :func:`kmeans` runs it to
#: convergence (its default), and the most steps in all before it gives up with a warning.
KMEANS_STEPS = 10
KMEANS_MAX_STEPS = 300


def kmeans(values, k=3, seed=0, max_steps=KMEANS_MAX_STEPS):
    """K-means of the rows of ``values`` ((N,) or (N, D)) by :func:`scipy.cluster.vq.kmeans2`.

    k-means++ seeding from ``seed``, then Lloyd steps ``KMEANS_STEPS`` at a time (``kmeans2``
    itself stops after a fixed count) until the centres no longer move, at most ``max_steps``
    (a RuntimeWarning then). Deterministic for a given ``seed``. Returns ``(centres, labels)``
    with the clusters numbered in increasing order of their centre's first coordinate. Raises
    ValueError when there are fewer distinct values than clusters.
    """
    data = numpy.asarray(values, dtype=numpy.float64)
    if data.ndim == 1:
        data = data[:, None]
    distinct = len(numpy.unique(data[:, 0] if data.shape[1] == 1 else data, axis=0))
    if distinct < k:
        raise ValueError('K-means needs at least {} distinct values, got {}'.format(k, distinct))
    centres, labels = kmeans2(data, k, iter=KMEANS_STEPS, minit='++', seed=seed)
    steps = KMEANS_STEPS
    while True:
        if steps >= max_steps:
            warnings.warn('K-means did not converge in {} steps'.format(steps), RuntimeWarning)
            break
        moved, labels = kmeans2(data, centres, iter=KMEANS_STEPS, minit='matrix',
                                check_finite=False)  # checked by the first call
        steps += KMEANS_STEPS
        if numpy.array_equal(moved, centres):
            break
        centres = moved
    order = numpy.argsort(centres[:, 0], kind='stable')
    rank = numpy.empty(k, dtype=numpy.int64)
    rank[order] = numpy.arange(k)
    return centres[order], rank[labels]


def kmeans_middle(sal, space='linear', seed=0):
    """Mask of the pixels in the middle of 3 K-means clusters of the saliency values.

    ``space``: cluster the values themselves (``linear``), their tenth root (``root``, the scale
    of the pictures) or their logarithm (``log``, zeros mapped below the smallest positive value).
    """
    values = numpy.asarray(sal, dtype=numpy.float64).ravel()
    if space == 'root':
        values = values ** 0.1
    elif space == 'log':
        positive = values[values > 0]
        floor = positive.min() / 10 if positive.size else 1.0
        values = numpy.log(numpy.maximum(values, floor))
    elif space != 'linear':
        raise ValueError('unknown K-means space {!r}; choose from {}'.format(
            space, ', '.join(KMEANS_SPACES)))
    _, labels = kmeans(values, k=3, seed=seed)
    return (labels == 1).reshape(numpy.shape(sal))


def _blob_groups(sal, keep, count, min_size):
    """The ``count`` largest 8-connected blobs of ``keep`` (NumPy, or CuPy: labelled on the
    device) with at least ``min_size`` pixels, as groups; ties by label (first pixel)."""
    labels, n = label_blobs(keep)
    xp = chainer.backend.get_array_module(labels)
    sizes = _to_cpu(xp.bincount(labels.ravel(), minlength=n + 1))[1:]
    labels = _to_cpu(labels)
    order = sorted((lab for lab in range(1, n + 1) if sizes[lab - 1] >= min_size),
                   key=lambda lab: (-sizes[lab - 1], lab))
    groups = []
    for lab in order[:count]:
        mask = labels == lab
        inside = numpy.where(mask, sal, -numpy.inf)
        seed = numpy.unravel_index(int(inside.argmax()), sal.shape)
        groups.append(Group(seed, None, mask, numpy.where(mask, sal, 0).astype(numpy.float32)))
    return groups


def _to_cpu(a):
    return numpy.asarray(chainer.backend.CpuDevice().send(a))


# ---------------------------------------------------------------------------------------------
# Detection

def detect(model, image, threshold=DEFAULT_THRESHOLD, batch=1, method='second', count=None,
           seed_upper=None, upper=0.5, lower=0.05, kmeans_space='linear', seed=0, min_size=1,
           spread=None, reuse_graph=True, support='auto', sparse=True, callback=None,
           auto_rule='quantile', auto_level=None):
    """Detect shapes in one image from a counter's saliency.

    Args:
        model: a Link mapping ``(B, 3, H, W)`` images to ``(B, n)`` counts; run in test mode.
        image: ``(3, H, W)`` or ``(1, 3, H, W)``, raw 0..255 values, NumPy or CuPy.
        threshold: ``second``: importance threshold of a group (thesis: 5e-10), or ``'auto'``
            for a threshold per group from its own importance (:func:`auto_threshold` with
            ``auto_rule`` and ``auto_level``).
        batch: ``second``: second-derivative rows per backward pass (K copies of the image in
            one batch); any K gives the groups of K = 1. Memory grows with K.
        method: ``second`` (the thesis's loop), ``upper`` or ``kmeans`` (see the module).
        count: number of groups to look for (default ``round(sum(outputs))``).
        seed_upper: ``second``: seeds only where saliency <= ``seed_upper`` x the largest
            saliency (default: no bound, the thesis's loop).
        upper, lower: ``upper``: keep pixels with ``lower * max <= saliency <= upper * max``.
        kmeans_space: ``kmeans``: ``linear``, ``root`` or ``log`` (see :func:`kmeans_middle`).
        seed: ``kmeans``: seed of the K-means initialisation.
        min_size: ``upper``/``kmeans``: smallest blob (pixels) that makes a group.
        spread: ``second`` with ``batch > 1``: spacing (pixels) of the extra rows of a pass
            (default: the median radius of the groups found so far).
        reuse_graph: ``second``: keep the first-order graph for every row (False redoes the
            forward and first backward passes for every pass, as a plain loop would).
        support: ``second``: a :class:`Support` to pack rows with disjoint boxes into one
            backward pass; ``'auto'`` (default) derives it for a
            :class:`Counting.models.Counter` and packs nothing for other models; None never packs.
            Same groups either way.
        sparse: ``second``, CPU: compute the convolutions of each row's pass only where their
            input is non-zero (:func:`sparse_convolutions`; same values up to rounding).
        callback: called with each :class:`Group` as it is found.

    Returns:
        :class:`Detections`, a list of :class:`Group` (masks are disjoint).

    Raises:
        SecondDerivativeError: ``second`` on a network whose second derivative is identically
            zero (ReLU). ValueError for bad arguments or a non-finite saliency map.
    """
    if method not in METHODS:
        raise ValueError('unknown method {!r}; choose from {}'.format(method, ', '.join(METHODS)))
    if threshold == 'auto':
        auto_threshold(numpy.zeros((1, 1), numpy.float32), numpy.ones((1, 1), bool), auto_rule,
                       auto_level)  # checks the rule and level now
    elif not (numpy.isfinite(threshold) and threshold >= 0):
        raise ValueError('threshold must be a finite number >= 0, got {}'.format(threshold))
    if method == 'second':
        engine = SecondDerivativeRows(model, image, copies=batch, reuse_graph=reuse_graph,
                                      sparse=sparse)
        if isinstance(support, str):
            if support != 'auto':
                raise ValueError("support must be 'auto', None or a Support, got {!r}".format(
                    support))
            support = Support.of_model(model, engine.saliency.shape)
        engine.support = support
        sal, outputs = engine.saliency, engine.outputs
    else:
        x = saliency_lib.as_batch(model, image)
        _, out_var, g = saliency_lib.input_gradient(model, x)
        sal_device = saliency_lib.channel_max_abs(g.array[0])
        sal = _to_cpu(sal_device)
        outputs = _to_cpu(out_var.array[0])
    if not numpy.all(numpy.isfinite(sal)):
        raise ValueError('the saliency map holds non-finite values (the network\'s derivative '
                         'overflowed; use a stable activation)')
    if count is None:
        count = int(round(float(numpy.sum(outputs, dtype=numpy.float64))))
    count = max(int(count), 0)
    top = float(sal.max()) if sal.size else 0.0
    info = dict(outputs=outputs, count=count, saliency=sal.astype(numpy.float32, copy=False),
                method=method)
    if method == 'second':
        groups, rows = _second_derivative_groups(
            engine, count, threshold, None if seed_upper is None else seed_upper * top, spread,
            callback, auto=(auto_rule, auto_level))
        return Detections(groups, rows=rows, passes=engine.passes, **info)
    if method == 'upper':
        if not 0 <= lower <= upper:
            raise ValueError('need 0 <= lower <= upper, got lower {} and upper {}'.format(
                lower, upper))
        # Thresholded and labelled where the saliency lives (the GPU's labelling on CuPy).
        keep = (sal_device >= lower * top) & (sal_device <= upper * top) & (sal_device > 0)
    else:
        keep = numpy.zeros(sal.shape, bool)
        if count and len(numpy.unique(sal)) >= 3:  # fewer distinct values: nothing to cluster
            keep = kmeans_middle(sal, kmeans_space, seed)
    groups = _blob_groups(sal, keep, count, min_size)
    if callback is not None:
        for group in groups:
            callback(group)
    return Detections(groups, **info)


# ---------------------------------------------------------------------------------------------
# Scoring against annotations

def box_iou(a, b):
    """IoU of two inclusive pixel boxes ``[xmin, ymin, xmax, ymax]`` (areas counted in pixels)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / float(area_a + area_b - inter)


def match_boxes(predicted, truth, iou_threshold=0.5):
    """Greedy one-to-one matching: the pair with the largest IoU first, while IoU >= threshold.

    Returns a list of ``(i_predicted, i_truth, iou)``.
    """
    pairs = []
    for i, p in enumerate(predicted):
        for j, t in enumerate(truth):
            iou = box_iou(p, t)
            if iou >= iou_threshold:
                pairs.append((-iou, i, j))
    pairs.sort()
    used_p, used_t, matches = set(), set(), []
    for neg_iou, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            matches.append((i, j, -neg_iou))
    return matches


def _ratio(a, b):
    return a / b if b else None


def score_boxes(predicted, truth, iou_threshold=0.5):
    """Precision, recall and mean IoU of the matches (:func:`match_boxes`) for one image.

    Returns a dict with ``matched``, ``predicted``, ``truth``, ``precision`` (None without
    predictions), ``recall`` (None without annotated shapes), ``mean_iou`` (None without matches)
    and ``iou_sum``.
    """
    matches = match_boxes(predicted, truth, iou_threshold)
    iou_sum = float(sum(m[2] for m in matches))
    return {'matched': len(matches), 'predicted': len(predicted), 'truth': len(truth),
            'precision': _ratio(len(matches), len(predicted)),
            'recall': _ratio(len(matches), len(truth)),
            'mean_iou': _ratio(iou_sum, len(matches)), 'iou_sum': iou_sum}


def combine_scores(scores):
    """Pool per-image scores: precision and recall over all boxes, mean IoU over all matches."""
    matched = sum(s['matched'] for s in scores)
    predicted = sum(s['predicted'] for s in scores)
    truth = sum(s['truth'] for s in scores)
    iou_sum = sum(s['iou_sum'] for s in scores)
    return {'images': len(scores), 'matched': matched, 'predicted': predicted, 'truth': truth,
            'precision': _ratio(matched, predicted), 'recall': _ratio(matched, truth),
            'mean_iou': _ratio(iou_sum, matched), 'iou_sum': iou_sum}


# ---------------------------------------------------------------------------------------------
# Pictures

def mask_picture(mask):
    return numpy.where(mask, 255, 0).astype(numpy.uint8)


def boxes_picture(image, boxes, truth_boxes=()):
    """The input image (uint8 HWC), predicted boxes in red (2 px), annotated ones in green."""
    canvas = Image.fromarray(saliency_lib.image_to_rgb(image))
    draw = ImageDraw.Draw(canvas)
    for box in truth_boxes:
        draw.rectangle([int(v) for v in box], outline=(0, 255, 0), width=1)
    for box in boxes:
        draw.rectangle([int(v) for v in box], outline=(255, 0, 0), width=2)
    return numpy.asarray(canvas)


def write_pictures(out, name, image, detections, truth_boxes=()):
    """Write one mask and one importance picture per group and the boxes picture of one image."""
    base = os.path.join(out, saliency_lib.stem(name))
    for k, group in enumerate(detections):
        saliency_lib.save_png('{}_group{}_mask.png'.format(base, k), mask_picture(group.mask))
        saliency_lib.save_png('{}_group{}_importance.png'.format(base, k),
                              saliency_lib.saliency_picture(group.importance))
    saliency_lib.save_png(base + '_boxes.png',
                          boxes_picture(image, detections.boxes, truth_boxes))


# ---------------------------------------------------------------------------------------------
# Command line

def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('{} is not a number'.format(text)) from None
    if not (numpy.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError('{} is not a finite number >= 0'.format(text))
    return value


def _threshold(text):
    if text == 'auto':
        return text
    try:
        return _non_negative_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError('{} is neither "auto" nor a finite number >= 0'.format(
            text)) from None


def build_parser():
    parser = argparse.ArgumentParser(
        prog='python -m Counting.detect',
        description='Detect shapes with a trained counter (thesis 2.2.2): the second derivative '
                    'of the saliency at the most salient unassigned pixel, thresholded, gives '
                    'one group per shape; or a first-derivative variant of thesis 2.2.3. Writes '
                    '<name>_group<k>_mask.png, <name>_group<k>_importance.png, <name>_boxes.png '
                    'and detections.json (boxes, and scores when annotations exist).')
    saliency_lib.add_input_arguments(parser)
    parser.add_argument('--method', choices=METHODS, default='second',
                        help='second: the thesis loop with the second derivative (needs a smooth '
                             'activation); upper: saliency between --lower and --upper; kmeans: '
                             'middle of 3 K-means clusters of the saliency (default: %(default)s)')
    parser.add_argument('--threshold', type=_threshold, default=DEFAULT_THRESHOLD,
                        help='second: importance (max over channels of |second derivative|) a '
                             'pixel needs to join a group (default: %(default)s, the original\'s), '
                             'or "auto": a threshold per group from its own importance values '
                             '(--auto-rule)')
    parser.add_argument('--auto-rule', choices=AUTO_RULES, default='quantile',
                        help='second with --threshold auto: "fraction": --auto-level x the '
                             'group\'s largest importance; "quantile": the --auto-level quantile '
                             'of its non-zero importance values (default: %(default)s)')
    parser.add_argument('--auto-level', type=_non_negative_float, default=None,
                        help='level of --auto-rule in [0, 1] (default: {})'.format(
                            ', '.join('{} for {}'.format(v, k) for k, v in AUTO_LEVELS.items())))
    parser.add_argument('--pictures', type=int, default=None, metavar='N',
                        help='write the pictures of the first N images only (default: all); '
                             'every image is scored')
    parser.add_argument('--batch', type=positive_int, default=1,
                        help='second: second-derivative rows per backward pass, as copies of the '
                             'image in one batch; same groups for any value, memory grows with '
                             'it (default: %(default)s; see Counting/README.md for timings)')
    parser.add_argument('--plain', action='store_true',
                        help='second: one plain backward pass per row, without packing rows '
                             'with disjoint receptive-field boxes into one pass and without '
                             'sparse convolutions (same groups; for checking and timing)')
    parser.add_argument('--count', type=int, default=None,
                        help='number of groups to look for, at most {} (default: round(sum of '
                             'the network\'s outputs), as in the thesis)'.format(
                                 limits.MAX_DETECT_COUNT))
    parser.add_argument('--seed-upper', type=_non_negative_float, default=None,
                        help='second: only pixels whose saliency is at most this fraction of the '
                             'largest can be seeds (thesis 2.2.3; default: no bound)')
    parser.add_argument('--upper', type=_non_negative_float, default=0.5,
                        help='upper: keep saliency <= this fraction of the largest '
                             '(default: %(default)s)')
    parser.add_argument('--lower', type=_non_negative_float, default=0.05,
                        help='upper: keep saliency >= this fraction of the largest '
                             '(default: %(default)s)')
    parser.add_argument('--kmeans-space', choices=KMEANS_SPACES, default='linear',
                        help='kmeans: cluster the saliency values, their tenth root or their '
                             'logarithm (default: %(default)s)')
    parser.add_argument('--min-size', type=positive_int, default=1,
                        help='upper/kmeans: smallest blob, in pixels, that counts as a group '
                             '(default: %(default)s)')
    parser.add_argument('--annotations', default=None,
                        help='annotations.json to score the boxes against (default: '
                             'annotations.json in --images when it exists)')
    parser.add_argument('--iou', type=float, default=0.5,
                        help='IoU a box needs to match an annotated one (default: %(default)s)')
    add_seed_argument(parser)
    return parser


def _load_annotations(args, parser):
    path = args.annotations
    if path is None:
        path = os.path.join(args.images, 'annotations.json')
        if not os.path.isfile(path):
            return None
    try:
        annotations = load_json(path, what='annotations file')
    except ValueError as e:
        parser.error('--annotations: {}'.format(e))
    if not isinstance(annotations, dict):
        parser.error('--annotations: {} does not map image names to shapes'.format(path))
    return annotations


def _truth_boxes(annotations, name, path):
    shapes = annotations.get(name)
    if shapes is None:
        raise ValueError('annotations {} have no entry for image {}'.format(path, name))
    try:
        return [[int(v) for v in shape['box']] for shape in shapes]
    except (KeyError, TypeError, ValueError):
        raise ValueError('annotations {}: the entry of {} is not a list of shapes with a '
                         '"box"'.format(path, name)) from None


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count is not None and not 0 <= args.count <= limits.MAX_DETECT_COUNT:
        parser.error('--count must be in 0..{}, got {}'.format(limits.MAX_DETECT_COUNT,
                                                               args.count))
    if not 0 < args.iou <= 1:
        parser.error('--iou must be in (0, 1], got {}'.format(args.iou))
    if args.method == 'upper' and args.lower > args.upper:
        parser.error('--lower {} is above --upper {}'.format(args.lower, args.upper))
    if args.pictures is not None and args.pictures < 0:
        parser.error('--pictures must be >= 0, got {}'.format(args.pictures))
    if args.auto_level is not None and args.auto_level > 1:
        parser.error('--auto-level must be in [0, 1], got {}'.format(args.auto_level))
    device = device_from_args(args, parser)
    names = saliency_lib.select_images(args, parser)
    annotations = _load_annotations(args, parser)
    model, settings = saliency_lib.load_run(args, parser, device)
    if args.method == 'second' and settings.get('activation') == 'relu':
        print('error: {}'.format(SecondDerivativeError(
            'the counter in {} uses ReLU, whose second derivative is zero'.format(args.run))),
            file=sys.stderr)
        return 2
    print('detect: run {} ({} {}), method {}, threshold {}, batch {}, {} image(s) from {} -> {}, '
          'device {}'.format(args.run, settings.get('arch'), settings.get('activation'),
                             args.method, args.threshold, args.batch, len(names), args.images,
                             args.out, device), file=sys.stderr)
    try:
        run_detection(args, model, settings, names, annotations)
    except ValueError as e:  # SecondDerivativeError included
        print('error: {}'.format(e), file=sys.stderr)
        return 2
    return 0


def run_detection(args, model, settings, names, annotations):
    """Detect in every image, write the pictures and ``detections.json`` (see :func:`main`)."""
    os.makedirs(args.out, exist_ok=True)
    annotations_path = args.annotations or os.path.join(args.images, 'annotations.json')
    options = {k: getattr(args, k) for k in (
        'run', 'images', 'method', 'threshold', 'batch', 'count', 'seed_upper', 'upper', 'lower',
        'kmeans_space', 'min_size', 'iou', 'seed', 'plain', 'auto_rule', 'auto_level')}
    if args.threshold == 'auto' and options['auto_level'] is None:
        options['auto_level'] = AUTO_LEVELS[args.auto_rule]
    options['annotations'] = annotations_path if annotations is not None else None
    results, scores = {}, []
    with Progress(len(names), desc='detect', unit='image',
                  enabled=getattr(args, 'progress', True)) as bar:
        for index, name in enumerate(names):
            image = saliency_lib.read_checked_image(args.images, name, settings)
            truth = (_truth_boxes(annotations, name, annotations_path)
                     if annotations is not None else [])
            start = time.perf_counter()
            found = detect(model, image, threshold=args.threshold, batch=args.batch,
                           method=args.method, count=args.count, seed_upper=args.seed_upper,
                           upper=args.upper, lower=args.lower, kmeans_space=args.kmeans_space,
                           seed=args.seed, min_size=args.min_size,
                           support=None if args.plain else 'auto', sparse=not args.plain,
                           auto_rule=args.auto_rule, auto_level=args.auto_level)
            seconds = time.perf_counter() - start
            if args.pictures is None or index < args.pictures:
                write_pictures(args.out, name, image, found, truth)
            entry = {'outputs': [float(v) for v in found.outputs], 'count': found.count,
                     'groups': [g.to_json() for g in found], 'seconds': round(seconds, 4)}
            if annotations is not None:
                entry['truth_boxes'] = truth
                entry['score'] = score_boxes(found.boxes, truth, args.iou)
                scores.append(entry['score'])
            results[name] = entry
            bar.update()
    summary = combine_scores(scores) if annotations is not None else None
    atomic_write_json(os.path.join(args.out, 'detections.json'),
                      {'settings': options, 'images': results, 'scores': summary})
    if summary is not None:
        print('detect: {} matched of {} predicted and {} annotated boxes: precision {}, recall {}, '
              'mean IoU {}'.format(summary['matched'], summary['predicted'], summary['truth'],
                                   _fmt(summary['precision']), _fmt(summary['recall']),
                                   _fmt(summary['mean_iou'])), file=sys.stderr)
    return results, summary


def _fmt(value):
    return 'n/a' if value is None else '{:.3f}'.format(value)


if __name__ == '__main__':
    sys.exit(main())
