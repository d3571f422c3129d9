import json
import os

import numpy
import pytest
from PIL import Image, ImageDraw
from scipy.cluster.vq import kmeans2

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
import chainer.links as L

from Counting import detect
from Counting import saliency
from Counting.functions import stable_softplus


class Tiny(chainer.Chain):
    """conv 3->4 k3, activation, conv 4->3 k3 s3, activation, linear -> 2 (12x12: 3x3 map)."""

    def __init__(self, activation=stable_softplus, dtype=numpy.float32, map_size=3):
        super().__init__()
        self.activation = activation
        rng = numpy.random.RandomState(0)
        with self.init_scope(), chainer.using_config('dtype', dtype):
            self.c1 = L.Convolution2D(3, 4, 3, initialW=rng.normal(0, 0.02, (4, 3, 3, 3)),
                                      initial_bias=rng.normal(0, 1, 4))
            self.c2 = L.Convolution2D(4, 3, 3, stride=3, initialW=rng.normal(0, 0.5, (3, 4, 3, 3)),
                                      initial_bias=rng.normal(0, 1, 3))
            self.l = L.Linear(None, 2, initialW=rng.normal(0, 1, (2, 3 * map_size ** 2)))

    def forward(self, x):
        return self.l(self.activation(self.c2(self.activation(self.c1(x)))))


def tiny_image(size=12, dtype=numpy.float32):
    """Two blue rectangles on black, with a little noise so no two saliencies tie."""
    rng = numpy.random.RandomState(1)
    x = numpy.zeros((3, size, size), dtype)
    x[2, 2:6, 2:7] = 255
    x[2, 7:11, 6:11] = 255
    return x + rng.uniform(0, 20, x.shape).astype(dtype)


def first_row(model, x):
    engine = detect.SecondDerivativeRows(model, x)
    p = numpy.unravel_index(engine.saliency.argmax(), engine.saliency.shape)
    return engine.rows([p])[0]


def middle_threshold(model, x):
    """A threshold inside the first group's importance values, so groups stay partial."""
    row = first_row(model, x)
    return float(numpy.quantile(row[row > 0], 0.5))


def reference_groups(model, x, count, threshold):
    """The thesis's loop written out directly: forward, grad, grad of |g| at p, every step."""
    height, width = x.shape[1:]
    assigned = numpy.zeros((height, width), bool)
    groups = []
    for _ in range(count):
        if assigned.all():
            break
        xv = chainer.Variable(x[None])
        with chainer.using_config('train', False):
            g, = chainer.grad([F.sum(model(xv))], [xv], enable_double_backprop=True)
            sal = numpy.abs(g.array[0]).max(axis=0)
            p = numpy.unravel_index(numpy.where(assigned, -numpy.inf, sal).argmax(), sal.shape)
            c = int(numpy.abs(g.array[0, :, p[0], p[1]]).argmax())
            h, = chainer.grad([F.absolute(g[0, c, p[0], p[1]])], [xv])
        importance = numpy.abs(h.array[0]).max(axis=0)
        mask = (importance >= threshold) & ~assigned
        assigned |= mask
        assigned[p] = True
        groups.append((tuple(int(v) for v in p), mask))
    return groups


def same_groups(a, b):
    """Same seeds, masks and boxes; importance equal up to rounding (a batch of K may use other
    BLAS kernels than a batch of one)."""
    if len(a) != len(b):
        return False
    for ga, gb in zip(a, b):
        if ga.seed != gb.seed or not numpy.array_equal(ga.mask, gb.mask) or ga.box != gb.box:
            return False
        numpy.testing.assert_allclose(ga.importance, gb.importance, rtol=1e-5,
                                      atol=1e-6 * ga.importance.max())
    return True


# ---------------------------------------------------------------------------------------------
# The second derivative

def test_second_derivative_row_matches_finite_differences():
    model = Tiny(dtype=numpy.float64, map_size=2)
    x = tiny_image(size=9, dtype=numpy.float64)
    sal = saliency.saliency_map(model, x)
    p = numpy.unravel_index(sal.argmax(), sal.shape)
    row = detect.SecondDerivativeRows(model, x).rows([p])[0]

    def sal_at_p(z):
        return float(saliency.saliency_array(model, z)[p])

    eps = 1e-3
    h = numpy.zeros(x.shape)
    for index in numpy.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        h[index] = (sal_at_p(plus) - sal_at_p(minus)) / (2 * eps)
    expected = numpy.abs(h).max(axis=0)
    assert expected.max() > 0
    numpy.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_detect_equals_the_thesis_loop_written_out():
    model, x = Tiny(), tiny_image()
    threshold = middle_threshold(model, x)
    found = detect.detect(model, x, threshold=threshold, count=6)
    reference = reference_groups(model, x, 6, threshold)
    assert len(found) == len(reference) == 6
    for group, (seed, mask) in zip(found, reference):
        assert group.seed == seed
        numpy.testing.assert_array_equal(group.mask, mask)


def test_groups_are_disjoint_and_boxed():
    model, x = Tiny(), tiny_image()
    found = detect.detect(model, x, threshold=middle_threshold(model, x), count=8)
    assert len(found) == 8 and found.count == 8 and found.method == 'second'
    seen = numpy.zeros(x.shape[1:], bool)
    seeds = set()
    for group in found:
        assert group.mask.dtype == bool and group.importance.dtype == numpy.float32
        assert not (seen & group.mask).any()
        seen |= group.mask
        assert group.seed not in seeds
        seeds.add(group.seed)
        if group.mask.any():
            ys, xs = numpy.nonzero(group.mask)
            assert group.box == [xs.min(), ys.min(), xs.max(), ys.max()]
        else:
            assert group.box is None
    # A seed is never inside a later group.
    for i, group in enumerate(found):
        assert not any(later.mask[group.seed] for later in found[i + 1:])


def test_count_defaults_to_rounded_sum_of_outputs():
    model, x = Tiny(), tiny_image()
    model.l.b.array[:] = [1.2, 1.4 - model(x[None]).array[0].sum()]  # outputs sum to 2.6
    found = detect.detect(model, x, threshold=middle_threshold(model, x))
    assert found.count == 3 and len(found) == 3
    numpy.testing.assert_allclose(found.outputs.sum(), 2.6, rtol=1e-5)


def test_loop_stops_when_every_pixel_is_assigned():
    model, x = Tiny(), tiny_image()
    found = detect.detect(model, x, threshold=0.0, count=5)
    # threshold 0 puts every unassigned pixel in the first group.
    assert len(found) == 1 and found[0].mask.all()


@pytest.mark.parametrize('batch', [2, 3, 5])
def test_batched_rows_give_the_same_groups(batch):
    model, x = Tiny(), tiny_image()
    threshold = middle_threshold(model, x)
    one = detect.detect(model, x, threshold=threshold, count=10, batch=1)
    many = detect.detect(model, x, threshold=threshold, count=10, batch=batch)
    assert same_groups(one, many)
    assert many.passes < many.rows
    assert one.passes == one.rows == len(one)
    fresh = detect.detect(model, x, threshold=threshold, count=10, batch=batch,
                          reuse_graph=False)
    assert same_groups(one, fresh)


def test_batched_rows_with_a_fixed_spread_and_seed_upper():
    model, x = Tiny(), tiny_image()
    threshold = middle_threshold(model, x)
    for spread in (0, 2, 20):
        assert same_groups(detect.detect(model, x, threshold=threshold, count=7),
                           detect.detect(model, x, threshold=threshold, count=7, batch=4,
                                         spread=spread))
    capped = detect.detect(model, x, threshold=threshold, count=7, seed_upper=0.5)
    top = capped.saliency.max()
    assert capped and all(capped.saliency[g.seed] <= 0.5 * top for g in capped)
    assert same_groups(capped, detect.detect(model, x, threshold=threshold, count=7,
                                             seed_upper=0.5, batch=3))


def test_rows_of_copies_are_each_their_own():
    model, x = Tiny(), tiny_image()
    pixels = [(3, 4), (8, 8), (5, 2)]
    together = detect.SecondDerivativeRows(model, x, copies=3).rows(pixels)
    alone = detect.SecondDerivativeRows(model, x, copies=1)
    for p, row in zip(pixels, together):
        numpy.testing.assert_allclose(row, alone.rows([p])[0], rtol=1e-5, atol=1e-6 * row.max())


def test_support_boxes_by_hand():
    lo, hi = detect._axis_support([(1, 1, 3, 2, 0)], 7)  # units see 0..2, 2..4, 4..6
    numpy.testing.assert_array_equal(lo, [0, 0, 0, 2, 2, 4, 4])
    numpy.testing.assert_array_equal(hi, [2, 2, 4, 4, 6, 6, 6])
    lo, hi = detect._axis_support([(1, 1, 3, 5, 0)], 12)  # units see 0..2 and 5..7 only
    assert list(lo <= hi) == [True] * 3 + [False] * 2 + [True] * 3 + [False] * 4
    numpy.testing.assert_array_equal(lo[5:8], 5)
    numpy.testing.assert_array_equal(hi[5:8], 7)
    # Padding: layer 2 units see layer-1 units 0..2 and 2..4, i.e. pixels -1..3 and 1..5.
    lo, hi = detect._axis_support([(1, 1, 3, 1, 1), (1, 1, 3, 2, 0)], 6)
    numpy.testing.assert_array_equal(lo, [0, 0, 0, 0, 1, 1])
    numpy.testing.assert_array_equal(hi, [3, 5, 5, 5, 5, 5])
    support = detect.Support.from_convolutions([(1, 1, 3, 5, 0)], (12, 7))
    assert support.box(6, 1) == (5, 7, 0, 2) and support.box(3, 1) is None
    assert support.empty()[3].all() and not support.empty()[6, :3].any()


TINY_SPECS = [(3, 4, 3, 1, 0), (4, 3, 3, 3, 0)]


def test_packed_rows_are_the_rows_computed_alone():
    model, x = Tiny(), tiny_image()
    support = detect.Support.from_convolutions(TINY_SPECS, (12, 12))
    # Bit for bit with dense convolutions (sparse ones crop differently, so round differently).
    engine = detect.SecondDerivativeRows(model, x, support=support, sparse=False)
    # Layer-2 units see pixels 0..4, 3..7 and 6..10 on each axis; pixel 4 is seen by two.
    assert support.box(4, 4) == (0, 7, 0, 7) and support.box(11, 0) is None
    pixels = [(1, 1), (1, 10), (10, 1)]
    boxes = [support.box(*p) for p in pixels]
    assert boxes == [(0, 4, 0, 4), (0, 4, 6, 10), (6, 10, 0, 4)]
    packed = engine.packed_rows([pixels])
    assert engine.passes == 2  # the packed pass and, once per image, a check of its first row
    for p, row in zip(pixels, packed):
        numpy.testing.assert_array_equal(row.full((12, 12)), engine.rows([p])[0])


def test_packing_gives_the_same_groups():
    model, x = Tiny(), tiny_image()
    threshold = middle_threshold(model, x)
    support = detect.Support.from_convolutions(TINY_SPECS, (12, 12))
    plain = detect.detect(model, x, threshold=threshold, count=10, support=None, sparse=False)
    packed = detect.detect(model, x, threshold=threshold, count=10, support=support,
                           sparse=False)
    assert same_groups(plain, packed)
    for a, b in zip(plain, packed):
        numpy.testing.assert_array_equal(a.importance, b.importance)
    assert packed.passes < plain.passes == 10
    assert same_groups(plain, detect.detect(model, x, threshold=threshold, count=10, batch=3,
                                            support=support))


def test_unseen_pixels_cost_no_pass():
    model, x = Tiny(), tiny_image()
    support = detect.Support.from_convolutions(TINY_SPECS, (12, 12))
    # An unreachable threshold: every group is empty and every pixel becomes a seed in turn.
    plain = detect.detect(model, x, threshold=1e9, count=144, support=None)
    packed = detect.detect(model, x, threshold=1e9, count=144, support=support)
    assert len(plain) == 144 and same_groups(plain, packed)
    assert plain.passes == 144
    # Row 11 and column 11 feed no unit (23 pixels): zero saliency, zero rows, no pass.
    unseen = [g for g in packed if g.seed[0] == 11 or g.seed[1] == 11]
    assert len(unseen) == 23 and all(packed.saliency[g.seed] == 0 for g in unseen)
    assert packed.passes <= 144 - 23 + 1


def test_packing_falls_back_when_the_boxes_are_wrong():
    model, x = Tiny(), tiny_image()
    threshold = middle_threshold(model, x)
    wrong = detect.Support.from_convolutions([(3, 3, 1, 1, 0)], (12, 12))  # 1-pixel boxes
    plain = detect.detect(model, x, threshold=threshold, count=6, support=None)
    with pytest.warns(UserWarning, match='leak'):
        packed = detect.detect(model, x, threshold=threshold, count=6, support=wrong)
    assert same_groups(plain, packed)


def test_counter_support_is_derived_and_exact(recwarn):
    from Counting.models import build_counter
    numpy.random.seed(0)
    model = build_counter('convolutional', 'softplus')
    rng = numpy.random.RandomState(0)
    x = numpy.zeros((3, 300, 300), numpy.float32)
    x[2, 40:90, 30:80] = 255
    x[2, 150:260, 180:230] = 255
    x += rng.uniform(0, 5, x.shape).astype(numpy.float32)
    with chainer.using_config('train', False):
        model(x[None])
    model.fc.b.array[:] = 5.0
    support = detect.Support.of_model(model, (300, 300))
    # The last convolution's units see pixels 0..86, 125..211 and 250..299 on each axis.
    assert support.box(50, 130) == (0, 86, 125, 211) and support.box(100, 50) is None
    assert support.box(299, 299) is None  # (11 - 3) // 5 + 1 = 2 units: a 2 x 2 last map
    assert detect.Support.of_model(Tiny(), (12, 12)) is None
    plain = detect.detect(model, x, count=6, support=None, sparse=False)
    packed = detect.detect(model, x, count=6)
    assert same_groups(plain, packed) and len(packed) == 6
    assert packed.passes < plain.passes
    assert same_groups(plain, detect.detect(model, x, count=6, support=None, sparse=True))
    assert not [w for w in recwarn if 'leak' in str(w.message)]


def test_relu_has_no_second_derivative():
    model, x = Tiny(activation=F.relu), tiny_image()
    with pytest.raises(detect.SecondDerivativeError) as e:
        detect.detect(model, x, count=2)
    message = str(e.value)
    assert '\n' not in message
    for word in ('smooth activation', 'softplus', 'sigmoid', '--method upper', 'kmeans'):
        assert word in message
    # The first-derivative variants work on it.
    assert len(detect.detect(model, x, method='kmeans', count=2)) >= 1
    assert len(detect.detect(model, x, method='upper', count=2)) >= 1


def test_bad_arguments():
    model, x = Tiny(), tiny_image()
    with pytest.raises(ValueError, match='unknown method'):
        detect.detect(model, x, method='third')
    with pytest.raises(ValueError, match='threshold'):
        detect.detect(model, x, threshold=-1)
    with pytest.raises(ValueError, match='batch'):
        detect.detect(model, x, batch=0, count=1)
    with pytest.raises(ValueError, match='lower'):
        detect.detect(model, x, method='upper', lower=0.6, upper=0.5, count=1)


# ---------------------------------------------------------------------------------------------
# First-derivative variants

def test_kmeans_keeps_the_middle_cluster():
    rng = numpy.random.RandomState(0)
    low = rng.normal(0, 0.1, 100)
    mid = rng.normal(10, 0.1, 40)
    high = rng.normal(100, 0.1, 15)
    values = numpy.concatenate([low, mid, high])
    order = rng.permutation(len(values))
    centres, labels = detect.kmeans(values[order], k=3, seed=0)
    numpy.testing.assert_allclose(centres[:, 0], [low.mean(), mid.mean(), high.mean()])
    truth = numpy.repeat([0, 1, 2], [100, 40, 15])[order]
    numpy.testing.assert_array_equal(labels, truth)
    sal = numpy.abs(values[order]).reshape(5, 31)
    numpy.testing.assert_array_equal(detect.kmeans_middle(sal, seed=3),
                                     (truth == 1).reshape(5, 31))


def test_kmeans_is_deterministic_and_spaces_differ():
    rng = numpy.random.RandomState(2)
    sal = rng.exponential(1.0, (20, 20)) ** 4
    a = detect.kmeans_middle(sal, seed=7)
    numpy.testing.assert_array_equal(a, detect.kmeans_middle(sal, seed=7))
    # In the tenth-root space the clusters split the heavy tail differently.
    assert detect.kmeans_middle(sal, 'root').sum() > a.sum()
    with pytest.raises(ValueError, match='distinct'):
        detect.kmeans(numpy.array([1.0, 1.0, 2.0]), k=3)
    with pytest.raises(ValueError, match='space'):
        detect.kmeans_middle(sal, 'cube')


def _is_fixed_point(values, centres, labels):
    """Every centre is the mean of its members and every value is nearest to its own centre:
    one more Lloyd step would change nothing."""
    means = [values[labels == j].mean() for j in range(len(centres))]
    nearest = numpy.abs(values[:, None] - centres[None, :]).argmin(axis=1)
    return (numpy.allclose(centres, means, rtol=1e-12, atol=0)
            and numpy.array_equal(nearest, labels))


def test_kmeans_runs_to_a_fixed_point():
    # Evenly spaced values: Lloyd's steps move the boundaries slowly, and kmeans2's default ten
    # steps stop before they settle (checked below), so this needs the run to convergence.
    values = numpy.arange(3000.0)
    short_centres, short_labels = kmeans2(values[:, None], 3, minit='++', seed=0)
    assert not _is_fixed_point(values, short_centres[:, 0], short_labels)
    centres, labels = detect.kmeans(values, k=3, seed=0)
    assert list(centres[:, 0]) == sorted(centres[:, 0])
    assert _is_fixed_point(values, centres[:, 0], labels)


class Fixed(chainer.Chain):
    """out = sum(w * x) with a hand-chosen w, so the saliency map is |w|."""

    def __init__(self, w, bias):
        super().__init__()
        self.bias = bias
        with self.init_scope():
            self.w = chainer.Parameter(numpy.asarray(w, numpy.float32))

    def forward(self, x):
        return F.sum(x * F.broadcast_to(self.w, x.shape), axis=(1, 2, 3))[:, None] + self.bias


def test_upper_keeps_blobs_between_the_bounds():
    w = numpy.zeros((1, 3, 8, 10), numpy.float32)
    w[0, 0, 1:3, 1:4] = 0.3      # blob A, 6 pixels, kept
    w[0, 0, 5:7, 5:9] = 0.2      # blob B, 8 pixels, kept
    w[0, 1, 0, 9] = 1.0          # the maximum: above the upper bound
    w[0, 2, 7, 0] = 0.01         # below the lower bound
    model = Fixed(w, bias=0.0)
    x = numpy.zeros((3, 8, 10), numpy.float32)
    found = detect.detect(model, x, method='upper', upper=0.5, lower=0.05, count=5)
    assert [g.box for g in found] == [[5, 5, 8, 6], [1, 1, 3, 2]]  # largest blob first
    assert found[0].seed == (5, 5) and found[1].seed == (1, 1)
    numpy.testing.assert_allclose(found[1].importance[1:3, 1:4], 0.3)
    assert found[1].importance.sum() == pytest.approx(6 * 0.3)
    only_one = detect.detect(model, x, method='upper', upper=0.5, lower=0.05, count=1)
    assert [g.box for g in only_one] == [[5, 5, 8, 6]]
    assert detect.detect(model, x, method='upper', count=5, min_size=7).boxes == [[5, 5, 8, 6]]


# ---------------------------------------------------------------------------------------------
# Scoring

def test_box_iou_by_hand():
    assert detect.box_iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1.0
    assert detect.box_iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150)
    assert detect.box_iou([0, 0, 4, 4], [4, 0, 8, 4]) == pytest.approx(5 / 45)  # one shared column
    assert detect.box_iou([0, 0, 4, 4], [5, 0, 9, 4]) == 0.0
    assert detect.box_iou([3, 3, 3, 3], [3, 3, 3, 3]) == 1.0


def test_greedy_matching_and_scores_by_hand():
    truth = [[0, 0, 9, 9], [20, 0, 29, 9]]
    predicted = [[0, 0, 9, 7],     # IoU 0.8 with truth 0
                 [0, 0, 9, 8],     # IoU 0.9 with truth 0: matched first
                 [20, 0, 29, 4],   # IoU 0.5 with truth 1: just enough
                 [50, 50, 60, 60]]
    matches = detect.match_boxes(predicted, truth)
    assert [(i, j) for i, j, _ in matches] == [(1, 0), (2, 1)]
    score = detect.score_boxes(predicted, truth)
    assert score['matched'] == 2 and score['predicted'] == 4 and score['truth'] == 2
    assert score['precision'] == 0.5 and score['recall'] == 1.0
    assert score['mean_iou'] == pytest.approx(0.7)
    strict = detect.score_boxes(predicted, truth, iou_threshold=0.85)
    assert strict['matched'] == 1 and strict['mean_iou'] == pytest.approx(0.9)
    empty = detect.score_boxes([], truth)
    assert empty['precision'] is None and empty['recall'] == 0.0 and empty['mean_iou'] is None
    pooled = detect.combine_scores([score, detect.score_boxes([], [[0, 0, 1, 1]] * 3)])
    assert pooled['precision'] == 0.5 and pooled['recall'] == pytest.approx(2 / 5)
    assert pooled['mean_iou'] == pytest.approx(0.7) and pooled['images'] == 2


def test_boxes_picture_draws_red_boxes():
    image = numpy.zeros((3, 20, 20), numpy.float32)
    pic = detect.boxes_picture(image, [[2, 3, 10, 12]], [[0, 0, 19, 19]])
    assert pic.shape == (20, 20, 3) and pic.dtype == numpy.uint8
    assert tuple(pic[3, 6]) == (255, 0, 0) and tuple(pic[12, 2]) == (255, 0, 0)
    assert tuple(pic[0, 10]) == (0, 255, 0)
    assert tuple(pic[7, 6]) == (0, 0, 0)


# ---------------------------------------------------------------------------------------------
# Command line

def make_run(path, activation='softplus', size=90):
    from Counting.models import build_counter
    numpy.random.seed(0)
    model = build_counter('convolutional', activation)
    with chainer.using_config('train', False):
        model(numpy.zeros((1, 3, size, size), numpy.float32))
    model.fc.b.array[:] = 1.0
    os.makedirs(path, exist_ok=True)
    chainer.serializers.save_npz(os.path.join(path, 'model.npz'), model)
    with open(os.path.join(path, 'settings.json'), 'w') as f:
        json.dump({'arch': 'convolutional', 'activation': activation, 'base': 1.1,
                   'batch_renorm': False, 'types': ['tri', 'sq'],
                   'image_size': [size, size]}, f)
    return model


def make_images(path, size=90):
    os.makedirs(path, exist_ok=True)
    im = Image.new('RGB', (size, size))
    draw = ImageDraw.Draw(im)
    square = [(10, 10), (40, 10), (40, 40), (10, 40)]
    triangle = [(50, 50), (80, 50), (50, 80)]
    for poly in (square, triangle):
        draw.polygon(poly, fill=(0, 0, 255), outline=(0, 0, 255))
    im.save(os.path.join(path, '0000.png'))
    with open(os.path.join(path, 'annotations.json'), 'w') as f:
        json.dump({'0000.png': [{'type': 'sq', 'polygon': square, 'box': [10, 10, 40, 40]},
                                {'type': 'tri', 'polygon': triangle, 'box': [50, 50, 80, 80]}]},
                  f)


def test_cli_second_derivative(tmp_path):
    model = make_run(str(tmp_path / 'run'))
    make_images(str(tmp_path / 'images'))
    out = tmp_path / 'out'
    rc = detect.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                      '--out', str(out), '--count', '2', '--threshold', '1e-9',
                      '--device', '@numpy'])
    assert rc == 0
    assert sorted(os.listdir(out)) == [
        '0000_boxes.png', '0000_group0_importance.png', '0000_group0_mask.png',
        '0000_group1_importance.png', '0000_group1_mask.png', 'detections.json']
    with open(out / 'detections.json') as f:
        result = json.load(f)
    entry = result['images']['0000.png']
    x = saliency.load_image(str(tmp_path / 'images' / '0000.png'))
    expected = detect.detect(model, x, threshold=1e-9, count=2)
    assert [g['box'] for g in entry['groups']] == [g.box for g in expected]
    assert [g['seed'] for g in entry['groups']] == [[g.seed[1], g.seed[0]] for g in expected]
    for k, group in enumerate(expected):
        mask = numpy.asarray(Image.open(out / '0000_group{}_mask.png'.format(k)))
        numpy.testing.assert_array_equal(mask == 255, group.mask)
        numpy.testing.assert_array_equal(
            numpy.asarray(Image.open(out / '0000_group{}_importance.png'.format(k))),
            saliency.saliency_picture(group.importance))
    assert entry['truth_boxes'] == [[10, 10, 40, 40], [50, 50, 80, 80]]
    assert entry['score'] == detect.score_boxes(expected.boxes, entry['truth_boxes'])
    assert result['scores']['truth'] == 2 and result['scores']['images'] == 1
    assert result['settings']['method'] == 'second'


def test_cli_relu_run_refuses_second_but_runs_kmeans(tmp_path, capsys):
    make_run(str(tmp_path / 'run'), activation='relu')
    make_images(str(tmp_path / 'images'))
    args = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
            '--out', str(tmp_path / 'out'), '--count', '2', '--device', '@numpy']
    assert detect.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('error: ') and 'ReLU' in err[-1] and 'smooth activation' in err[-1]
    assert detect.main(args + ['--method', 'kmeans']) == 0
    with open(tmp_path / 'out' / 'detections.json') as f:
        assert json.load(f)['settings']['method'] == 'kmeans'


def test_cli_errors(tmp_path, capsys):
    make_images(str(tmp_path / 'images'))
    base = ['--images', str(tmp_path / 'images'), '--out', str(tmp_path / 'out')]
    with pytest.raises(SystemExit) as e:
        detect.main(['--run', str(tmp_path / 'missing')] + base)
    assert e.value.code == 2 and 'missing' in capsys.readouterr().err
    make_run(str(tmp_path / 'run'))
    with pytest.raises(SystemExit):
        detect.main(['--run', str(tmp_path / 'run'), '--threshold', '-1'] + base)
    assert 'threshold' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        detect.main(['--run', str(tmp_path / 'run'), '--annotations',
                     str(tmp_path / 'none.json')] + base)
    assert 'none.json' in capsys.readouterr().err
    make_run(str(tmp_path / 'run100'), size=100)
    assert detect.main(['--run', str(tmp_path / 'run100')] + base) == 2
    assert 'trained on 100x100' in capsys.readouterr().err


@pytest.mark.gpu
def test_upper_on_gpu_labels_on_the_device_and_matches_cpu():
    w = numpy.zeros((1, 3, 8, 10), numpy.float32)
    w[0, 0, 1:3, 1:4] = 0.3
    w[0, 0, 5:7, 5:9] = 0.2
    w[0, 1, 0, 9] = 1.0
    model = Fixed(w, bias=0.0)
    x = numpy.zeros((3, 8, 10), numpy.float32)
    cpu = detect.detect(model, x, method='upper', count=5)
    model.to_device('@cupy:0')
    gpu = detect.detect(model, model.device.send(x), method='upper', count=5)
    assert gpu.boxes == cpu.boxes == [[5, 5, 8, 6], [1, 1, 3, 2]]


@pytest.mark.gpu
def test_detect_on_gpu_runs_and_matches_cpu_saliency():
    model, x = Tiny(), tiny_image()
    threshold = middle_threshold(model, x)
    cpu = detect.detect(model, x, threshold=threshold, count=4)
    model.to_device('@cupy:0')
    gpu = detect.detect(model, x, threshold=threshold, count=4, batch=3)
    numpy.testing.assert_allclose(gpu.saliency, cpu.saliency, rtol=1e-5)
    assert len(gpu) == 4 and gpu[0].seed == cpu[0].seed


@pytest.mark.slow
def test_detection_benchmark_runs_and_finds_the_same_groups():
    from Counting import bench_detection
    text = bench_detection.run(archs=('convolutional',), groups=3, batches=(2,), progress=False)
    rows = [line for line in text.splitlines() if line.startswith('| convolutional |')]
    assert len(rows) == 6  # one step, thesis loop, kept graph, sparse, packed, K = 2
    assert all(row.rstrip().endswith('| yes |') for row in rows[1:])


# ---------------------------------------------------------------------------------------------
# Automatic thresholds

def test_auto_threshold_rules_by_hand():
    importance = numpy.array([[0.0, 1.0, 2.0], [4.0, 8.0, 10.0]], numpy.float32)
    free = numpy.array([[True, True, True], [True, False, True]])
    assert detect.auto_threshold(importance, free, 'fraction', 0.25) == 2.5
    assert detect.auto_threshold(importance, free, 'fraction') == 1.0  # default level 0.1
    assert detect.auto_threshold(importance, free) == 3.0  # default: the median of 1, 2, 4, 10
    # Non-zero free values 1, 2, 4, 10: their median is 3.
    assert detect.auto_threshold(importance, free, 'quantile', 0.5) == 3.0
    assert detect.auto_threshold(numpy.zeros((2, 2)), numpy.ones((2, 2), bool)) == numpy.inf
    with pytest.raises(ValueError, match='rule'):
        detect.auto_threshold(importance, free, 'otsu')
    with pytest.raises(ValueError, match='level'):
        detect.auto_threshold(importance, free, 'fraction', 1.5)


@pytest.mark.parametrize('rule,level', [('fraction', 0.3), ('quantile', 0.8)])
def test_auto_threshold_is_the_loop_with_each_groups_own_cut(rule, level):
    # The thesis's loop written out, with the threshold of each group computed by hand from its
    # own importance row.
    model, x = Tiny(), tiny_image()
    found = detect.detect(model, x, threshold='auto', count=3, auto_rule=rule, auto_level=level)
    engine = detect.SecondDerivativeRows(model, x)
    assigned = numpy.zeros(x.shape[1:], bool)
    sal = engine.saliency
    assert len(found) == 3
    for group in found:
        p = numpy.unravel_index(numpy.where(assigned, -numpy.inf, sal).argmax(), sal.shape)
        assert group.seed == tuple(int(v) for v in p)
        row = engine.rows([p])[0]
        if rule == 'fraction':
            cut = level * row.max()
        else:
            cut = numpy.quantile(row[~assigned & (row > 0)], level)
        mask = (row >= cut) & ~assigned
        numpy.testing.assert_array_equal(group.mask, mask)
        assigned |= mask
        assigned[p] = True


def test_cli_auto_threshold_and_picture_limit(tmp_path):
    make_run(str(tmp_path / 'run'))
    make_images(str(tmp_path / 'images'))
    out = tmp_path / 'out'
    rc = detect.main(['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
                      '--out', str(out), '--count', '2', '--threshold', 'auto',
                      '--auto-rule', 'quantile', '--pictures', '0', '--device', '@numpy'])
    assert rc == 0
    assert os.listdir(out) == ['detections.json']
    with open(out / 'detections.json') as f:
        result = json.load(f)
    assert result['settings']['threshold'] == 'auto'
    assert result['settings']['auto_rule'] == 'quantile'
    assert result['settings']['auto_level'] == detect.AUTO_LEVELS['quantile']
    assert result['scores']['truth'] == 2


def test_cli_bad_auto_options(tmp_path, capsys):
    make_images(str(tmp_path / 'images'))
    make_run(str(tmp_path / 'run'))
    base = ['--run', str(tmp_path / 'run'), '--images', str(tmp_path / 'images'),
            '--out', str(tmp_path / 'out')]
    for extra, needle in ((['--threshold', 'automatic'], 'auto'),
                          (['--threshold', 'auto', '--auto-level', '2'], '--auto-level'),
                          (['--pictures', '-1'], '--pictures')):
        with pytest.raises(SystemExit) as e:
            detect.main(base + extra)
        err = capsys.readouterr().err
        assert e.value.code == 2 and needle in err and 'Traceback' not in err


def test_kmeans_on_a_flat_saliency_finds_nothing():
    # An image that the counter does not react to (saliency zero everywhere) has nothing to
    # cluster: no groups, instead of an error that would stop the whole run.
    class Flat(chainer.Chain):
        def forward(self, x):
            return F.relu(F.sum(x * 0, axis=(2, 3))[:, :2] + 1)

    found = detect.detect(Flat(), numpy.zeros((3, 8, 8), numpy.float32), method='kmeans')
    assert found.count == 2 and len(found) == 0
