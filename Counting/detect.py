"""Command line of the shape detection of thesis 2.2.2 (methods: :mod:`Counting.detection`).

Command line::

    python -m Counting.detect --run RUN_DIR --images FOLDER --out DIR [--names ...] [--limit N]
        [--threshold 5e-10] [--method second|upper|kmeans] [--batch K] [--device D]
        [--output sum|tri|sq | --typed]

writes ``<name>_group<k>_mask.png`` (the group's pixels white), ``<name>_group<k>_importance.png``
(its importance map, tenth root, normalised), ``<name>_boxes.png`` (the input with the boxes in
red, the annotated ones in green) and ``detections.json``: ``settings``; ``images``, per image the
network's ``outputs``, the ``count`` looked for, its ``groups`` (``seed`` as ``[x, y]``, ``box``,
``pixels``), ``seconds`` and, with annotations, ``truth_boxes`` and ``score``; and ``scores``,
pooled over the images (None without annotations). ``--plain`` runs the thesis's loop as written
(:mod:`Counting.detection.second`); the default, its accelerator, finds the same groups.

``--output tri`` differentiates that output alone (its saliency, its second derivative, and
``round(output)`` groups); ``--typed`` runs the detection once per output and labels every group
with its type (``type`` in ``detections.json``); the scores then add the recall of each annotated
type and the share of the matched groups whose type is right (``recall_by_type``,
``type_accuracy``).
"""
import argparse
import os
import sys
import time

from lenses_common import compat  # noqa: F401  (before chainer)
import numpy

from Counting.datasets import limits
from Counting.datasets.annotations import check_annotations
from Counting import saliency as saliency_lib
from Counting.detection import AUTO_LEVELS, AUTO_RULES, DEFAULT_AUTO_RULE, DEFAULT_THRESHOLD
from Counting.detection import KMEANS_SPACES, METHODS
from Counting.detection import SecondDerivativeError, combine_scores, detect, detect_typed
from Counting.detection import score_boxes
from Counting.detection import write_pictures
from lenses_common.device import device_from_args, positive_int
from lenses_common.progress import Progress
from lenses_common.runfolder import atomic_write_json, load_json
from lenses_common.seeding import add_seed_argument
from lenses_common import cli


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('{} is not a number'.format(text)) from None
    if not (numpy.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError('{} is not a finite number >= 0'.format(text))
    return value


def _threshold(text):
    if text == 'auto':
        return text
    try:
        return _non_negative_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError('{} is neither "auto" nor a finite number >= 0'.format(
            text)) from None


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Counting.detect',
        description='Detect shapes with a trained counter (thesis 2.2.2): the second derivative '
                    'of the saliency at the most salient unassigned pixel, thresholded, gives '
                    'one group per shape; or a first-derivative variant of thesis 2.2.3. Writes '
                    '<name>_group<k>_mask.png, <name>_group<k>_importance.png, <name>_boxes.png '
                    'and detections.json (boxes, and scores when annotations exist).')
    saliency_lib.add_input_arguments(parser)
    saliency_lib.add_output_argument(parser)
    parser.add_argument('--typed', action='store_true',
                        help='shapes told apart by type: run the detection once per output '
                             '(differentiating that output, round(output) groups) and label '
                             'every group with its type; scores add per-type recall and type '
                             'accuracy (not with --output or --count)')
    parser.add_argument('--method', choices=METHODS, default='second',
                        help='second: the thesis loop with the second derivative (needs a smooth '
                             'activation); upper: saliency between --lower and --upper; kmeans: '
                             'middle of 3 K-means clusters of the saliency (default: %(default)s)')
    parser.add_argument('--threshold', type=_threshold, default=DEFAULT_THRESHOLD,
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
    parser.add_argument('--auto-level', type=_non_negative_float, default=None,
                        help='level of --auto-rule in [0, 1] (default: {})'.format(
                            ', '.join('{} for {}'.format(v, k) for k, v in AUTO_LEVELS.items())))
    parser.add_argument('--connected', action='store_true',
                        help='second, beyond the thesis: keep only the part of each group that '
                             'touches its seed pixel (8-connected), so that pixels of other shapes '
                             'that pass the threshold stay free for their own groups')
    parser.add_argument('--pictures', type=int, default=None, metavar='N',
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
    parser.add_argument('--count', type=int, default=None,
                        help='number of groups to look for, at most {} (default: round(sum of '
                             'the network\'s outputs), as in the thesis)'.format(
                                 limits.MAX_DETECT_COUNT))
    parser.add_argument('--seed-upper', type=_non_negative_float, default=None,
                        help='second: only pixels whose saliency is at most this fraction of the '
                             'largest can be seeds (thesis 2.2.3; default: no bound)')
    parser.add_argument('--upper', type=_non_negative_float, default=0.5,
                        help='upper: keep saliency <= this fraction of the largest '
                             '(default: %(default)s)')
    parser.add_argument('--lower', type=_non_negative_float, default=0.05,
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
    parser.add_argument('--iou', type=float, default=0.5,
                        help='IoU a box needs to match an annotated one (default: %(default)s)')
    add_seed_argument(parser)
    return parser


def _load_annotations(args, parser):
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
        check_annotations(annotations, path, args.images, getattr(args, 'checked_names', None))
    except ValueError as e:
        parser.error('--annotations: {}'.format(e))
    return annotations


def _truth_boxes(annotations, name, path):
    return _truth(annotations, name, path)[0]


def _truth(annotations, name, path):
    """``(boxes, types)`` of the annotated shapes of ``name`` (types None when not annotated)."""
    shapes = annotations.get(name)
    if shapes is None:
        raise ValueError('annotations {} have no entry for image {}'.format(path, name))
    try:
        boxes = [[int(v) for v in shape['box']] for shape in shapes]
    except (KeyError, TypeError, ValueError):
        raise ValueError('annotations {}: the entry of {} is not a list of shapes with a '
                         '"box"'.format(path, name)) from None
    types = [shape.get('type') for shape in shapes]
    return boxes, (types if all(isinstance(t, str) for t in types) else None)


def main(argv=None, keep=None):
    """The command line; ``keep``: as :func:`run_detection`'s."""
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)  # every count-like option has an upper bound
    if args.count is not None and not 0 <= args.count <= limits.MAX_DETECT_COUNT:
        parser.error('--count must be in 0..{}, got {}'.format(limits.MAX_DETECT_COUNT,
                                                               args.count))
    if not 0 < args.iou <= 1:
        parser.error('--iou must be in (0, 1], got {}'.format(args.iou))
    if args.method == 'upper' and args.lower > args.upper:
        parser.error('--lower {} is above --upper {}'.format(args.lower, args.upper))
    if args.pictures is not None and args.pictures < 0:
        parser.error('--pictures must be >= 0, got {}'.format(args.pictures))
    if args.auto_level is not None and args.auto_level > 1:
        parser.error('--auto-level must be in [0, 1], got {}'.format(args.auto_level))
    if args.typed and (args.output != saliency_lib.SUM or args.count is not None):
        parser.error('--typed runs every output with its own count: drop --output and --count')
    device = device_from_args(args, parser)
    names = saliency_lib.select_images(args, parser)
    args.checked_names = names  # the annotations of these images are checked
    annotations = _load_annotations(args, parser)
    model, settings = saliency_lib.load_run(args, parser, device)
    args.output_index = saliency_lib.checked_output(args, parser, settings)
    if args.method == 'second' and settings.get('activation') == 'relu':
        print(parser.prog + ': error: {}'.format(SecondDerivativeError(
            'the counter in {} uses ReLU, whose second derivative is zero'.format(args.run))),
            file=sys.stderr)
        return 2
    print('detect: run {} ({} {}), method {}, threshold {}, batch {}, output {}, {} image(s) '
          'from {} -> {}, device {}'.format(
              args.run, settings.get('arch'), settings.get('activation'), args.method,
              args.threshold, args.batch, 'typed' if args.typed else args.output, len(names),
              args.images, args.out, device), file=sys.stderr)
    try:
        run_detection(args, model, settings, names, annotations, keep)
    except ValueError as e:  # SecondDerivativeError included
        print(parser.prog + ': error: {}'.format(e), file=sys.stderr)
        return 2
    return 0


def run_detection(args, model, settings, names, annotations, keep=None):
    """Detect in every image, write the pictures and ``detections.json`` (see :func:`main`).

    ``keep``: a list that receives ``(name, image, detections, truth_boxes, truth_types)`` of
    every pictured image (what a contact sheet draws, without detecting again)."""
    os.makedirs(args.out, exist_ok=True)
    annotations_path = args.annotations or os.path.join(args.images, 'annotations.json')
    options = {k: getattr(args, k) for k in (
        'run', 'images', 'method', 'threshold', 'batch', 'count', 'seed_upper', 'upper', 'lower',
        'kmeans_space', 'min_size', 'iou', 'seed', 'plain', 'auto_rule', 'auto_level',
        'connected', 'output', 'typed')}
    if args.threshold == 'auto' and options['auto_level'] is None:
        options['auto_level'] = AUTO_LEVELS[args.auto_rule]
    options['annotations'] = annotations_path if annotations is not None else None
    results, scores = {}, []
    with Progress(len(names), desc='detect', unit='image',
                  enabled=getattr(args, 'progress', True)) as bar:
        for index, name in enumerate(names):
            image = saliency_lib.read_checked_image(args.images, name, settings)
            truth, truth_types = (_truth(annotations, name, annotations_path)
                                  if annotations is not None else ([], None))
            start = time.perf_counter()
            found = detect_image(args, model, settings, image)
            seconds = time.perf_counter() - start
            if args.pictures is None or index < args.pictures:
                write_pictures(args.out, name, image, found, truth)
                if keep is not None:
                    keep.append((name, image, found, truth, truth_types))
            entry = {'outputs': [float(v) for v in found.outputs], 'count': found.count,
                     'groups': [g.to_json() for g in found], 'seconds': round(seconds, 4)}
            if found.counts is not None:
                entry['counts'] = dict(zip(settings['types'], found.counts))
            if annotations is not None:
                entry['truth_boxes'] = truth
                entry['truth_types'] = truth_types
                entry['score'] = score_boxes(
                    found.boxes, truth, args.iou,
                    predicted_types=found.box_types if found.counts is not None else None,
                    truth_types=truth_types)
                scores.append(entry['score'])
            results[name] = entry
            bar.update()
    summary = combine_scores(scores) if annotations is not None else None
    atomic_write_json(os.path.join(args.out, 'detections.json'),
                      {'settings': options, 'images': results, 'scores': summary})
    if summary is not None and summary.get('recall_by_type'):
        print('detect: recall by type {}{}'.format(
            ', '.join('{} {}'.format(k, _fmt(v)) for k, v in summary['recall_by_type'].items()),
            '; type accuracy {}'.format(_fmt(summary['type_accuracy']))
            if 'type_accuracy' in summary else ''), file=sys.stderr)
    if summary is not None:
        print('detect: {} matched of {} predicted and {} annotated boxes: precision {}, recall {}, '
              'mean IoU {}'.format(summary['matched'], summary['predicted'], summary['truth'],
                                   _fmt(summary['precision']), _fmt(summary['recall']),
                                   _fmt(summary['mean_iou'])), file=sys.stderr)
    return results, summary


def detect_image(args, model, settings, image):
    """The detection of one image with the options of :func:`build_parser`'s ``args``."""
    options = dict(threshold=args.threshold, batch=args.batch, method=args.method,
                   seed_upper=args.seed_upper, upper=args.upper, lower=args.lower,
                   kmeans_space=args.kmeans_space, seed=args.seed, min_size=args.min_size,
                   support=None if args.plain else 'auto', sparse=not args.plain,
                   auto_rule=args.auto_rule, auto_level=args.auto_level,
                   connected=args.connected)
    if args.typed:
        return detect_typed(model, image, list(settings['types']), **options)
    return detect(model, image, count=args.count, output=getattr(args, 'output_index', None),
                  **options)


def _fmt(value):
    return 'n/a' if value is None else '{:.3f}'.format(value)


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
