"""Does a saliency map outline the shapes? A measure of the Counting pictures.

The thesis's saliency figures (2.3, 2.5) show bright edges and corners and darker interiors. This
module puts a number on that from the generator's annotations: the mean *raw* saliency on the
shapes' outlines (the pixels within ``width`` pixels of a shape's boundary, on either side)
against the mean inside the shapes (the pixels of a shape farther than ``width`` from its
boundary: the interior eroded) and against the background (the pixels farther than ``width``
outside every shape). Distances are Euclidean, from SciPy's distance transform of the drawn mask.

    python -m Counting.outline --run RUN --images FOLDER [--limit N]

measures every image of the folder (or the first ``--limit N``) and prints the per-image figures
and their means and medians (``--json PATH`` writes them), for the
raw saliency and, as a second figure, for its picture: the values of the tenth-root grayscale PNG
that ``Counting.saliency`` writes (the thesis's pictures), which is what a reader of the PNGs sees.
"""
import math
import os
import sys

import numpy
from scipy import ndimage

from Counting.datasets import shapes
from lenses_common import cli

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
    from Counting import saliency as saliency_lib
    out = {}
    for name in names:
        image = saliency_lib.read_checked_image(folder, name, settings)
        sal = saliency_lib.saliency_map(model, image)
        polygons = polygons_of(annotations, name)
        out[name] = outline_measure(sal, polygons, width)
        out[name]['picture'] = outline_measure(saliency_lib.saliency_picture(sal), polygons,
                                               width)
    return out


def summarize_pictures(measures):
    """:func:`summarize` of the picture measures of :func:`measure_run`."""
    return summarize([m['picture'] for m in measures])


def _fmt(v):
    return '-' if v is None else '{:.2f}'.format(v)


def main(argv=None):
    from Counting import saliency as saliency_lib
    from lenses_common.device import add_device_argument, device_from_args, positive_int
    from Counting.datasets.annotations import load_annotations
    from lenses_common.runfolder import atomic_write_json, check_out_arg
    parser = cli.ArgumentParser(
        prog='python -m Counting.outline',
        description='Mean raw saliency on the shapes\' outlines against their interiors and the '
                    'background, from annotations.json.')
    parser.add_argument('--run', required=True, help='run folder of a trained counter')
    parser.add_argument('--images', required=True,
                        help='dataset folder with annotations.json (Counting.generate)')
    parser.add_argument('--names', nargs='+', default=None, metavar='NAME',
                        help='image file names inside --images (default: all, sorted)')
    parser.add_argument('--limit', type=positive_int, default=None,
                        help='measure at most this many images, the first in sorted order '
                             '(default: all images of --images)')
    add_device_argument(parser)
    parser.add_argument('--width', type=float, default=2.0,
                        help='outline half-width in pixels (default: %(default)s)')
    parser.add_argument('--json', default=None, help='write the figures to this JSON file')
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)  # every count-like option has an upper bound
    if not (math.isfinite(args.width) and args.width > 0):
        parser.error('--width must be a finite number of pixels > 0, got {}'.format(args.width))
    check_out_arg(parser, args.json, '--json', is_file=True)  # before the work, not after
    device = device_from_args(args, parser)
    names = saliency_lib.select_images(args, parser)
    try:
        annotations = load_annotations(os.path.join(args.images, 'annotations.json'),
                                       args.images, names)
    except ValueError as e:
        parser.error(str(e))
    model, settings = saliency_lib.load_run(args, parser, device)
    try:
        per_image = measure_run(model, settings, args.images, names, annotations, args.width)
    except ValueError as e:
        parser.exit(2, parser.prog + ': error: {}\n'.format(e))
    for name, m in per_image.items():
        print('{}: outline/interior {} outline/background {} (picture: {} {})'.format(
            name, _fmt(m['outline_interior']), _fmt(m['outline_background']),
            _fmt(m['picture']['outline_interior']), _fmt(m['picture']['outline_background'])))
    total = summarize(list(per_image.values()))
    pictures = summarize_pictures(list(per_image.values()))
    for what, t in (('raw', total), ('picture', pictures)):
        print('{}: mean outline/interior {} outline/background {}; median {} {}'.format(
            what, _fmt(t['outline_interior_mean']), _fmt(t['outline_background_mean']),
            _fmt(t['outline_interior_median']), _fmt(t['outline_background_median'])))
    if args.json:
        atomic_write_json(args.json, {'images': per_image, 'summary': total,
                                      'picture_summary': pictures})
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
