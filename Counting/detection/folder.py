"""The detection of a folder of test images: every image detected with one set of options, its
pictures, ``detections.json`` (groups, scores against the annotations) and ``pictured.npz`` (what
a contact sheet draws: per pictured image its saliency map, its groups' masks and the pixels where
a group's importance is NaN), so that the sheet is drawn without detecting again
(:mod:`Counting.detection.sheet`). ``Counting.detect`` and ``Counting.run_all`` call it."""
import os
import time

from lenses_common import compat  # noqa: F401  (before chainer)
import numpy

from Counting import gradients, images
from Counting.detection.detector import detect_shapes, detect_typed
from Counting.detection.groups import AUTO_LEVELS, DEFAULT_AUTO_RULE, DEFAULT_THRESHOLD
from Counting.detection.pictures import write_pictures
from Counting.detection.scoring import combine_scores, score_boxes
from lenses_common.progress import Progress
from lenses_common.runfolder import atomic_path, atomic_write_json

#: The detection options (those of ``Counting.detect``) and their defaults, in the order
#: ``detections.json`` records them.
OPTIONS = dict(method='second', threshold=DEFAULT_THRESHOLD, batch=1, count=None,
               seed_upper=None, upper=0.5, lower=0.05, kmeans_space='linear', min_size=1,
               iou=0.5, seed=0, plain=False, auto_rule=DEFAULT_AUTO_RULE, auto_level=None,
               connected=False, output=gradients.SUM, typed=False)

#: The file of the pictured images' arrays, beside ``detections.json``.
PICTURED = 'pictured.npz'


def detection_options(**given):
    """:data:`OPTIONS` with ``given`` in place of the defaults (ValueError for an unknown one)."""
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ValueError('unknown detection option(s) {}'.format(', '.join(unknown)))
    return dict(OPTIONS, **given)


def truth(annotations, name, path):
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


def detect_image(model, image, types, options):
    """The detection of one image with ``options`` (:data:`OPTIONS`); ``types``: the counter's
    output names (``output`` is one of them, or ``sum``)."""
    kwargs = dict(threshold=options['threshold'], batch=options['batch'],
                  method=options['method'], seed_upper=options['seed_upper'],
                  upper=options['upper'], lower=options['lower'],
                  kmeans_space=options['kmeans_space'], seed=options['seed'],
                  min_size=options['min_size'],
                  support=None if options['plain'] else 'auto', sparse=not options['plain'],
                  auto_rule=options['auto_rule'], auto_level=options['auto_level'],
                  connected=options['connected'])
    if options['typed']:
        return detect_typed(model, image, list(types), **kwargs)
    return detect_shapes(model, image, count=options['count'],
                         output=gradients.output_index(options['output'], list(types)),
                         **kwargs)


def image_record(found, types, seconds=None):
    """What ``detections.json`` and ``pictured.npz`` hold of one image's detection ``found``:
    ``(entry, arrays)``. ``entry``: the network's ``outputs``, the ``count`` looked for, the
    ``groups``, ``seconds`` and, for a typed detection, ``counts`` per type; ``arrays``: the
    ``saliency`` map, the groups' ``masks`` (G, H, W) and the ``nan`` pixels of their
    importance."""
    entry = {'outputs': [float(v) for v in found.outputs], 'count': found.count,
             'groups': [g.to_json() for g in found]}
    if seconds is not None:
        entry['seconds'] = round(seconds, 4)
    if found.counts is not None:
        entry['counts'] = dict(zip(types, found.counts))
    height, width = numpy.shape(found.saliency)
    nan = numpy.zeros((height, width), dtype=bool)
    for g in found:
        if g.importance is not None:
            nan |= numpy.isnan(numpy.asarray(g.importance))
    masks = numpy.array([numpy.asarray(g.mask, bool) for g in found], dtype=bool)
    arrays = {'saliency': numpy.asarray(found.saliency, numpy.float32),
              'masks': masks.reshape(len(found), height, width), 'nan': nan}
    return entry, arrays


def detect_folder(model, settings, run, folder, names, out, options, annotations=None,
                  annotations_path=None, pictures=None, progress=True):
    """Detect in every image ``names`` of ``folder``; write the pictures of the first
    ``pictures`` images (None: all), ``detections.json`` and ``pictured.npz`` into ``out``.

    ``detections.json`` holds ``settings`` (``options`` with ``run``, ``images`` and
    ``annotations``), ``types``, ``pictured`` (the pictured images), ``images`` (per image the
    network's ``outputs``, the ``count`` looked for, its ``groups``, ``seconds`` and, with
    ``annotations``, ``truth_boxes``, ``truth_types`` and ``score``) and ``scores`` (pooled, or
    None without annotations). Returns ``(results, scores)``; ValueError for a bad image.
    """
    os.makedirs(out, exist_ok=True)
    types = list(settings['types'])
    record = dict(run=run, images=folder)
    record.update((k, options[k]) for k in OPTIONS if k not in record)
    if options['threshold'] == 'auto' and record['auto_level'] is None:
        record['auto_level'] = AUTO_LEVELS[options['auto_rule']]
    record['annotations'] = annotations_path if annotations is not None else None
    results, scores, pictured, arrays = {}, [], [], {}
    with Progress(len(names), desc='detect', unit='image', enabled=progress) as bar:
        for index, name in enumerate(names):
            image = images.read_checked_image(folder, name, settings)
            boxes, box_types = (truth(annotations, name, annotations_path)
                                if annotations is not None else ([], None))
            start = time.perf_counter()
            found = detect_image(model, image, types, options)
            seconds = time.perf_counter() - start
            entry, pictured_arrays = image_record(found, types, seconds)
            if pictures is None or index < pictures:
                write_pictures(out, name, image, found, boxes)
                pictured.append(name)
                arrays.update(('{}/{}'.format(name, k), v) for k, v in pictured_arrays.items())
            if annotations is not None:
                entry['truth_boxes'] = boxes
                entry['truth_types'] = box_types
                entry['score'] = score_boxes(
                    found.boxes, boxes, options['iou'],
                    predicted_types=found.box_types if found.counts is not None else None,
                    truth_types=box_types)
                scores.append(entry['score'])
            results[name] = entry
            bar.update()
    summary = combine_scores(scores) if annotations is not None else None
    with atomic_path(os.path.join(out, PICTURED), suffix='.npz') as tmp:
        with open(tmp, 'wb') as f:
            numpy.savez_compressed(f, **arrays)
    atomic_write_json(os.path.join(out, 'detections.json'),
                      {'settings': record, 'types': types, 'pictured': pictured,
                       'images': results, 'scores': summary})
    return results, summary
