"""The options shared by the commands that read a run and a folder of test images
(``Counting.saliency``, ``Counting.detect``, ``Counting.contact_sheet``, ``Counting.outline``),
checked before any work: ``--run``, ``--images``, ``--names``, ``--limit``, ``--out``,
``--output``."""
import argparse
import os

from Counting import gradients, images
from Counting.datasets import limits
from Counting.datasets.annotations import check_annotations
from Counting.detection import folder as detection_folder
from Counting.detection.first_derivative import KMEANS_SPACES
from Counting.detection.groups import AUTO_LEVELS, AUTO_RULES, DEFAULT_AUTO_RULE
from Counting.detection.groups import DEFAULT_THRESHOLD, METHODS
from lenses_common import cli
from lenses_common.device import add_device_argument, device_from_args
from lenses_common.cli import positive_int
from lenses_common.progress import add_progress_argument
from lenses_common.runfolder import check_out_arg, load_json
from lenses_common.seeding import add_seed_argument
from lenses_common import lock


def add_input_arguments(parser):
    """``--run``, ``--images``, ``--names``, ``--limit``, ``--out``, ``--device`` and
    ``--no-progress``."""
    parser.add_argument('--run', required=True,
                        help='run folder of a trained counter (settings.json and model_final.npz, '
                             'as written by Counting.train)')
    parser.add_argument('--images', required=True,
                        help='folder of images, e.g. a dataset written by Counting.generate')
    parser.add_argument('--names', nargs='+', default=None, metavar='NAME',
                        help='image file names inside --images (default: every image there, '
                             'sorted)')
    parser.add_argument('--limit', type=positive_int, default=None,
                        help='use at most this many images (default: all)')
    parser.add_argument('--out', required=True, help='folder to write the pictures into')
    add_device_argument(parser)
    add_progress_argument(parser)
    return parser


def check_names(parser, names, option='--names'):
    """``--names`` are file names inside ``--images``: no folder part (no image is read from
    elsewhere) and no name twice (each name's pictures are written under that name)."""
    for name in names:
        if not name or os.path.basename(name) != name or name in ('.', '..'):
            parser.error('{}: {!r} is not a file name inside --images (no folder part; the '
                         'images are read from --images only)'.format(option, name))
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        parser.error('{}: {} given twice (their output files would have the same '
                     'names)'.format(option, twice[0]))


def select_images(args, parser, out_is_file=False):
    """The image names to process, checked, and ``--out`` (where the command has one) checked
    writable: a folder, or with ``out_is_file`` a file (which may exist: it is replaced);
    errors go through ``parser.error``."""
    if getattr(args, 'out', None) is not None:
        if out_is_file:
            check_out_arg(parser, args.out, is_file=True)
        else:
            lock.claim_arg(parser, args.out)  # one writer per folder
    folder = args.images
    if not os.path.isdir(folder):
        parser.error('--images {}: folder does not exist'.format(folder))
    if args.names:
        names = list(args.names)
        check_names(parser, names)
        for name in names:
            if not os.path.isfile(os.path.join(folder, name)):
                parser.error('--names: image {} does not exist'.format(os.path.join(folder, name)))
    else:
        names = images.image_names(folder)
        if not names:
            parser.error('--images {}: no image files in this folder'.format(folder))
    if args.limit is not None:
        names = names[:args.limit]
    return names


def add_output_argument(parser):
    """``--output sum|tri|sq``: the output whose gradient is the saliency."""
    parser.add_argument('--output', default=gradients.SUM, metavar='sum|tri|sq',
                        help='the output to differentiate: "sum" (the sum of the outputs, the '
                             'thesis\'s saliency) or one shape type\'s output, e.g. "tri" or "sq" '
                             '(default: %(default)s)')
    return parser


def checked_output(args, parser, settings):
    """``--output`` as a column index of the run's outputs (None: their sum); parser.error for a
    type the run does not count."""
    try:
        return gradients.output_index(args.output, list(settings.get('types') or ()))
    except ValueError as e:
        parser.error('--output: {}'.format(e))


def threshold_value(text):
    """An argparse ``type``: ``auto`` or a finite number >= 0 (``--threshold``)."""
    if text == 'auto':
        return text
    try:
        return NON_NEGATIVE(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError('{} is neither "auto" nor a finite number >= 0'.format(
            text)) from None


#: An argparse ``type``: a finite number >= 0.
NON_NEGATIVE = cli.finite_float(0)


def add_detection_arguments(parser):
    """The options of the detection (``Counting.detect``, ``Counting.contact_sheet``), after
    :func:`add_input_arguments`: ``--output`` and the method's options
    (:data:`Counting.detection.folder.OPTIONS`)."""
    add_output_argument(parser)
    parser.add_argument('--typed', action='store_true',
                        help='shapes told apart by type: run the detection once per output '
                             '(differentiating that output, round(output) groups) and label '
                             'every group with its type; scores add per-type recall and type '
                             'accuracy (not with --output or --count)')
    parser.add_argument('--method', choices=METHODS, default='second',
                        help='second: the thesis loop with the second derivative (needs a smooth '
                             'activation); upper: saliency between --lower and --upper; kmeans: '
                             'middle of 3 K-means clusters of the saliency (default: %(default)s)')
    parser.add_argument('--threshold', type=threshold_value, default=DEFAULT_THRESHOLD,
                        help='second: importance (max over channels of |second derivative|) a '
                             'pixel needs to join a group (default: %(default)s, the original\'s), '
                             'or "auto": a threshold per group from its own importance values '
                             '(--auto-rule)')
    parser.add_argument('--auto-rule', choices=AUTO_RULES, default=DEFAULT_AUTO_RULE,
                        help='second with --threshold auto: "logsplit": split the logarithms of '
                             'the group\'s non-zero importance values in two by K-means and cut '
                             '--auto-level of the way from the low centre to the high one; '
                             '"fraction": --auto-level x the group\'s largest importance; '
                             '"quantile": the --auto-level quantile of its non-zero importance '
                             'values (default: %(default)s)')
    parser.add_argument('--auto-level', type=cli.finite_float(0, 1), default=None,
                        help='level of --auto-rule in [0, 1] (default: {})'.format(
                            ', '.join('{} for {}'.format(v, k) for k, v in AUTO_LEVELS.items())))
    parser.add_argument('--connected', action='store_true',
                        help='second, beyond the thesis: keep only the part of each group that '
                             'touches its seed pixel (8-connected), so that pixels of other shapes '
                             'that pass the threshold stay free for their own groups')
    parser.add_argument('--pictures', type=cli.bounded_int(0, cli.MAX_IMAGES), default=None,
                        metavar='N',
                        help='write the pictures of the first N images only (default: all); '
                             'every image is scored')
    parser.add_argument('--batch', type=positive_int, default=1,
                        help='second: second-derivative rows per backward pass, as copies of the '
                             'image in one batch; same groups for any value, memory grows with '
                             'it (default: %(default)s; see docs/benchmarks.md for timings)')
    parser.add_argument('--plain', action='store_true',
                        help='second: one plain backward pass per row, without packing rows '
                             'with disjoint receptive-field boxes into one pass and without '
                             'sparse convolutions (same groups; for checking and timing)')
    parser.add_argument('--count', type=cli.bounded_int(0, limits.MAX_DETECT_COUNT), default=None,
                        help='number of groups to look for, at most {} (default: round(sum of '
                             'the network\'s outputs), as in the thesis)'.format(
                                 limits.MAX_DETECT_COUNT))
    parser.add_argument('--seed-upper', type=NON_NEGATIVE, default=None,
                        help='second: only pixels whose saliency is at most this fraction of the '
                             'largest can be seeds (thesis 2.2.3; default: no bound)')
    parser.add_argument('--upper', type=NON_NEGATIVE, default=0.5,
                        help='upper: keep saliency <= this fraction of the largest '
                             '(default: %(default)s)')
    parser.add_argument('--lower', type=NON_NEGATIVE, default=0.05,
                        help='upper: keep saliency >= this fraction of the largest '
                             '(default: %(default)s)')
    parser.add_argument('--kmeans-space', choices=KMEANS_SPACES, default='linear',
                        help='kmeans: cluster the saliency values, their tenth root or their '
                             'logarithm (default: %(default)s)')
    parser.add_argument('--min-size', type=positive_int, default=1,
                        help='upper/kmeans: smallest blob, in pixels, that counts as a group '
                             '(default: %(default)s)')
    parser.add_argument('--annotations', default=None,
                        help='annotations.json to score the boxes against (default: '
                             'annotations.json in --images when it exists)')
    parser.add_argument('--iou', type=cli.finite_float(0, 1, low_open=True), default=0.5,
                        help='IoU a box needs to match an annotated one (default: %(default)s)')
    add_seed_argument(parser)
    return parser


def detection_options(args, parser):
    """The detection options of ``args`` (:data:`Counting.detection.folder.OPTIONS`), checked
    where two options meet; errors through ``parser.error``."""
    if args.method == 'upper' and args.lower > args.upper:
        parser.error('--lower {} is above --upper {}'.format(args.lower, args.upper))
    if args.typed and (args.output != gradients.SUM or args.count is not None):
        parser.error('--typed runs every output with its own count: drop --output and --count')
    return detection_folder.detection_options(
        **{k: getattr(args, k) for k in detection_folder.OPTIONS})


def annotations_arg(args, parser, names):
    """The annotations to score against (``--annotations``, else ``annotations.json`` in
    ``--images`` when it exists, else None), checked for ``names``; errors through
    ``parser.error``."""
    path = args.annotations
    if path is None:
        path = os.path.join(args.images, 'annotations.json')
        if not os.path.isfile(path):
            return None
    try:
        annotations = load_json(path, what='annotations file')
    except ValueError as e:
        parser.error('--annotations: {}'.format(e))
    if not isinstance(annotations, dict):
        parser.error('--annotations: {} does not map image names to shapes'.format(path))
    try:  # counts per image, finite vertices, polygons, boxes inside the images
        check_annotations(annotations, path, args.images, names)
    except ValueError as e:
        parser.error('--annotations: {}'.format(e))
    return annotations


def annotations_path(args):
    """The annotations file ``--annotations`` names, else ``annotations.json`` in ``--images``."""
    return args.annotations or os.path.join(args.images, 'annotations.json')


def detection_inputs(args, parser, out_is_file=False):
    """The checked inputs of a detection command, before its run is loaded: ``(options, device,
    names, annotations)`` (:func:`detection_options`, ``--device``, :func:`select_images`,
    :func:`annotations_arg`); errors through ``parser.error``."""
    options = detection_options(args, parser)
    device = device_from_args(args, parser)
    names = select_images(args, parser, out_is_file=out_is_file)
    return options, device, names, annotations_arg(args, parser, names)
