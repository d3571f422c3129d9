"""The generator of the Counting datasets of triangles and squares (thesis 2.2);
the command line is ``python -m Counting.generate``.

Writes ``0000.png, 0001.png, ...`` (black RGB canvas, shapes filled and outlined in one
colour), ``truths.json`` (file name -> {"tri": n, "sq": m}, only the chosen types),
``annotations.json`` (file name -> list of {"type", "polygon", "box"}: the polygon's vertices in
pixel coordinates and the inclusive pixel box [xmin, ymin, xmax, ymax] that holds every pixel drawn
for it) and ``settings.json`` (the options it ran with).

Placement follows the original rule: rotate the template about its centre, scale it about its
centre, translate it by an integer offset drawn uniformly in 0..W x 0..H, accept it when it lies in
the canvas and intersects (touching counts) no shape placed before, else draw a new offset only.
Made fast without changing the distribution of accepted placements:

* Offsets are drawn only where the shape's bounds fit in the canvas. The rejection loop draws
  offsets i.i.d. uniform over 0..W x 0..H and keeps the first that passes both tests; the first
  draw that passes "inside" is uniform over the inside set, so drawing uniformly from that set and
  then applying the intersection test alone gives accepted offsets with the same law. For a convex
  shape in a rectangle, "inside" is exactly "bounds inside", an integer range per axis
  (:func:`Counting.datasets.shapes.offset_range`);
  ``tests/counting_tests/test_datasets_generator.py`` checks the law against the plain loop.
* Offsets are drawn in batches and tested in order; taking the first accepted of a batch is the
  first accepted of the same i.i.d. sequence.
* Boxes of the candidates are compared with the boxes of the placed shapes in NumPy; Shapely's
  exact ``intersects`` runs only against shapes whose closed boxes meet (disjoint boxes cannot
  intersect, touching boxes are passed on to Shapely).

Beyond the thesis:

* ``--min-gap G`` (default 0, the thesis's rule). Polygons that do not intersect can still touch
  once drawn (about 12-15% of 1000 x 1000 images with up to 20 shapes of scale 60..120 hold two
  shapes drawn as one blob; ``python -m Counting.bench.generator``). With ``G > 0`` a placement is
  rejected when its distance to a placed polygon is below ``G + 2 * shapes.RASTER_REACH`` (Pillow
  sets pixels whose centres lie up to 1.11 px outside the polygon; ``RASTER_REACH`` is 1.5), so
  drawn pixels of two shapes are at least ``G`` apart and ``G >= 2`` keeps every shape its own
  8-connected blob.
* Placement attempts are bounded (``--max-attempts`` offsets per shape); a shape that cannot fit
  raises :class:`ShapeFitError` naming the options to change instead of looping for ever.
* ``annotations.json`` records every shape's polygon and pixel box for scoring detection.
* The PNG files are written by :func:`Counting.datasets.png.encode_png` (filter None, zlib
  level 1 by default): the same pixels as Pillow's writer, several times faster.

Each image's randomness comes from ``numpy.random.default_rng([seed, index])``, so the files are
byte-identical for any number of worker processes. Files of the same names in ``--out`` are
replaced; other files there are left alone (``truths.json`` lists only this run's images).
"""
import multiprocessing
import os

import numpy
import shapely

from Counting.datasets import limits
from Counting.datasets import shapes
from Counting.datasets.png import DEFAULT_PNG_LEVEL, encode_mask_png
from lenses_common import cli
from lenses_common.progress import Progress
from lenses_common.runfolder import atomic_path, atomic_write_json

#: Defaults. Scale 10..20 is the original generator's default; the thesis needed larger
#: shapes for 1000 x 1000 images, which callers choose with ``scale``.
DEFAULT_IMAGE_SIZE = (1000, 1000)
DEFAULT_SHAPE_LIMIT = 20
DEFAULT_SCALE = (10, 20)
DEFAULT_COLOR = (0, 0, 255)
DEFAULT_MAX_ATTEMPTS = 10000
#: Offsets drawn per batch: small first (most shapes fit at once), larger while rejections go on.
_BATCHES = (4, 32, 256)


class ShapeFitError(ValueError):
    """Shapes cannot be placed with the given options."""


def _fit_advice(index, kind, scale, detail):
    return ('image {}: cannot place a {} of scale {} {}; use fewer shapes (--shape-limit), '
            'smaller shapes (--scale), a larger canvas (--image-size) or a smaller --min-gap, or '
            'raise --max-attempts'.format(index, kind, scale, detail))


class _Settings:
    """Everything a worker needs to make image ``index``; module-level so it pickles."""

    def __init__(self, out_dir, count, image_size, types, shape_limit, scale, shape_scaling,
                 shape_rotations, limit_scale_resampling, color, min_gap, seed, max_attempts,
                 png_compress_level):
        self.out_dir = out_dir
        self.count = count
        self.image_size = image_size
        self.types = types
        self.combinations = numpy.array(shapes.count_combinations(types, shape_limit))
        self.scale = scale
        self.shape_scaling = shape_scaling
        self.shape_rotations = shape_rotations
        self.limit_scale_resampling = limit_scale_resampling
        self.color = color
        self.min_gap = min_gap
        # Polygons must be this far apart; 0 means "not intersecting" (touching rejected).
        self.clearance = min_gap + 2 * shapes.RASTER_REACH if min_gap > 0 else 0.0
        self.seed = seed
        self.max_attempts = max_attempts
        self.png_compress_level = png_compress_level


def name_width(count):
    """Digits of the zero-padded file names: 4, or more when ``count`` needs them."""
    return max(4, len(str(max(count - 1, 0))))


def image_name(index, count):
    return '{:0{}d}.png'.format(index, name_width(count))


def draw_counts(rng, combinations):
    """One combination drawn uniformly from the list (the per-image count draw)."""
    return combinations[rng.integers(len(combinations))]


def place_one(rng, template, image_size, boxes, geoms, clearance=0.0,
              max_attempts=DEFAULT_MAX_ATTEMPTS):
    """Offset ``(dx, dy)`` for ``template`` beside the placed shapes, or None after max_attempts.

    ``boxes`` is a float (m, 4) array of the placed shapes' ``xmin, ymin, xmax, ymax`` and
    ``geoms`` their Shapely polygons. The accepted offset is uniform over the integer offsets in
    0..W x 0..H that put the shape inside the canvas and, with ``clearance`` 0, intersect no placed
    shape (touching counts), or with ``clearance > 0`` keep it at least that far from all: the
    law of the original rejection loop (see the module docstring). Raises ValueError when the
    shape cannot lie inside the canvas at any offset.
    """
    width, height = image_size
    tlo = template.min(axis=0)
    thi = template.max(axis=0)
    x_first, x_last = shapes.offset_range(tlo[0], thi[0], width)
    y_first, y_last = shapes.offset_range(tlo[1], thi[1], height)
    if x_first > x_last or y_first > y_last:
        raise ValueError('inside a {}x{} canvas at all'.format(width, height))
    n_placed = len(geoms)
    attempts = 0
    batch_index = 0
    while attempts < max_attempts:
        size = min(_BATCHES[min(batch_index, len(_BATCHES) - 1)], max_attempts - attempts)
        batch_index += 1
        attempts += size
        ox = rng.integers(x_first, x_last + 1, size=size)
        oy = rng.integers(y_first, y_last + 1, size=size)
        if n_placed == 0:
            return int(ox[0]), int(oy[0])
        # Closed boxes (grown by the clearance) that meet the candidate's box; only these
        # shapes can intersect it (or come closer than the clearance).
        b = boxes[:n_placed]
        near = ((ox[:, None] + tlo[0] <= b[None, :, 2] + clearance)
                & (ox[:, None] + thi[0] >= b[None, :, 0] - clearance)
                & (oy[:, None] + tlo[1] <= b[None, :, 3] + clearance)
                & (oy[:, None] + thi[1] >= b[None, :, 1] - clearance))
        for j in range(size):
            hits = numpy.flatnonzero(near[j])
            if len(hits):
                candidate = shapely.polygons(template + (ox[j], oy[j]))
                others = [geoms[h] for h in hits]
                if clearance > 0:
                    if (shapely.distance(candidate, others) < clearance).any():
                        continue
                elif shapely.intersects(candidate, others).any():
                    continue
            return int(ox[j]), int(oy[j])
    return None


def place_shapes(rng, settings, index=0):
    """Draw one image's shapes: returns a list of ``(kind, vertices)`` in drawing order."""
    counts = draw_counts(rng, settings.combinations)
    bag = [kind for kind, n in zip(settings.types, counts) for _ in range(int(n))]
    bag = [bag[i] for i in rng.permutation(len(bag))]
    lo, hi = settings.scale
    image_scale = None
    if settings.shape_scaling and settings.limit_scale_resampling:
        image_scale = int(rng.integers(lo, hi + 1))
    placed = []
    boxes = numpy.empty((len(bag), 4))  # xmin, ymin, xmax, ymax of the placed shapes
    geoms = []
    for kind in bag:
        if not settings.shape_scaling:
            scale = lo
        elif image_scale is not None:
            scale = image_scale
        else:
            scale = int(rng.integers(lo, hi + 1))
        angle = int(rng.integers(0, 360)) if settings.shape_rotations else 0
        template = shapes.transform_template(kind, scale, angle)
        try:
            offset = place_one(rng, template, settings.image_size, boxes[:len(geoms)], geoms,
                               settings.clearance, settings.max_attempts)
        except ValueError as e:
            raise ShapeFitError(_fit_advice(index, kind, scale, str(e))) from None
        if offset is None:
            raise ShapeFitError(_fit_advice(
                index, kind, scale, 'beside {} other shapes in {} attempts'.format(
                    len(geoms), settings.max_attempts)))
        vertices = template + offset
        boxes[len(geoms)] = (*vertices.min(axis=0), *vertices.max(axis=0))
        geoms.append(shapely.polygons(vertices))
        placed.append((kind, vertices))
    return placed


def make_mask(index, settings):
    """Place and draw image ``index``: ``(mask, truth, annotation)``, mask uint8 (H, W) 0/1."""
    rng = numpy.random.default_rng([settings.seed, index])
    placed = place_shapes(rng, settings, index)
    mask = shapes.draw_mask(settings.image_size, [v for _, v in placed])
    truth = {kind: 0 for kind in settings.types}
    annotation = []
    for kind, vertices in placed:
        truth[kind] += 1
        annotation.append({
            'type': kind,
            'polygon': [[round(float(x), 6), round(float(y), 6)] for x, y in vertices],
            'box': shapes.pixel_box(vertices, settings.image_size),
        })
    return mask, truth, annotation


def make_image(index, settings):
    """Image ``index`` as an (H, W, 3) uint8 RGB array, with its truth and annotation."""
    mask, truth, annotation = make_mask(index, settings)
    return shapes.color_mask(mask, settings.color), truth, annotation


def _write_image(index, settings):
    mask, truth, annotation = make_mask(index, settings)
    name = image_name(index, settings.count)
    data = encode_mask_png(mask, settings.color, settings.png_compress_level)
    with atomic_path(os.path.join(settings.out_dir, name)) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)
    return name, truth, annotation


_WORKER_SETTINGS = None


def _init_worker(settings):
    global _WORKER_SETTINGS
    cli.ignore_sigint()  # the parent reports Ctrl-C in one line
    _WORKER_SETTINGS = settings


def _worker_task(index):
    try:
        return _write_image(index, _WORKER_SETTINGS)
    except ShapeFitError as e:
        return e


def _parse_pair(value, name):
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError('{} needs two integers, got {!r}'.format(name, value)) from None
    return a, b


def generate_dataset(out_dir, count, *, image_size=DEFAULT_IMAGE_SIZE, types=shapes.TYPES,
                     shape_limit=DEFAULT_SHAPE_LIMIT, scale=DEFAULT_SCALE, shape_scaling=True,
                     shape_rotations=True, limit_scale_resampling=False, color=DEFAULT_COLOR,
                     min_gap=0, seed=0, workers=2, max_attempts=DEFAULT_MAX_ATTEMPTS,
                     progress=True, png_compress_level=DEFAULT_PNG_LEVEL):
    """Write ``count`` images with ``truths.json``, ``annotations.json`` and ``settings.json``.

    Args:
        out_dir: folder to write into (created; files of the same names are replaced).
        count: number of images.
        image_size: ``(width, height)`` in pixels (default 1000 x 1000, the thesis's canvas).
        types: ``'tri'``, ``'sq'`` or both (default both).
        shape_limit: the largest total number of shapes in one image (default 20); each image's
            counts are drawn uniformly from every combination with that total or fewer.
        scale: inclusive integer bounds ``(lo, hi)`` of the shape size in pixels (default 10..20,
            the original generator's default; the thesis used larger shapes).
        shape_scaling: False uses ``lo`` for every shape (``--no-shape-scaling``).
        shape_rotations: False keeps every shape axis-aligned (``--no-shape-rotations``);
            otherwise each shape turns by an integer number of degrees in 0..359.
        limit_scale_resampling: one scale per image instead of one per shape (the thesis's final
            choice, after Guan & Loew).
        color: RGB fill and outline colour (default (0, 0, 255)).
        min_gap: 0 (the thesis's rule): shapes only must not intersect as polygons, so two can
            be drawn as one blob. ``g > 0``: polygons stay ``g + 2 * RASTER_REACH`` apart, so drawn
            pixels of different shapes are at least ``g`` apart; ``g >= 2`` keeps every shape its
            own 8-connected blob.
        seed: image ``i`` uses ``numpy.random.default_rng([seed, i])``.
        workers: worker processes (1: in this process).
        max_attempts: offsets tried for one shape before :class:`ShapeFitError`.
        progress: show a progress bar on stderr.
        png_compress_level: zlib level 0..9 of the PNG files (default 1, fast; 6, zlib's
            default, gives files about 2.5 times smaller at twice the encoding time; the pixels
            are the same).

    Returns the truths dictionary. Raises :class:`ShapeFitError` (a ValueError) when a shape cannot
    be placed, ValueError for bad options.
    """
    count = int(count)
    if count < 1:
        raise ValueError('count must be at least 1, got {}'.format(count))
    width, height = _parse_pair(image_size, 'image size')
    if width < 1 or height < 1:
        raise ValueError('image size must be positive, got {}x{}'.format(width, height))
    types = shapes.check_types(types)
    shape_limit = int(shape_limit)
    if shape_limit < 0:
        raise ValueError('shape limit must be >= 0, got {}'.format(shape_limit))
    lo, hi = _parse_pair(scale, 'scale')
    if not 1 <= lo <= hi:
        raise ValueError('scale bounds must satisfy 1 <= lo <= hi, got {} {}'.format(lo, hi))
    color = tuple(int(c) for c in color)
    if len(color) != 3 or not all(0 <= c <= 255 for c in color) or color == (0, 0, 0):
        raise ValueError('color must be three integers in 0..255, not black, got {}'.format(
            color))
    if min_gap < 0:
        raise ValueError('min gap must be >= 0, got {}'.format(min_gap))
    seed = int(seed)
    if not 0 <= seed < 2 ** 63:
        raise ValueError('seed must be a non-negative integer, got {}'.format(seed))
    workers = int(workers)
    if workers < 1:
        raise ValueError('workers must be at least 1, got {}'.format(workers))
    max_attempts = int(max_attempts)
    if max_attempts < 1:
        raise ValueError('max attempts must be at least 1, got {}'.format(max_attempts))
    if not 0 <= int(png_compress_level) <= 9:
        raise ValueError('PNG compress level must be in 0..9, got {}'.format(png_compress_level))

    limits.check_bounds(count, width, height, shape_limit, hi, workers)

    out_dir = os.fspath(out_dir)
    settings = _Settings(out_dir, count, (width, height), types, shape_limit, (lo, hi),
                         bool(shape_scaling), bool(shape_rotations), bool(limit_scale_resampling),
                         color, float(min_gap), seed, max_attempts, int(png_compress_level))
    # Disk and memory estimate from a few images encoded in memory, before anything is written.
    samples = [len(encode_mask_png(make_mask(i, settings)[0], color, settings.png_compress_level))
               for i in range(min(count, limits.SAMPLES))]
    limits.check_generation(out_dir, count, width, height, shape_limit, min(workers, count),
                            samples)
    os.makedirs(out_dir, exist_ok=True)
    record = {
        'count': count, 'image_size': [width, height], 'types': list(types),
        'shape_limit': shape_limit, 'scale': [lo, hi], 'shape_scaling': bool(shape_scaling),
        'shape_rotations': bool(shape_rotations),
        'limit_scale_resampling': bool(limit_scale_resampling), 'color': list(color),
        'min_gap': float(min_gap), 'polygon_clearance': settings.clearance, 'seed': seed,
        'max_attempts': max_attempts, 'png_compress_level': int(png_compress_level),
        'rng': 'numpy.random.default_rng([seed, index])',
    }

    truths = {}
    annotations = {}
    bar = Progress(count, desc='generating', unit='img') if progress else None

    def collect(result):
        if isinstance(result, ShapeFitError):
            raise result
        name, truth, annotation = result
        truths[name] = truth
        annotations[name] = annotation
        if bar is not None:
            bar.update()

    try:
        workers = min(workers, count)
        if workers == 1:
            for index in range(count):
                collect(_write_image(index, settings))
        else:
            chunk = max(1, min(16, count // (workers * 4)))
            context = multiprocessing.get_context('fork' if os.name == 'posix' else 'spawn')
            with context.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
                for result in pool.imap_unordered(_worker_task, range(count), chunksize=chunk):
                    collect(result)
    finally:
        if bar is not None:
            bar.close()
    truths = {name: truths[name] for name in sorted(truths)}
    annotations = {name: annotations[name] for name in sorted(annotations)}
    atomic_write_json(os.path.join(out_dir, 'settings.json'), record)
    atomic_write_json(os.path.join(out_dir, 'annotations.json'), annotations)
    atomic_write_json(os.path.join(out_dir, 'truths.json'), truths)
    return truths
