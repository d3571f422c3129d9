"""Command line of the contact sheets (the drawing is :mod:`Counting.detection.sheet`): for a few
test images, one row each of image | saliency | detection groups, headed by the counted and the
true counts.

    python -m Counting.contact_sheet --run RUN --images FOLDER --out sheet.png [--limit 4]
        [--title TEXT] [--method second --threshold auto ...]   # any Counting.detect option

It detects in the selected images itself (into a temporary folder), then draws the sheet from
those detections, as ``Counting.run_all`` draws its sheets from the detections it has scored.
"""
import sys
import tempfile

from Counting import image_args, models
from Counting.detection import sheet
from Counting.detection.folder import detect_folder
from lenses_common import cli


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Counting.contact_sheet',
        description='A contact sheet PNG (--out is the file): per image a row of image | '
                    'saliency | detection groups with their boxes, headed by the counted and the '
                    'true counts; matched and unmatched groups and missed shapes drawn apart. '
                    'Takes the options of Counting.detect.')
    image_args.add_input_arguments(parser)
    image_args.add_detection_arguments(parser)
    for action in parser._actions:
        if action.dest == 'out':
            action.help = 'the contact sheet PNG file to write (replaced if it exists)'
        elif action.dest == 'limit':
            action.help = 'use at most this many images (default: 4)'
        elif action.dest == 'pictures':
            action.help = 'not used by the contact sheet (every selected image is a row)'
    parser.add_argument('--title', default=None,
                        help='the sheet\'s title, e.g. the preset and counter of the run '
                             '(default: the network and the method)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.limit is None:
        args.limit = 4
    options, device, names, annotations = image_args.detection_inputs(args, parser,
                                                                      out_is_file=True)
    try:
        model, settings = models.load_counter(args.run, device)
    except (ValueError, OSError) as e:
        parser.error('--run: {}'.format(e))
    image_args.checked_output(args, parser, settings)
    with tempfile.TemporaryDirectory(prefix='contact_sheet.') as det_dir:
        try:
            detect_folder(model, settings, args.run, args.images, names, det_dir, options,
                          annotations, image_args.annotations_path(args),
                          progress=args.progress)
        except ValueError as e:
            parser.exit(2, parser.prog + ': error: {}\n'.format(e))
        entries = sheet.entries_from_folder(det_dir, args.images)
    title = args.title or '{}, method {}'.format(sheet.network_name(settings),
                                                 sheet.method_name(options))
    sheet.write_contact_sheet(args.out, entries, title)
    print('wrote {}'.format(args.out), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
