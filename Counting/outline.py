"""Command line of the outline measure (:mod:`Counting.outline_measure`): does a saliency map
outline the shapes?

    python -m Counting.outline --run RUN --images FOLDER [--limit N]

measures every image of the folder (or the first ``--limit N``) and prints the per-image figures
and their means and medians (``--json PATH`` writes them), for the raw saliency and for its
picture (the tenth-root grayscale PNG of ``Counting.saliency``).
"""
import os
import sys

from Counting import image_args, models
from Counting.datasets.annotations import load_annotations
from Counting.outline_measure import measure_run, summarize, summarize_pictures
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.cli import positive_int
from lenses_common.runfolder import atomic_write_json, check_out_arg
from lenses_common import cli


def _fmt(v):
    return '-' if v is None else '{:.2f}'.format(v)


def main(argv=None):
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
    parser.add_argument('--width', type=cli.finite_float(0, low_open=True), default=2.0,
                        help='outline half-width in pixels (default: %(default)s)')
    parser.add_argument('--json', default=None, help='write the figures to this JSON file')
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)  # every count-like option has an upper bound
    check_out_arg(parser, args.json, '--json', is_file=True)  # before the work, not after
    device = device_from_args(args, parser)
    names = image_args.select_images(args, parser)
    try:
        annotations = load_annotations(os.path.join(args.images, 'annotations.json'),
                                       args.images, names)
    except ValueError as e:
        parser.error(str(e))
    try:
        model, settings = models.load_counter(args.run, device)
    except (ValueError, OSError) as e:
        parser.error('--run: {}'.format(e))
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
