"""Geometry of the Counting shapes (thesis 2.2).

Templates, the rotate-then-scale transform, count combinations, Pillow drawing, the pixel box of a
drawn shape and the 8-connected blob labelling (SciPy's) that detection, the tests and the
benchmark share.

Coordinates are Pillow's: x to the right, y down, pixel (i, j) is column i, row j.
"""
import math

import numpy
from PIL import Image, ImageDraw
import scipy.ndimage

#: The shape types in the order the networks output them.
TYPES = ('tri', 'sq')

#: Unit templates of the original generator: a right triangle and a unit square.
TEMPLATES = {
    'tri': numpy.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    'sq': numpy.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]),
}

#: How far (in pixels, from the pixel centre (i + 0.5, j + 0.5)) a pixel that Pillow sets for a
#: filled and outlined polygon may lie from the true polygon. Measured with Pillow 13 on 3,000
#: random triangles and squares of scale 1..50 at random sub-pixel positions and angles: at most
#: 1.11. 1.5 leaves a margin. ``--min-gap`` keeps polygons ``min_gap + 2 * RASTER_REACH`` apart so
#: that the drawn pixels of two shapes are at least ``min_gap`` apart (centre to centre).
RASTER_REACH = 1.5


def check_types(types):
    """Return ``types`` as a tuple in the canonical order; raise ValueError for unknown names."""
    if isinstance(types, str):
        types = [t for t in types.replace(',', ' ').split() if t]
    types = tuple(types)
    unknown = [t for t in types if t not in TYPES]
    if unknown or not types or len(set(types)) != len(types):
        raise ValueError('shape types must be one or both of {} without repeats, got {}'.format(
            ', '.join(TYPES), ', '.join(types) or 'none'))
    return tuple(t for t in TYPES if t in types)


def count_combinations(types, shape_limit):
    """Every count combination with total at most ``shape_limit``, one tuple per combination.

    The tuple has one entry per type in ``types`` (canonical order). For one type this is
    ``(0,), (1,), ..., (limit,)``; for two it is every ``(tri, sq)`` with ``tri + sq <= limit``.
    """
    types = check_types(types)
    if shape_limit < 0:
        raise ValueError('shape limit must be >= 0, got {}'.format(shape_limit))
    if len(types) == 1:
        return [(n,) for n in range(shape_limit + 1)]
    return [(a, b) for a in range(shape_limit + 1) for b in range(shape_limit + 1 - a)]


def _bbox_centre(vertices):
    lo = vertices.min(axis=0)
    hi = vertices.max(axis=0)
    return (lo + hi) / 2.0


def transform_template(kind, scale, angle_degrees):
    """The template ``kind`` rotated about its box centre, then scaled about its box centre.

    The same arithmetic as ``shapely.affinity.rotate(t, angle)`` followed by
    ``shapely.affinity.scale(t, scale, scale)`` (both with ``origin='center'``, the bounding-box
    centre), which is how the original generator built each shape; done in NumPy because it runs
    once per shape and Shapely's affinity functions cost tens of microseconds each. Returns a
    float64 ``(k, 2)`` array, not yet translated.
    """
    v = TEMPLATES[kind]
    r = math.radians(angle_degrees)
    c, s = math.cos(r), math.sin(r)
    # Shapely zeroes these to keep multiples of 90 degrees exact.
    if abs(c) < 2.5e-16:
        c = 0.0
    if abs(s) < 2.5e-16:
        s = 0.0
    x0, y0 = _bbox_centre(v)
    x = v[:, 0] * c - v[:, 1] * s + (x0 - x0 * c + y0 * s)
    y = v[:, 0] * s + v[:, 1] * c + (y0 - x0 * s - y0 * c)
    rotated = numpy.stack([x, y], axis=1)
    x0, y0 = _bbox_centre(rotated)
    x = rotated[:, 0] * scale + (x0 - x0 * scale)
    y = rotated[:, 1] * scale + (y0 - y0 * scale)
    return numpy.stack([x, y], axis=1)


def offset_range(lo, hi, extent):
    """Integer offsets ``o`` in ``0..extent`` with ``lo + o >= 0`` and ``hi + o <= extent``.

    ``lo``/``hi`` are the shape's bounds along one axis before translation. Returns ``(first,
    last)``; ``first > last`` when no offset fits. The ends are checked with the same floating
    point sums the containment test would do, so the range is exactly the accepted set.
    """
    first = max(0, math.ceil(-lo))
    while first > 0 and lo + (first - 1) >= 0:
        first -= 1
    while lo + first < 0:
        first += 1
    last = min(extent, math.floor(extent - hi))
    while last < extent and hi + (last + 1) <= extent:
        last += 1
    while last >= first and hi + last > extent:
        last -= 1
    return first, last


def pixel_box(vertices, image_size):
    """Inclusive pixel box ``[xmin, ymin, xmax, ymax]`` that holds every pixel Pillow draws.

    Pillow sets pixels from column ``floor(min x)`` to ``floor(max x)`` (rows likewise), sometimes
    fewer at thin corners, never more (checked by the tests); clipped to the canvas.
    """
    width, height = image_size
    lo = numpy.floor(vertices.min(axis=0))
    hi = numpy.floor(vertices.max(axis=0))
    return [int(max(lo[0], 0)), int(max(lo[1], 0)),
            int(min(hi[0], width - 1)), int(min(hi[1], height - 1))]


def draw_shapes(image_size, polygons, color):
    """A black RGB Pillow image with each polygon filled and outlined in ``color``."""
    image = Image.new('RGB', tuple(image_size), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    color = tuple(int(c) for c in color)
    for vertices in polygons:
        draw.polygon([(float(x), float(y)) for x, y in vertices], fill=color, outline=color)
    return image


def draw_mask(image_size, polygons):
    """uint8 (H, W) array, 1 where Pillow draws the polygons filled and outlined, else 0.

    The same rasteriser as :func:`draw_shapes` on a one-byte canvas (a quarter of the work);
    :func:`color_mask` turns it into the RGB image pixel for pixel.
    """
    image = Image.new('L', tuple(image_size), 0)
    draw = ImageDraw.Draw(image)
    for vertices in polygons:
        draw.polygon([(float(x), float(y)) for x, y in vertices], fill=1, outline=1)
    return numpy.asarray(image)


def color_mask(mask, color):
    """uint8 (H, W, 3) RGB array: ``color`` where ``mask`` is 1, black elsewhere."""
    mask = numpy.asarray(mask, dtype=numpy.uint8)
    pixels = numpy.empty(mask.shape + (3,), dtype=numpy.uint8)
    for channel, value in enumerate(color):
        numpy.multiply(mask, numpy.uint8(value), out=pixels[..., channel])
    return pixels


#: 8-connectivity for :func:`scipy.ndimage.label`: diagonal neighbours touch.
EIGHT_CONNECTED = numpy.ones((3, 3), dtype=bool)


def label_blobs(mask):
    """Label the 8-connected components of a 2-D boolean mask.

    Returns ``(labels, n)``: an int32 array, 0 for background and 1..n for the components (in
    order of their first pixel, row-major). :func:`scipy.ndimage.label` does the work; a CuPy
    mask is labelled where it lives, by :func:`cupyx.scipy.ndimage.label`, and gives a CuPy array.
    """
    on_gpu = type(mask).__module__.split('.')[0] == 'cupy'
    mask = mask.astype(bool, copy=False) if on_gpu else numpy.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError('label_blobs needs a 2-D mask, got shape {}'.format(mask.shape))
    if on_gpu:
        import cupyx.scipy.ndimage
        # int32 labels numbered like SciPy's: each component's union-find root is its smallest
        # flat index, and the roots are ranked.
        labels, n = cupyx.scipy.ndimage.label(mask, structure=EIGHT_CONNECTED)
        return labels, int(n)
    labels, n = scipy.ndimage.label(mask, structure=EIGHT_CONNECTED)
    return labels.astype(numpy.int32, copy=False), int(n)


def blob_boxes(mask):
    """Inclusive pixel boxes ``(xmin, ymin, xmax, ymax)`` of the 8-connected blobs of ``mask``,
    in the order of :func:`label_blobs` (boxes from :func:`scipy.ndimage.find_objects`)."""
    labels, _ = label_blobs(mask)
    return [(xs.start, ys.start, xs.stop - 1, ys.stop - 1)
            for ys, xs in scipy.ndimage.find_objects(labels)]


def shape_mask(image, color):
    """Boolean (H, W) mask of the pixels of ``image`` (HWC uint8 or a Pillow image) in ``color``."""
    array = numpy.asarray(image)
    return numpy.all(array[..., :3] == numpy.asarray(color, dtype=array.dtype), axis=-1)
