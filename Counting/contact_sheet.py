"""Contact sheets: for a few test images, one row each of image | saliency | detection groups.

Each row is headed "counted N (tri a, sq b) / true M (tri c, sq d)": the number of groups the loop
looked for and the counter's rounded outputs (for a typed detection, the groups asked for per
type), against the annotated counts. The saliency column is the thesis's picture (tenth root,
normalised, grayscale). The groups column draws each detection group's pixels in its own colour
over the dimmed image; a group's box is solid green when it matched an annotated shape at
IoU >= 0.5 (the scoring's greedy one-to-one matching) and dashed red when it did not; the
annotated boxes are thin dotted white lines, those of missed shapes thick dashed yellow; a typed
detection writes each group's type at its box. Pixels where a group's second derivative is NaN
(Chainer's ``F.softplus`` on raw pixels) are magenta. A legend under the rows says all this.

    python -m Counting.contact_sheet --run RUN --images FOLDER --out sheet.png [--limit 4]
        [--title TEXT] [--method second --threshold auto ...]   # any Counting.detect option
"""
import os
import sys

import numpy

from Counting import saliency as saliency_lib
from lenses_common import cli

#: Colours of the groups' pixels (matplotlib's tab10 without the red, green and gray of the
#: boxes; magenta marks NaN).
COLORS = ('tab:orange', 'tab:blue', 'tab:purple', 'tab:cyan', 'tab:brown', 'tab:olive',
          'tab:pink', 'navy')
MATCHED, UNMATCHED, MISSED, FOUND = 'lime', 'red', 'yellow', 'white'
NAN_RGB = (255, 0, 255)


def sheet_entry(name, image, detections, truth_boxes=(), truth_types=None, types=None,
                iou=0.5):
    """One row: the image (3, H, W), its saliency map (from ``detections``), the groups with
    whether each matched an annotated shape, the annotated boxes with whether each was found,
    and the counts of the row header. ``types``: the counter's output names (default
    ``tri``, ``sq``)."""
    from Counting.detection import matched_flags
    types = list(types or ('tri', 'sq'))
    groups = [g for g in detections if g.box is not None]
    hit_groups, hit_truth = matched_flags([g.box for g in groups], list(truth_boxes), iou)
    nan = numpy.zeros(numpy.shape(detections.saliency), dtype=bool)
    for g in detections:
        if g.importance is not None:
            nan |= numpy.isnan(numpy.asarray(g.importance))
    outputs = [] if detections.outputs is None else [float(v) for v in detections.outputs]
    if detections.counts is not None:
        counted = list(detections.counts)
    else:
        counted = [int(round(v)) for v in outputs]
    truth_counts = None
    if truth_types is not None:
        truth_counts = [sum(1 for t in truth_types if t == k) for k in types]
    return {'name': name, 'image': image, 'saliency': detections.saliency,
            'groups': [(g.mask, g.box) for g in groups], 'group_types': [g.type for g in groups],
            'matched': hit_groups, 'truth_boxes': list(truth_boxes), 'found': hit_truth,
            'count': detections.count, 'types': types, 'counted': counted,
            'truth_counts': truth_counts, 'nan': nan}


def row_header(entry):
    """``name: counted N (tri a, sq b) / true M (tri c, sq d)``."""
    types = entry.get('types') or ['tri', 'sq']

    def per_type(values):
        return ', '.join('{} {}'.format(t, v) for t, v in zip(types, values))

    text = '{}: counted {}'.format(entry['name'], entry['count'])
    if entry.get('counted'):
        text += ' ({})'.format(per_type(entry['counted']))
    text += ' / true {}'.format(len(entry['truth_boxes']))
    if entry.get('truth_counts') is not None:
        text += ' ({})'.format(per_type(entry['truth_counts']))
    return text


def groups_overlay(image, groups, nan=None):
    """uint8 (H, W, 3): the image at a third of its brightness, each group's pixels coloured,
    the pixels of ``nan`` (bool) magenta."""
    from matplotlib import colors as mcolors
    canvas = saliency_lib.image_to_rgb(image).astype(numpy.float32) / 3
    if nan is not None:
        canvas[numpy.asarray(nan, bool)] = NAN_RGB
    for k, (mask, _) in enumerate(groups):
        rgb = numpy.array(mcolors.to_rgb(COLORS[k % len(COLORS)])) * 255
        canvas[numpy.asarray(mask, bool)] = rgb
    return canvas.round().astype(numpy.uint8)


def _rectangle(box, **style):
    from matplotlib.patches import Rectangle
    x0, y0, x1, y1 = box
    return Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, **style)


def _legend_handles(any_nan, any_typed):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Line2D([], [], color=MATCHED, linewidth=2, label='group matched (IoU >= 0.5)'),
               Line2D([], [], color=UNMATCHED, linewidth=2, linestyle='--',
                      label='group not matched'),
               Line2D([], [], color=FOUND, linewidth=1, linestyle=':',
                      label='annotated shape, found'),
               Line2D([], [], color=MISSED, linewidth=2, linestyle='--',
                      label='annotated shape, missed')]
    if any_nan:
        handles.append(Patch(facecolor=numpy.array(NAN_RGB) / 255.0, edgecolor='black',
                             label='NaN in the second derivative'))
    if any_typed:
        handles.append(Line2D([], [], linestyle='none', marker='$t$', color='white',
                              label='type of a typed group (tri / sq)'))
    return handles


def write_contact_sheet(path, entries, title=''):
    """Write a PNG with one row per entry (:func:`sheet_entry`): image | saliency | groups, each
    row headed by :func:`row_header`, and a legend of the boxes' styles under the rows."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    from lenses_common.runfolder import atomic_path
    n = len(entries)
    fig = pyplot.figure(figsize=(9, 3.3 * n + 1.8), facecolor='white')
    rows = fig.subfigures(n + 2, 1, height_ratios=[0.6] + [3.3] * n + [1.2],
                          squeeze=False)[:, 0]
    if title:
        import textwrap
        rows[0].text(0.5, 0.5, textwrap.fill(title, 90), ha='center', va='center', fontsize=10,
                     fontweight='bold')
    rows = rows[1:]
    any_nan = any_typed = False
    for sub, entry in zip(rows, entries):
        sub.suptitle(row_header(entry), fontsize=10, y=0.99)
        ax = sub.subplots(1, 3)
        ax[0].imshow(saliency_lib.image_to_rgb(entry['image']), interpolation='nearest')
        ax[0].set_title('image', fontsize=9)
        ax[1].imshow(saliency_lib.saliency_picture(entry['saliency']), cmap='gray', vmin=0,
                     vmax=255, interpolation='nearest')
        ax[1].set_title('saliency (10th root)', fontsize=9)
        nan = entry.get('nan')
        n_nan = int(numpy.count_nonzero(nan)) if nan is not None else 0
        any_nan = any_nan or n_nan > 0
        ax[2].imshow(groups_overlay(entry['image'], entry['groups'], nan), interpolation='nearest')
        matched = entry.get('matched') or [False] * len(entry['groups'])
        found = entry.get('found') or [False] * len(entry['truth_boxes'])
        heading = '{} group{}, {} matched'.format(len(entry['groups']),
                                                  '' if len(entry['groups']) == 1 else 's',
                                                  sum(matched))
        if n_nan:
            heading += '; {} NaN pixels'.format(n_nan)
        ax[2].set_title(heading, fontsize=9)
        for box, hit in zip(entry['truth_boxes'], found):
            if hit:
                ax[2].add_patch(_rectangle(box, edgecolor=FOUND, linestyle=':', linewidth=1))
            else:
                ax[2].add_patch(_rectangle(box, edgecolor=MISSED, linestyle='--', linewidth=2))
        types = entry.get('group_types') or [None] * len(entry['groups'])
        for (_, box), hit, kind in zip(entry['groups'], matched, types):
            color = MATCHED if hit else UNMATCHED
            ax[2].add_patch(_rectangle(box, edgecolor=color, linewidth=1.6,
                                       linestyle='-' if hit else '--'))
            if kind is not None:
                any_typed = True
                ax[2].text(box[0] + 0.5, box[1] + 0.5, kind, color=color, fontsize=7, va='top',
                           ha='left', fontweight='bold',
                           bbox=dict(facecolor='black', alpha=0.6, pad=0.5, linewidth=0))
        for a in ax:
            a.set_xticks([])
            a.set_yticks([])
    rows[-1].legend(handles=_legend_handles(any_nan, any_typed), loc='center', ncol=3,
                    fontsize=8, frameon=True, facecolor='0.3', edgecolor='black',
                    labelcolor='white')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format='png', facecolor='white')
    pyplot.close(fig)
    return path


def network_name(settings):
    """``edgepool softplus (F.softplus) + BRN``: a counter's network in words."""
    return '{} {}{}{}'.format(
        settings.get('arch'), settings.get('activation'),
        ' (F.softplus)' if settings.get('softplus') == 'chainer' else '',
        ' + BRN' if settings.get('batch_renorm') else '')


def method_name(args):
    """The detection method of ``Counting.detect``'s ``args`` in words."""
    method = args.method
    if args.method == 'second':
        method += ', threshold {}{}'.format(
            'auto ({})'.format(args.auto_rule) if args.threshold == 'auto' else args.threshold,
            ', connected groups' if args.connected else '')
    if getattr(args, 'typed', False):
        method += ', typed (once per output)'
    elif getattr(args, 'output', saliency_lib.SUM) != saliency_lib.SUM:
        method += ', output {}'.format(args.output)
    return method


def entries_from_kept(kept, types, iou=0.5):
    """Sheet entries from what :func:`Counting.detect.run_detection` kept of its pictured
    images (no detection runs again)."""
    return [sheet_entry(name, image, found, truth, truth_types, types, iou)
            for name, image, found, truth, truth_types in kept]


def main(argv=None):
    from Counting import detect as detect_lib
    from lenses_common.device import device_from_args
    parser = detect_lib.build_parser()
    parser.prog = 'python -m Counting.contact_sheet'
    parser.description = ('A contact sheet PNG (--out is the file): per image a row of image | '
                          'saliency | detection groups with their boxes, headed by the counted '
                          'and the true counts; matched and unmatched groups and missed shapes '
                          'drawn apart. Takes the options of Counting.detect.')
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
    args = parser.parse_args(argv)
    if args.limit is None:
        args.limit = 4
    if args.typed and (args.output != saliency_lib.SUM or args.count is not None):
        parser.error('--typed runs every output with its own count: drop --output and --count')
    device = device_from_args(args, parser)
    names = saliency_lib.select_images(args, parser, out_is_file=True)
    annotations = detect_lib._load_annotations(args, parser)
    model, settings = saliency_lib.load_run(args, parser, device)
    args.output_index = saliency_lib.checked_output(args, parser, settings)
    annotations_path = args.annotations or os.path.join(args.images, 'annotations.json')
    types = list(settings.get('types') or ('tri', 'sq'))
    entries = []
    try:
        for name in names:
            image = saliency_lib.read_checked_image(args.images, name, settings)
            found = detect_lib.detect_image(args, model, settings, image)
            truth, truth_types = (detect_lib._truth(annotations, name, annotations_path)
                                  if annotations is not None else ([], None))
            entries.append(sheet_entry(name, image, found, truth, truth_types, types, args.iou))
    except ValueError as e:
        parser.exit(2, parser.prog + ': error: {}\n'.format(e))
    title = args.title or '{}, method {}'.format(network_name(settings), method_name(args))
    write_contact_sheet(args.out, entries, title)
    print('wrote {}'.format(args.out), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
