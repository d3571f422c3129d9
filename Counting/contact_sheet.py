"""Contact sheets: for a few test images, one row each of image | saliency | detection groups.

The saliency column is the thesis's picture (tenth root, normalised, grayscale). The groups
column draws each detection group's pixels in its own colour over the dimmed image, with the
group's box in the same colour and the annotated boxes as thin dashed white lines.

    python -m Counting.contact_sheet --run RUN --images FOLDER --out sheet.png [--limit 4]
        [--method second --threshold auto ...]   # any Counting.detect option
"""
import os
import sys

import numpy

from Counting import saliency as saliency_lib
from lenses_common import cli

#: Colours of the groups (matplotlib's tab10, in order).
COLORS = ('tab:red', 'tab:orange', 'tab:green', 'tab:purple', 'tab:cyan', 'tab:pink',
          'tab:olive', 'tab:brown', 'tab:blue', 'tab:gray')


def sheet_entry(name, image, detections, truth_boxes=()):
    """One row: the image (3, H, W), its saliency map (from ``detections``), the groups."""
    return {'name': name, 'image': image, 'saliency': detections.saliency,
            'groups': [(g.mask, g.box) for g in detections], 'truth_boxes': list(truth_boxes),
            'count': detections.count}


def groups_overlay(image, groups):
    """uint8 (H, W, 3): the image at a third of its brightness, each group's pixels coloured."""
    from matplotlib import colors as mcolors
    canvas = saliency_lib.image_to_rgb(image).astype(numpy.float32) / 3
    for k, (mask, _) in enumerate(groups):
        rgb = numpy.array(mcolors.to_rgb(COLORS[k % len(COLORS)])) * 255
        canvas[numpy.asarray(mask, bool)] = rgb
    return canvas.round().astype(numpy.uint8)


def write_contact_sheet(path, entries, title=''):
    """Write a PNG with one row per entry (:func:`sheet_entry`): image | saliency | groups."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    from matplotlib.patches import Rectangle
    from lenses_common.runfolder import atomic_path
    n = len(entries)
    fig, axes = pyplot.subplots(n, 3, figsize=(9, 3.1 * n + 0.4), squeeze=False)
    for row, entry in zip(axes, entries):
        row[0].imshow(saliency_lib.image_to_rgb(entry['image']), interpolation='nearest')
        row[0].set_title('{} (counted {})'.format(entry['name'], entry['count']), fontsize=9)
        row[1].imshow(saliency_lib.saliency_picture(entry['saliency']), cmap='gray', vmin=0,
                      vmax=255, interpolation='nearest')
        row[1].set_title('saliency (10th root)', fontsize=9)
        row[2].imshow(groups_overlay(entry['image'], entry['groups']), interpolation='nearest')
        row[2].set_title('{} groups, boxes; annotations dashed'.format(len(entry['groups'])),
                         fontsize=9)
        for box in entry['truth_boxes']:
            x0, y0, x1, y1 = box
            row[2].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1,
                                       fill=False, edgecolor='white', linestyle='--',
                                       linewidth=0.8))
        for k, (_, box) in enumerate(entry['groups']):
            if box is None:
                continue
            x0, y0, x1, y1 = box
            row[2].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1,
                                       fill=False, edgecolor=COLORS[k % len(COLORS)],
                                       linewidth=1.5))
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format='png')
    pyplot.close(fig)
    return path


def main(argv=None):
    from Counting import detect as detect_lib
    from Counting.detection import detect
    from lenses_common.device import device_from_args
    parser = detect_lib.build_parser()
    parser.prog = 'python -m Counting.contact_sheet'
    parser.description = ('A contact sheet PNG (--out is the file): per image a row of image | '
                          'saliency | detection groups with their boxes. Takes the options of '
                          'Counting.detect.')
    args = parser.parse_args(argv)
    if args.limit is None:
        args.limit = 4
    device = device_from_args(args, parser)
    names = saliency_lib.select_images(args, parser, out_is_file=True)
    annotations = detect_lib._load_annotations(args, parser)
    model, settings = saliency_lib.load_run(args, parser, device)
    entries = []
    try:
        for name in names:
            image = saliency_lib.read_checked_image(args.images, name, settings)
            found = detect(model, image, threshold=args.threshold, method=args.method,
                           count=args.count, seed_upper=args.seed_upper, upper=args.upper,
                           lower=args.lower, kmeans_space=args.kmeans_space, seed=args.seed,
                           min_size=args.min_size, auto_rule=args.auto_rule,
                           auto_level=args.auto_level, connected=args.connected)
            truth = (detect_lib._truth_boxes(annotations, name, args.images)
                     if annotations is not None else [])
            entries.append(sheet_entry(name, image, found, truth))
    except ValueError as e:
        parser.exit(2, parser.prog + ': error: {}\n'.format(e))
    method = args.method
    if args.method == 'second':
        method += ', threshold {}{}'.format(
            'auto ({})'.format(args.auto_rule) if args.threshold == 'auto' else args.threshold,
            ', connected groups' if args.connected else '')
    network = '{} {}{}{}'.format(
        settings.get('arch'), settings.get('activation'),
        ' (F.softplus)' if settings.get('softplus') == 'chainer' else '',
        ' + BRN' if settings.get('batch_renorm') else '')
    write_contact_sheet(args.out, entries, '{} ({}), method {}'.format(args.run, network, method))
    print('wrote {}'.format(args.out), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
