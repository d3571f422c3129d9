"""``detect_shapes()``: shape detection from a counter's saliency by any method (thesis 2.2.2,
2.2.3).

* ``second`` (default): the thesis's loop, :mod:`Counting.detection.second` as written with
  ``support=None, sparse=False, batch=1``, else the same groups by
  :mod:`Counting.detection.accelerator`;
* ``upper``, ``kmeans``: :mod:`Counting.detection.first_derivative`.
"""
from lenses_common import compat  # noqa: F401  (before chainer)
import numpy

from Counting import gradients
from Counting.detection import accelerator, first_derivative, second
from Counting.detection.groups import DEFAULT_AUTO_RULE, DEFAULT_THRESHOLD, METHODS, Detections
from Counting.detection.groups import auto_threshold
from Counting.detection.groups import to_cpu


def detect_shapes(model, image, threshold=DEFAULT_THRESHOLD, batch=1, method='second', count=None,
           seed_upper=None, upper=0.5, lower=0.05, kmeans_space='linear', seed=0, min_size=1,
           spread=None, reuse_graph=True, support='auto', sparse=True, callback=None,
           auto_rule=DEFAULT_AUTO_RULE, auto_level=None, connected=False, output=None):
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
            Same groups either way. ``support=None, sparse=False, batch=1`` runs the thesis's
            loop as written (:mod:`Counting.detection.second`).
        sparse: ``second``, CPU: compute the convolutions of each row's pass only where their
            input is non-zero (:mod:`Counting.functions.sparse_tangent_convolution`; same values
            up to rounding; the project's counters only).
        callback: called with each :class:`Group` as it is found.
        connected: ``second``, beyond the thesis: keep only the part of each group that touches
            its seed pixel (:func:`Counting.detection.groups.group_mask`).
        output: None (default, the thesis's) to differentiate the sum of the outputs, or the
            column of one output (one shape type): the saliency, its second derivative and the
            default ``count`` (``round(outputs[output])``) are then that output's.

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
    if isinstance(support, str) and support != 'auto':
        raise ValueError("support must be 'auto', None or a Support, got {!r}".format(support))
    faithful = method == 'second' and support is None and not sparse and batch == 1
    if faithful:
        engine = second.FirstOrder(model, image, keep_graph=reuse_graph, output=output)
        sal, outputs = engine.saliency, engine.outputs
    elif method == 'second':
        engine = accelerator.SecondDerivativeRows(model, image, copies=batch,
                                                  reuse_graph=reuse_graph, sparse=sparse,
                                                  output=output)
        if isinstance(support, str):
            support = accelerator.Support.of_model(model, engine.saliency.shape)
        engine.support = support
        sal, outputs = engine.saliency, engine.outputs
    else:
        x = gradients.as_batch(model, image)
        _, out_var, g = gradients.input_gradient(model, x, output=output)
        sal_device = gradients.channel_max_abs(g.array[0])
        sal = to_cpu(sal_device)
        outputs = to_cpu(out_var.array[0])
    if not numpy.all(numpy.isfinite(sal)):
        raise ValueError('the saliency map holds non-finite values (the network\'s derivative '
                         'overflowed; use a stable activation)')
    if count is None:
        counted = outputs if output is None else outputs[int(output)]
        count = int(round(float(numpy.sum(counted, dtype=numpy.float64))))
    count = max(int(count), 0)
    top = float(sal.max()) if sal.size else 0.0
    info = dict(outputs=outputs, count=count, saliency=sal.astype(numpy.float32, copy=False),
                method=method)
    seed_upper = None if seed_upper is None else seed_upper * top
    if faithful:
        groups = second.second_derivative_groups(engine, count, threshold, seed_upper, callback,
                                                 auto=(auto_rule, auto_level),
                                                 connected=connected)
        return Detections(groups, rows=engine.passes, passes=engine.passes, **info)
    if method == 'second':
        groups, rows = accelerator.second_derivative_groups(
            engine, count, threshold, seed_upper, spread, callback, auto=(auto_rule, auto_level),
            connected=connected)
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
            keep = first_derivative.kmeans_middle(sal, kmeans_space, seed)
    groups = first_derivative.blob_groups(sal, keep, count, min_size)
    if callback is not None:
        for group in groups:
            callback(group)
    return Detections(groups, **info)


def detect_typed(model, image, types, counts=None, **options):
    """Shapes told apart by type (thesis 2.2.2: "saliency for a single shape type"): the
    detection of :func:`detect_shapes` run once per output, differentiating that output alone and
    looking for ``round(that output)`` groups (or ``counts[k]``), each group labelled with its
    type (:attr:`Group.type`).

    Args:
        types: the counter's output names in order (``settings['types']``, e.g. ``['tri', 'sq']``).
        counts: optional number of groups per type (default: the rounded outputs).
        options: :func:`detect_shapes`'s keyword arguments (``count`` and ``output`` excepted).

    Returns:
        :class:`Detections`: the groups of every type in the order of ``types`` (the loops are
        independent, so a pixel can be in one group of each type), ``counts`` the groups asked
        for per type, ``count`` their sum, ``saliency`` that of the sum of the outputs (the
        pictures'), ``rows`` and ``passes`` summed over the types.
    """
    for key in ('count', 'output'):
        if key in options:
            raise ValueError('detect_typed() sets {} itself'.format(key))
    if counts is not None and len(counts) != len(types):
        raise ValueError('counts needs one number per type ({}), got {}'.format(
            len(types), len(counts)))
    groups, asked, rows, passes, outputs = [], [], 0, 0, None
    for k, name in enumerate(types):
        found = detect_shapes(model, image, output=k, count=None if counts is None else counts[k],
                       **options)
        for group in found:
            group.type = name
        groups += list(found)
        asked.append(found.count)
        rows += found.rows
        passes += found.passes
        outputs = found.outputs
    x = gradients.as_batch(model, image)
    _, _, g = gradients.input_gradient(model, x)
    sal = to_cpu(gradients.channel_max_abs(g.array[0])).astype(numpy.float32, copy=False)
    return Detections(groups, outputs=outputs, count=sum(asked), counts=asked, saliency=sal,
                      method=options.get('method', 'second'), rows=rows, passes=passes)
