"""Scoring boxes against the generator's annotations, shared by every detection method: greedy
one-to-one matching by IoU (>= 0.5 by default), precision, recall and mean IoU of the matches.

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


def score_boxes(predicted, truth, iou_threshold=0.5):
    """Precision, recall and mean IoU of the matches (:func:`match_boxes`) for one image.

    Returns a dict with ``matched``, ``predicted``, ``truth``, ``precision`` (None without
    predictions), ``recall`` (None without annotated shapes), ``mean_iou`` (None without matches)
    and ``iou_sum``.
    """
    matches = match_boxes(predicted, truth, iou_threshold)
    iou_sum = float(sum(m[2] for m in matches))
    return {'matched': len(matches), 'predicted': len(predicted), 'truth': len(truth),
            'precision': _ratio(len(matches), len(predicted)),
            'recall': _ratio(len(matches), len(truth)),
            'mean_iou': _ratio(iou_sum, len(matches)), 'iou_sum': iou_sum}


def combine_scores(scores):
    """Pool per-image scores: precision and recall over all boxes, mean IoU over all matches."""
    matched = sum(s['matched'] for s in scores)
    predicted = sum(s['predicted'] for s in scores)
    truth = sum(s['truth'] for s in scores)
    iou_sum = sum(s['iou_sum'] for s in scores)
    return {'images': len(scores), 'matched': matched, 'predicted': predicted, 'truth': truth,
            'precision': _ratio(matched, predicted), 'recall': _ratio(matched, truth),
            'mean_iou': _ratio(iou_sum, matched), 'iou_sum': iou_sum}
