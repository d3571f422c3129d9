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
``pictured.npz`` holds what a contact sheet draws of the pictured images
(:mod:`Counting.detection.folder`).

``--output tri`` differentiates that output alone (its saliency, its second derivative, and
``round(output)`` groups); ``--typed`` runs the detection once per output and labels every group
with its type (``type`` in ``detections.json``); the scores then add the recall of each annotated
type and the share of the matched groups whose type is right (``recall_by_type``,
``type_accuracy``).
"""
import sys

from Counting import image_args, models
from Counting.detection import SMOOTH_ACTIVATIONS, SecondDerivativeError
from Counting.detection.folder import detect_folder
from lenses_common import cli


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Counting.detect',
        description='Detect shapes with a trained counter (thesis 2.2.2): the second derivative '
                    'of the saliency at the most salient unassigned pixel, thresholded, gives '
                    'one group per shape; or a first-derivative variant of thesis 2.2.3. Writes '
                    '<name>_group<k>_mask.png, <name>_group<k>_importance.png, <name>_boxes.png '
                    'and detections.json (boxes, and scores when annotations exist).')
    image_args.add_input_arguments(parser)
    image_args.add_detection_arguments(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)  # every count-like option has an upper bound
    options, device, names, annotations = image_args.detection_inputs(args, parser)
    try:
        model, settings = models.load_counter(args.run, device)
    except (ValueError, OSError) as e:
        parser.error('--run: {}'.format(e))
    image_args.checked_output(args, parser, settings)
    if args.method == 'second' and settings['activation'] not in SMOOTH_ACTIVATIONS:
        print(parser.prog + ': error: {}'.format(SecondDerivativeError(
            'the counter in {} uses {}, whose second derivative is zero'.format(
                args.run, settings['activation']))), file=sys.stderr)
        return 2
    print('detect: run {} ({} {}), method {}, threshold {}, batch {}, output {}, {} image(s) '
          'from {} -> {}, device {}'.format(
              args.run, settings.get('arch'), settings.get('activation'), args.method,
              args.threshold, args.batch, 'typed' if args.typed else args.output, len(names),
              args.images, args.out, device), file=sys.stderr)
    try:
        _, summary = detect_folder(model, settings, args.run, args.images, names, args.out,
                                   options, annotations, image_args.annotations_path(args),
                                   pictures=args.pictures, progress=args.progress)
    except ValueError as e:  # SecondDerivativeError included
        print(parser.prog + ': error: {}'.format(e), file=sys.stderr)
        return 2
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
    return 0


def _fmt(value):
    return 'n/a' if value is None else '{:.3f}'.format(value)


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
