"""Does a saliency map outline the shapes? A measure of the Counting pictures.

The thesis's saliency figures (2.3, 2.5) show bright edges and corners and darker interiors. This
module puts a number on that from the generator's annotations: the mean *raw* saliency on the
shapes' outlines (the pixels within ``width`` pixels of a shape's boundary, on either side)
against the mean inside the shapes (the pixels of a shape farther than ``width`` from its
boundary: the interior eroded) and against the background (the pixels farther than ``width``
outside every shape). Distances are Euclidean, from SciPy's distance transform of the drawn mask.
:func:`measure_run` gives the figures for the raw saliency and, as a second figure, for its
picture: the values of the tenth-root grayscale PNG that ``Counting.saliency`` writes (the
thesis's pictures), which is what a reader of the PNGs sees. The command line is
``python -m Counting.outline``; ``Counting.run_all`` calls :func:`measure_run`.
"""
import numpy
from scipy import ndimage

from Counting.datasets import shapes

RATIO_KEYS = ('outline_interior', 'outline_background')


def outline_regions(image_size, polygons, width=2):
    """Bool masks ``(outline, interior, background)`` of an image of ``image_size`` (W, H).

    ``outline``: pixels within ``width`` of the boundary of the drawn shapes, inside or outside;
    ``interior``: shape pixels farther than ``width`` from the background; ``background``:
    non-shape pixels farther than ``width`` from every shape. The three are disjoint and cover
    the image.
    """
    mask = shapes.draw_mask(image_size, polygons).astype(bool)
    inside = ndimage.distance_transform_edt(mask)       # distance to the nearest background pixel
    outside = ndimage.distance_transform_edt(~mask)     # distance to the nearest shape pixel
    interior = mask & (inside > width)
    background = ~mask & (outside > width)
    outline = ~(interior | background)
    return outline, interior, background


def _mean(values):
    return float(values.mean()) if values.size else None


def _ratio(a, b):
    return None if a is None or not b else a / b


def outline_measure(sal, polygons, width=2):
    """Mean saliency on the outlines, the interiors and the background of one image, and the
    ratios ``outline_interior`` and ``outline_background`` (None where a region is empty or has
    zero saliency)."""
    sal = numpy.asarray(sal, dtype=numpy.float64)
    height, w = sal.shape
    outline, interior, background = outline_regions((w, height), polygons, width)
    m = {'outline': _mean(sal[outline]), 'interior': _mean(sal[interior]),
         'background': _mean(sal[background])}
    m['outline_interior'] = _ratio(m['outline'], m['interior'])
    m['outline_background'] = _ratio(m['outline'], m['background'])
    return m


def summarize(measures):
    """Mean and median of each ratio over images (images where it is None are left out)."""
    out = {'images': len(measures)}
    for key in RATIO_KEYS:
        values = [m[key] for m in measures if m.get(key) is not None]
        out[key + '_mean'] = float(numpy.mean(values)) if values else None
        out[key + '_median'] = float(numpy.median(values)) if values else None
    return out


def polygons_of(annotations, name):
    """The polygons of image ``name`` in a generator's ``annotations.json`` dict."""
    entry = annotations.get(name)
    if entry is None:
        raise ValueError('the annotations have no entry for image {}'.format(name))
    return [numpy.asarray(s['polygon'], dtype=numpy.float64) for s in entry]


def measure_run(model, settings, folder, names, annotations, width=2):
    """Per-image outline measures of a counter on the images ``names`` of ``folder``: those of
    the raw saliency, with those of its picture (the PNG's 0..255 values) under ``picture``."""
    from Counting import gradients, images
    out = {}
    for name in names:
        image = images.read_checked_image(folder, name, settings)
        sal = gradients.saliency_map(model, image)
        polygons = polygons_of(annotations, name)
        out[name] = outline_measure(sal, polygons, width)
        out[name]['picture'] = outline_measure(gradients.saliency_picture(sal), polygons,
                                               width)
    return out


def summarize_pictures(measures):
    """:func:`summarize` of the picture measures of :func:`measure_run`."""
    return summarize([m['picture'] for m in measures])
