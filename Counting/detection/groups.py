"""What every detection method returns: :class:`Group`, :class:`Detections`, and the thresholds
and errors of the second-derivative loop (thesis 2.2.2) shared by its two implementations."""
from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import numpy

from Counting import functions

DEFAULT_THRESHOLD = 5e-10
METHODS = ('second', 'upper', 'kmeans')
#: Rules of ``threshold='auto'`` and their default levels (chosen by measurement, see
#: docs/counting-detection.md).
AUTO_RULES = ('logsplit', 'fraction', 'quantile')
AUTO_LEVELS = {'logsplit': 0.5, 'fraction': 0.003, 'quantile': 0.5}
DEFAULT_AUTO_RULE = 'logsplit'
SMOOTH_ACTIVATIONS = tuple(name for name, a in functions.ACTIVATIONS.items() if a.smooth)


class SecondDerivativeError(ValueError):
    """The second derivative the thesis's loop needs is identically zero (e.g. ReLU)."""

    def __init__(self, reason='the second derivative of this network is identically zero'):
        super().__init__(
            '{}: the second-derivative detection (--method second) needs a smooth activation '
            '({}); train the counter with one of those, or use a first-derivative variant '
            '(--method upper or --method kmeans)'.format(reason, ', '.join(SMOOTH_ACTIVATIONS)))


def mask_box(mask):
    """Inclusive ``[xmin, ymin, xmax, ymax]`` of the True pixels of ``mask``, or None."""
    rows = numpy.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = numpy.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])]


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
        type: the shape type whose output was differentiated (a typed detection,
            :func:`Counting.detection.detect_typed`), or None (the sum of the outputs).
    """

    __slots__ = ('seed', 'channel', 'mask', 'importance', 'box', 'type')

    def __init__(self, seed, channel, mask, importance, type=None):
        self.seed = (int(seed[0]), int(seed[1]))
        self.channel = None if channel is None else int(channel)
        self.mask = mask
        self.importance = importance
        self.box = mask_box(mask)
        self.type = type

    def to_json(self):
        out = {'seed': [self.seed[1], self.seed[0]], 'channel': self.channel, 'box': self.box,
               'pixels': int(self.mask.sum())}
        if self.type is not None:
            out['type'] = self.type
        return out

    def __repr__(self):
        return 'Group(seed={}, pixels={}, box={})'.format(self.seed, int(self.mask.sum()),
                                                          self.box)


class Detections(list):

    """The groups found in one image (a list of :class:`Group`), with what they came from.

    Attributes: ``outputs`` (the counter's outputs, numpy), ``count`` (the number of groups asked
    for), ``saliency`` (float32 ``(H, W)``: of the differentiated output; for a typed detection,
    of the sum, for the pictures), ``method``, ``rows`` (second-derivative rows computed),
    ``passes`` (backward passes that computed them) and ``counts`` (a typed detection: the number
    of groups asked for per type, else None).
    """

    def __init__(self, groups=(), **info):
        super().__init__(groups)
        self.outputs = info.get('outputs')
        self.count = info.get('count')
        self.saliency = info.get('saliency')
        self.method = info.get('method')
        self.rows = info.get('rows', 0)
        self.passes = info.get('passes', 0)
        self.counts = info.get('counts')

    @property
    def boxes(self):
        return [g.box for g in self if g.box is not None]

    @property
    def box_types(self):
        """The types of the groups of :attr:`boxes`, in the same order (None when untyped)."""
        return [g.type for g in self if g.box is not None]


def auto_threshold(importance, free, rule=DEFAULT_AUTO_RULE, level=None):
    """The threshold of one group chosen from its own importance map (thesis 2.2.3 asks for
    automatic thresholds instead of the absolute 5e-10).

    ``logsplit`` (default): the non-zero importance values of the still unassigned pixels
    (``free``, bool) are split in two by K-means on their logarithms (SciPy's ``kmeans2``, k = 2,
    started from the smallest and the largest); the cut lies ``level`` of the way from the low
    centre to the high one (0.5: the 2-means boundary). Importance spans many decades (the pixels
    of the seed's shape against the rest), which the logarithm makes two clusters. ``fraction``:
    ``level`` times the largest importance of the row; ``quantile``: the ``level`` quantile of
    the non-zero values of the unassigned pixels. Returns inf when the row is zero there (no
    group).
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
    if rule == 'logsplit':
        from scipy.cluster import vq
        logs = numpy.log10(values.astype(numpy.float64))
        if numpy.ptp(logs) == 0:
            return float(values[0])
        centres, _ = vq.kmeans2(logs[:, None], numpy.array([[logs.min()], [logs.max()]]),
                                iter=50, minit='matrix')
        lo, hi = sorted(centres[:, 0])
        return float(10 ** (lo + level * (hi - lo)))
    return float(numpy.quantile(values, level))


def group_mask(importance, cut, assigned, p, connected=False):
    """The thesis's group of seed ``p``: the unassigned pixels with ``importance >= cut``.

    With ``connected`` (beyond the thesis) only the part of it that touches ``p`` is kept: the
    8-connected component holding ``p`` (SciPy's ``ndimage.label``), ``p`` counted in; pixels of
    other shapes that pass the cut, apart from ``p``'s by the background, are left free.
    """
    mask = (importance >= cut) & ~assigned
    if not connected:
        return mask
    from scipy import ndimage
    grown = mask.copy()
    grown[p] = True
    labels, _ = ndimage.label(grown, structure=numpy.ones((3, 3), dtype=bool))
    return mask & (labels == labels[p])


def to_cpu(a):
    """``a`` (NumPy or CuPy) as a NumPy array."""
    return numpy.asarray(chainer.backend.CpuDevice().send(a))
