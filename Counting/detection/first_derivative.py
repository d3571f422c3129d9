"""The first-derivative variants of thesis 2.2.3 (``method='upper'`` and ``'kmeans'``).

Both use only the saliency (the first derivative), so ReLU counters work: keep some pixels, then
the ``n`` largest 8-connected blobs (SciPy's labelling, CuPy's on a GPU for ``upper``):

* ``upper``: the pixels with ``lower * max <= saliency <= upper * max`` (the upper bound drops
  the over-salient pixels between shapes);
* ``kmeans``: K-means with 3 clusters over the saliency values (optionally after a tenth root or
  a logarithm; SciPy's ``kmeans2``, run to convergence), the middle cluster.
"""
import warnings

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import numpy
from scipy.cluster.vq import kmeans2

from Counting.datasets.shapes import label_blobs
from Counting.detection.groups import Group, to_cpu

KMEANS_SPACES = ('linear', 'root', 'log')

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


def blob_groups(sal, keep, count, min_size):
    """The ``count`` largest 8-connected blobs of ``keep`` (NumPy, or CuPy: labelled on the
    device) with at least ``min_size`` pixels, as groups; ties by label (first pixel)."""
    labels, n = label_blobs(keep)
    xp = chainer.backend.get_array_module(labels)
    sizes = to_cpu(xp.bincount(labels.ravel(), minlength=n + 1))[1:]
    labels = to_cpu(labels)
    order = sorted((lab for lab in range(1, n + 1) if sizes[lab - 1] >= min_size),
                   key=lambda lab: (-sizes[lab - 1], lab))
    groups = []
    for lab in order[:count]:
        mask = labels == lab
        inside = numpy.where(mask, sal, -numpy.inf)
        seed = numpy.unravel_index(int(inside.argmax()), sal.shape)
        groups.append(Group(seed, None, mask, numpy.where(mask, sal, 0).astype(numpy.float32)))
    return groups
