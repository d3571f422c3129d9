"""Contact sheets: for a few test images, one row each of image | saliency | detection groups.

Each row is headed "counted N (tri a, sq b) / true M (tri c, sq d)": the number of groups the loop
looked for and the counter's rounded outputs (for a typed detection, the groups asked for per
type), against the annotated counts. The saliency column is the thesis's picture (tenth root,
normalised, grayscale). The groups column draws each detection group's pixels in its own colour
over the dimmed image; a group's box is solid green when it matched an annotated shape at
IoU >= 0.5 (the scoring's greedy one-to-one matching) and dashed red, 2 px wider, when it did
not; the annotated boxes are thin dotted white lines, those of missed shapes thick dashed
yellow; a typed detection writes each group's type at its box. Pixels where a group's second
derivative is NaN (Chainer's ``F.softplus`` on raw pixels) are magenta. A legend under the rows
says all this.

The rows are read from a detection folder (``detections.json`` and ``pictured.npz``, written by
:func:`Counting.detection.folder.detect_folder`): nothing is detected again.
"""
import os

import numpy

from Counting import gradients, images
from Counting.detection.folder import PICTURED
from Counting.detection.scoring import matched_flags
from lenses_common import safe_npz
from lenses_common.runfolder import load_json

#: Colours of the groups' pixels (matplotlib's tab10 without the red, green and gray of the
#: boxes; magenta marks NaN).
COLORS = ('tab:orange', 'tab:blue', 'tab:purple', 'tab:cyan', 'tab:brown', 'tab:olive',
          'tab:pink', 'navy')
MATCHED, UNMATCHED, MISSED, FOUND = 'lime', 'red', 'yellow', 'white'
NAN_RGB = (255, 0, 255)


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
    canvas = images.image_to_rgb(image).astype(numpy.float32) / 3
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
        ax[0].imshow(images.image_to_rgb(entry['image']), interpolation='nearest')
        ax[0].set_title('image', fontsize=9)
        ax[1].imshow(gradients.saliency_picture(entry['saliency']), cmap='gray', vmin=0,
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
            # A matched group's box is drawn over an unmatched one, which is widened by 2 px so
            # that two groups on one shape both show.
            drawn = box if hit else (box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2)
            ax[2].add_patch(_rectangle(drawn, edgecolor=color, linewidth=1.6,
                                       linestyle='-' if hit else '--', zorder=4 if hit else 3))
            if kind is not None:
                any_typed = True
                ax[2].text(box[0] + 0.5, box[1] + 0.5, kind, color=color, fontsize=7, va='top',
                           ha='left', fontweight='bold', zorder=6 if hit else 5,
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


def sheet_entry(name, image, entry, arrays, types=None, iou=0.5):
    """One row: the image (3, H, W), its saliency map, the groups with whether each matched an
    annotated shape, the annotated boxes with whether each was found, and the counts of the row
    header; from the image's ``detections.json`` ``entry`` and its ``pictured.npz`` ``arrays``
    (``saliency``, ``masks``, ``nan``; :func:`Counting.detection.folder.image_record`).
    ``types``: the counter's output names (default ``tri``, ``sq``)."""
    types = list(types or ('tri', 'sq'))
    kept = [k for k, g in enumerate(entry['groups']) if g['box'] is not None]
    boxes = [entry['groups'][k]['box'] for k in kept]
    truth_boxes = list(entry.get('truth_boxes') or [])
    truth_types = entry.get('truth_types')
    hit_groups, hit_truth = matched_flags(boxes, truth_boxes, iou)
    if entry.get('counts') is not None:
        counted = [entry['counts'][t] for t in types]
    else:
        counted = [int(round(v)) for v in entry['outputs']]
    truth_counts = None
    if truth_types is not None:
        truth_counts = [sum(1 for t in truth_types if t == k) for k in types]
    return {'name': name, 'image': image, 'saliency': arrays['saliency'],
            'groups': [(arrays['masks'][k], boxes[n]) for n, k in enumerate(kept)],
            'group_types': [entry['groups'][k].get('type') for k in kept],
            'matched': hit_groups, 'truth_boxes': truth_boxes, 'found': hit_truth,
            'count': entry['count'], 'types': types, 'counted': counted,
            'truth_counts': truth_counts, 'nan': arrays['nan']}


def entries_from_folder(det_dir, folder=None):
    """The sheet's rows (one per pictured image) from the detection folder ``det_dir``
    (:func:`Counting.detection.folder.detect_folder`); the images are read from ``folder``
    (default: the ``images`` its ``detections.json`` names)."""
    record = load_json(os.path.join(det_dir, 'detections.json'), what='detections file')
    arrays = safe_npz.read_npz(os.path.join(det_dir, PICTURED), what='detections file')
    folder = folder or record['settings']['images']
    entries = []
    for name in record['pictured']:
        mine = {k: arrays['{}/{}'.format(name, k)] for k in ('saliency', 'masks', 'nan')}
        entries.append(sheet_entry(name, images.load_image(os.path.join(folder, name)),
                                   record['images'][name], mine, record.get('types'),
                                   record['settings']['iou']))
    return entries


def network_name(settings):
    """``edgepool softplus (F.softplus) + BRN``: a counter's network in words."""
    return '{} {}{}{}'.format(
        settings.get('arch'), settings.get('activation'),
        ' (F.softplus)' if settings.get('softplus') == 'chainer' else '',
        ' + BRN' if settings.get('batch_renorm') else '')


def method_name(options):
    """A detection method (:data:`Counting.detection.folder.OPTIONS`) in words."""
    method = options['method']
    if options['method'] == 'second':
        method += ', threshold {}{}'.format(
            'auto ({})'.format(options['auto_rule']) if options['threshold'] == 'auto'
            else options['threshold'],
            ', connected groups' if options['connected'] else '')
    if options.get('typed'):
        method += ', typed (once per output)'
    elif options.get('output', gradients.SUM) != gradients.SUM:
        method += ', output {}'.format(options['output'])
    return method
