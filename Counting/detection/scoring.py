"""Scoring boxes against the generator's annotations, shared by every detection method: greedy
one-to-one matching by IoU (>= 0.5 by default), precision, recall and mean IoU of the matches;
with the annotated types, the recall of each type, and with the predicted types too (a typed
detection), the share of the matched groups whose type is the matched shape's.

Boxes are inclusive pixel boxes ``[xmin, ymin, xmax, ymax]``, like the generator's annotations.
"""


def box_iou(a, b):
    """IoU of two inclusive pixel boxes ``[xmin, ymin, xmax, ymax]`` (areas counted in pixels)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / float(area_a + area_b - inter)


def match_boxes(predicted, truth, iou_threshold=0.5):
    """Greedy one-to-one matching: the pair with the largest IoU first, while IoU >= threshold.

    Returns a list of ``(i_predicted, i_truth, iou)``.
    """
    pairs = []
    for i, p in enumerate(predicted):
        for j, t in enumerate(truth):
            iou = box_iou(p, t)
            if iou >= iou_threshold:
                pairs.append((-iou, i, j))
    pairs.sort()
    used_p, used_t, matches = set(), set(), []
    for neg_iou, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            matches.append((i, j, -neg_iou))
    return matches


def _ratio(a, b):
    return a / b if b else None


def score_boxes(predicted, truth, iou_threshold=0.5, predicted_types=None, truth_types=None):
    """Precision, recall and mean IoU of the matches (:func:`match_boxes`) for one image.

    Returns a dict with ``matched``, ``predicted``, ``truth``, ``precision`` (None without
    predictions), ``recall`` (None without annotated shapes), ``mean_iou`` (None without matches)
    and ``iou_sum``. With ``truth_types`` (the annotated shapes' types, in the order of ``truth``)
    also ``truth_by_type`` and ``matched_by_type`` (annotated and matched shapes per type; the
    matching ignores types) and ``recall_by_type``; with ``predicted_types`` too (the groups'
    types, in the order of ``predicted``), ``type_right``, the matches whose two types agree, and
    ``type_accuracy``, their share of the matches (None without matches).
    """
    matches = match_boxes(predicted, truth, iou_threshold)
    iou_sum = float(sum(m[2] for m in matches))
    out = {'matched': len(matches), 'predicted': len(predicted), 'truth': len(truth),
           'precision': _ratio(len(matches), len(predicted)),
           'recall': _ratio(len(matches), len(truth)),
           'mean_iou': _ratio(iou_sum, len(matches)), 'iou_sum': iou_sum}
    if truth_types is not None:
        if len(truth_types) != len(truth):
            raise ValueError('truth_types needs one type per annotated box')
        kinds = list(dict.fromkeys(truth_types))
        out['truth_by_type'] = {k: sum(1 for t in truth_types if t == k) for k in kinds}
        out['matched_by_type'] = {k: sum(1 for _, j, _ in matches if truth_types[j] == k)
                                  for k in kinds}
        out['recall_by_type'] = {k: _ratio(out['matched_by_type'][k], out['truth_by_type'][k])
                                 for k in kinds}
        if predicted_types is not None:
            if len(predicted_types) != len(predicted):
                raise ValueError('predicted_types needs one type per predicted box')
            out['type_right'] = sum(1 for i, j, _ in matches
                                    if predicted_types[i] == truth_types[j])
            out['type_accuracy'] = _ratio(out['type_right'], len(matches))
    return out


def matched_flags(predicted, truth, iou_threshold=0.5):
    """``(predicted_matched, truth_matched)``: one bool per box of each list, whether
    :func:`match_boxes` paired it."""
    matches = match_boxes(predicted, truth, iou_threshold)
    hit_p, hit_t = [False] * len(predicted), [False] * len(truth)
    for i, j, _ in matches:
        hit_p[i] = hit_t[j] = True
    return hit_p, hit_t


def combine_scores(scores):
    """Pool per-image scores: precision and recall over all boxes, mean IoU over all matches;
    per-type recall and the type accuracy over all shapes and matches where the images have
    them (:func:`score_boxes`)."""
    matched = sum(s['matched'] for s in scores)
    predicted = sum(s['predicted'] for s in scores)
    truth = sum(s['truth'] for s in scores)
    iou_sum = sum(s['iou_sum'] for s in scores)
    out = {'images': len(scores), 'matched': matched, 'predicted': predicted, 'truth': truth,
           'precision': _ratio(matched, predicted), 'recall': _ratio(matched, truth),
           'mean_iou': _ratio(iou_sum, matched), 'iou_sum': iou_sum}
    if scores and all('truth_by_type' in s for s in scores):
        kinds = list(dict.fromkeys(k for s in scores for k in s['truth_by_type']))
        out['truth_by_type'] = {k: sum(s['truth_by_type'].get(k, 0) for s in scores)
                                for k in kinds}
        out['matched_by_type'] = {k: sum(s['matched_by_type'].get(k, 0) for s in scores)
                                  for k in kinds}
        out['recall_by_type'] = {k: _ratio(out['matched_by_type'][k], out['truth_by_type'][k])
                                 for k in kinds}
        if all('type_right' in s for s in scores):
            out['type_right'] = sum(s['type_right'] for s in scores)
            out['type_accuracy'] = _ratio(out['type_right'], matched)
    return out
