"""Command line of the saliency maps of a counter (thesis 2.1.5 and 2.2.1; the math is
:mod:`Counting.gradients`).

    python -m Counting.saliency --run RUN_DIR --images FOLDER --out DIR [--names 0000.png ...]
        [--limit N] [--output sum|tri|sq] [--device D]

writes ``<name>_saliency.png`` for each image: ``max_c |d sum(outputs) / d image[c]|`` (``--output
tri`` or ``sq``: of that one output), tenth root, normalised to 0..255, grayscale.
"""
import sys

from Counting import gradients, image_args, models
from lenses_common.device import device_from_args
from lenses_common import cli


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Counting.saliency',
        description='Saliency maps of a trained counter (thesis 2.2.1): for each image, '
                    'max over channels of |d sum(outputs) / d image|, written as '
                    '<name>_saliency.png (tenth root, normalised to 0..255, grayscale).')
    image_args.add_input_arguments(parser)
    image_args.add_output_argument(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)  # every count-like option has an upper bound
    device = device_from_args(args, parser)
    names = image_args.select_images(args, parser)
    try:
        model, settings = models.load_counter(args.run, device)
    except (ValueError, OSError) as e:
        parser.error('--run: {}'.format(e))
    output = image_args.checked_output(args, parser, settings)
    print('saliency: run {} ({} {}), output {}, {} image(s) from {} -> {}, device {}'.format(
        args.run, settings.get('arch'), settings.get('activation'), args.output, len(names),
        args.images, args.out, device), file=sys.stderr)
    try:
        gradients.write_saliency_pictures(model, settings, args.images, names, args.out,
                                          progress=args.progress, output=output)
    except ValueError as e:
        print(parser.prog + ': error: {}'.format(e), file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
