"""``annotations.json`` checked before it is used to score anything.

The generator writes, per image, a list of ``{"type", "polygon", "box"}``: the polygon's vertices
in pixel coordinates and the inclusive pixel box ``[xmin, ymin, xmax, ymax]``. An edited or foreign
file could score detections against shapes that are not in the image, bend the outline measure
with a NaN vertex, or fail in the middle of the work. :func:`check_annotations` refuses, with one
line naming the file and the image:

* an entry that is not a list of shapes with a known ``type``, a ``polygon`` and a ``box``;
* a polygon of fewer than three points, or a vertex that is not two finite numbers;
* a box that is not four integers ``xmin <= xmax``, ``ymin <= ymax`` inside the image;
* an image whose shapes per type differ from its counts in ``truths.json`` (same folder).
"""
import math
import os

from PIL import Image

from Counting.datasets.loader import DatasetError, TRUTHS
from Counting.datasets.shapes import TYPES
from lenses_common.runfolder import load_json


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v):
    return isinstance(v, int) and not isinstance(v, bool)


def image_size(folder, name):
    """``(width, height)`` of ``folder/name`` from its header, or None when it cannot be read."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # the loaders report a damaged image with their own line
        return None


def check_entry(path, name, shapes, size=None, counts=None):
    """Raise :class:`DatasetError` when the annotations ``shapes`` of image ``name`` are not
    usable (see the module docstring); ``size`` is ``(width, height)``, ``counts`` its truths."""
    def bad(message):
        raise DatasetError('{}: image {}: {}'.format(path, name, message))

    if not isinstance(shapes, list):
        bad('the entry must be a list of shapes, not {}'.format(type(shapes).__name__))
    found = {}
    for k, shape in enumerate(shapes):
        if not isinstance(shape, dict) or not {'type', 'polygon', 'box'} <= set(shape):
            bad('shape {} is not an object with "type", "polygon" and "box"'.format(k))
        kind, polygon, box = shape['type'], shape['polygon'], shape['box']
        if kind not in TYPES:
            bad('shape {} has type {!r}, not one of {}'.format(k, kind, ', '.join(TYPES)))
        found[kind] = found.get(kind, 0) + 1
        if not isinstance(polygon, list) or len(polygon) < 3:
            bad('shape {}: a polygon needs at least 3 points, got {}'.format(
                k, len(polygon) if isinstance(polygon, list) else repr(polygon)))
        for point in polygon:
            if not (isinstance(point, list) and len(point) == 2 and all(map(_number, point))):
                bad('shape {}: vertex {!r} is not two finite numbers'.format(k, point))
        if not (isinstance(box, list) and len(box) == 4 and all(map(_integer, box))):
            bad('shape {}: box {!r} is not four integers [xmin, ymin, xmax, ymax]'.format(k, box))
        x0, y0, x1, y1 = box
        if not (0 <= x0 <= x1 and 0 <= y0 <= y1):
            bad('shape {}: box {} is inverted or negative'.format(k, box))
        if size is not None and (x1 >= size[0] or y1 >= size[1]):
            bad('shape {}: box {} lies outside the {}x{} image'.format(k, box, size[0], size[1]))
    if counts is not None:
        for kind in sorted(set(found) | set(counts)):
            if found.get(kind, 0) != counts.get(kind, 0):
                bad('{} {} shape(s) annotated but {} counts {}'.format(
                    found.get(kind, 0), kind, TRUTHS, counts.get(kind, 0)))


def check_annotations(annotations, path, folder=None, names=None):
    """Check the ``annotations`` dict read from ``path`` for ``names`` (default: every entry)
    against the images and ``truths.json`` of ``folder`` (default: the folder of ``path``)."""
    if not isinstance(annotations, dict):
        raise DatasetError('{}: must map image file names to lists of shapes'.format(path))
    folder = os.path.dirname(os.path.abspath(path)) if folder is None else folder
    truths = None
    truths_path = os.path.join(folder, TRUTHS)
    if os.path.isfile(truths_path):
        try:
            truths = load_json(truths_path, what='truths file')
        except ValueError:
            truths = None   # the loaders report it with their own line
        if not isinstance(truths, dict):
            truths = None
    for name in (sorted(annotations) if names is None else names):
        if name not in annotations:
            raise DatasetError('{}: image {}: no entry'.format(path, name))
        counts = truths.get(name) if truths is not None else None
        if truths is not None and counts is None:
            raise DatasetError('{}: image {}: not listed in {}'.format(path, name, truths_path))
        check_entry(path, name, annotations[name], image_size(folder, name),
                    counts if isinstance(counts, dict) else None)
    return annotations


def load_annotations(path, folder=None, names=None):
    """Read and check ``path`` (:func:`check_annotations`); errors are one-line ValueErrors."""
    annotations = load_json(path, what='annotations file')
    return check_annotations(annotations, path, folder, names)
