"""Tests of the dataset generator (Counting.datasets.generator)."""
import filecmp
import json
import os

import numpy
import pytest
import shapely
from PIL import Image

from Counting.datasets import generator, shapes
from Counting.datasets.generator import ShapeFitError, generate_dataset


COLOR = (0, 0, 255)


def _mask(folder, name):
    with Image.open(os.path.join(folder, name)) as image:
        assert image.mode == 'RGB'
        return shapes.shape_mask(image, COLOR)


def _scales_and_edges(polygon):
    vertices = numpy.asarray(polygon)
    edges = numpy.roll(vertices, -1, axis=0) - vertices
    lengths = numpy.linalg.norm(edges, axis=1)
    # The square's sides and the triangle's legs are the scale; the hypotenuse is sqrt(2) x.
    return lengths.min(), edges


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('gen0'))
    generate_dataset(folder, 30, image_size=(160, 120), shape_limit=8, scale=(10, 24),
                     seed=5, workers=1, progress=False)
    return folder


@pytest.fixture(scope='module')
def gapped(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('gen2'))
    generate_dataset(folder, 30, image_size=(160, 120), shape_limit=8, scale=(8, 20),
                     min_gap=2, seed=6, workers=1, progress=False)
    return folder


def test_files_and_names(helpers, small):
    truths, annotations = helpers.dataset_json(small)
    names = ['{:04d}.png'.format(i) for i in range(30)]
    assert sorted(truths) == names == sorted(annotations)
    assert all(os.path.exists(os.path.join(small, n)) for n in names)
    assert all(set(t) == {'tri', 'sq'} for t in truths.values())
    with open(os.path.join(small, 'settings.json')) as f:
        settings = json.load(f)
    assert settings['image_size'] == [160, 120] and settings['seed'] == 5
    assert not [n for n in os.listdir(small) if n.startswith('.')]  # no temporary files left
    assert generator.image_name(5, 10000) == '0005.png'
    assert generator.image_name(5, 10001) == '00005.png'


def test_truths_match_annotations_and_polygons_are_placed_by_the_rule(helpers, small):
    truths, annotations = helpers.dataset_json(small)
    canvas = shapely.box(0, 0, 160, 120)
    for name, shapes_ in annotations.items():
        assert sum(truths[name].values()) <= 8
        for kind in ('tri', 'sq'):
            assert truths[name][kind] == sum(a['type'] == kind for a in shapes_)
        polys = [shapely.Polygon(a['polygon']) for a in shapes_]
        for a, poly in zip(shapes_, polys):
            assert len(a['polygon']) == (3 if a['type'] == 'tri' else 4)
            assert canvas.contains(poly)
            # The box is the floor of the bounds, clipped to the pixels of the canvas.
            expected = numpy.floor(poly.bounds).astype(int)
            expected = numpy.minimum(numpy.maximum(expected, 0), [159, 119, 159, 119])
            assert a['box'] == expected.tolist()
        for i in range(len(polys)):
            for j in range(i):
                assert not polys[i].intersects(polys[j])


def test_blobs_never_exceed_count_and_lie_in_boxes(helpers, small):
    truths, annotations = helpers.dataset_json(small)
    for name in truths:
        mask = _mask(small, name)
        boxes = [a['box'] for a in annotations[name]]
        blobs = shapes.blob_boxes(mask)
        assert len(blobs) <= sum(truths[name].values())
        # Every drawn pixel lies in some annotated box.
        covered = numpy.zeros_like(mask)
        for x0, y0, x1, y1 in boxes:
            covered[y0:y1 + 1, x0:x1 + 1] = True
        assert not (mask & ~covered).any()


def test_min_gap_gives_one_blob_per_shape(helpers, gapped):
    truths, annotations = helpers.dataset_json(gapped)
    total = 0
    for name in truths:
        mask = _mask(gapped, name)
        blobs = shapes.blob_boxes(mask)
        n = sum(truths[name].values())
        total += n
        assert len(blobs) == n
        # Each blob inside the box of its own shape, and each box holds one blob.
        boxes = [a['box'] for a in annotations[name]]
        matched = set()
        for bx0, by0, bx1, by1 in blobs:
            inside = [k for k, (x0, y0, x1, y1) in enumerate(boxes)
                      if x0 <= bx0 and y0 <= by0 and bx1 <= x1 and by1 <= y1]
            assert len(inside) >= 1
            matched.update(inside)
        assert matched == set(range(n))
        polys = [shapely.Polygon(a['polygon']) for a in annotations[name]]
        for i in range(len(polys)):
            for j in range(i):
                assert polys[i].distance(polys[j]) >= 2 + 2 * shapes.RASTER_REACH - 1e-9
    assert total > 60  # the check saw many shapes


def test_merges_happen_without_gap_but_not_with_it(helpers, tmp_path):
    # Crowded small canvas: with the thesis's rule shapes touch once drawn.
    merged = {}
    for gap in (0, 2):
        folder = str(tmp_path / str(gap))
        generate_dataset(folder, 25, image_size=(100, 100), types=('sq',), shape_limit=10,
                         scale=(6, 12), min_gap=gap, seed=1, workers=1, progress=False)
        truths, _ = helpers.dataset_json(folder)
        merged[gap] = sum(len(shapes.blob_boxes(_mask(folder, n))) < t['sq']
                          for n, t in truths.items())
    assert merged[2] == 0
    assert merged[0] > 0


def test_count_draw_is_uniform_over_combinations():
    combos = numpy.array(shapes.count_combinations(('tri', 'sq'), 3))  # 10 combinations
    rng = numpy.random.default_rng(3)
    draws = 20000
    index = {tuple(c): k for k, c in enumerate(combos)}
    hist = numpy.zeros(len(combos))
    for _ in range(draws):
        hist[index[tuple(generator.draw_counts(rng, combos))]] += 1
    expected = draws / len(combos)
    chi2 = ((hist - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # 99.9% quantile of chi-square with 9 degrees of freedom
    # A tri-only draw is uniform over 0..limit, not over bag contents.
    one = numpy.array(shapes.count_combinations(('tri',), 4))
    values = [int(generator.draw_counts(rng, one)[0]) for _ in range(5000)]
    counts = numpy.bincount(values, minlength=5)
    assert ((counts - 1000) ** 2 / 1000).sum() < 18.5  # 99.9% quantile, 4 degrees


def test_place_one_has_the_law_of_the_plain_rejection_loop():
    # The plain loop accepts offsets i.i.d. uniform over 0..W x 0..H conditioned on "inside the
    # canvas and intersecting no placed shape": uniform over that set. Enumerate the set with
    # Shapely and check that place_one's offsets fall in it, cover it and are uniform on it.
    width, height = 14, 12
    placed = [shapely.Polygon(shapes.transform_template('sq', 4, 20) + (5, 4)),
              shapely.Polygon(shapes.transform_template('tri', 3, 200) + (1, 8))]
    boxes = numpy.array([p.bounds for p in placed])
    template = shapes.transform_template('tri', 4, 45)
    canvas = shapely.box(0, 0, width, height)
    allowed = {(dx, dy) for dx in range(width + 1) for dy in range(height + 1)
               if canvas.contains(shapely.Polygon(template + (dx, dy)))
               and not any(shapely.Polygon(template + (dx, dy)).intersects(p) for p in placed)}
    assert 10 < len(allowed) < 100
    rng = numpy.random.default_rng(4)
    hist = {}
    n = 40 * len(allowed)
    for _ in range(n):
        offset = generator.place_one(rng, template, (width, height), boxes, placed)
        hist[offset] = hist.get(offset, 0) + 1
    assert set(hist) == allowed
    observed = numpy.array([hist[o] for o in sorted(allowed)], dtype=float)
    expected = n / len(allowed)
    chi2 = ((observed - expected) ** 2 / expected).sum()
    dof = len(allowed) - 1
    assert chi2 < dof + 4 * numpy.sqrt(2 * dof)  # mean + 4 standard deviations


def test_place_one_respects_clearance():
    placed = [shapely.Polygon(shapes.transform_template('sq', 10, 0) + (20, 20))]
    boxes = numpy.array([placed[0].bounds])
    template = shapes.transform_template('sq', 5, 30)
    rng = numpy.random.default_rng(0)
    for _ in range(300):
        dx, dy = generator.place_one(rng, template, (50, 50), boxes, placed, clearance=4.0)
        assert shapely.Polygon(template + (dx, dy)).distance(placed[0]) >= 4.0


def test_limit_scale_resampling_one_scale_per_image(helpers, tmp_path):
    generate_dataset(tmp_path / 'one', 12, image_size=(200, 200), shape_limit=6,
                     scale=(5, 15), limit_scale_resampling=True, seed=2, workers=1,
                     progress=False)
    generate_dataset(tmp_path / 'each', 12, image_size=(200, 200), shape_limit=6,
                     scale=(5, 15), seed=2, workers=1, progress=False)
    _, one = helpers.dataset_json(tmp_path / 'one')
    _, each = helpers.dataset_json(tmp_path / 'each')
    per_image_one = [{round(_scales_and_edges(a['polygon'])[0], 3) for a in s}
                     for s in one.values() if len(s) > 1]
    per_image_each = [{round(_scales_and_edges(a['polygon'])[0], 3) for a in s}
                      for s in each.values() if len(s) > 1]
    assert per_image_one and all(len(s) == 1 for s in per_image_one)
    assert any(len(s) > 1 for s in per_image_each)
    # One scale per image, yet images differ.
    assert len(set().union(*per_image_one)) > 1
    assert all(5 - 1e-6 <= v <= 15 + 1e-6 for s in per_image_each for v in s)


def test_no_shape_scaling_uses_lower_bound(helpers, tmp_path):
    generate_dataset(tmp_path, 8, image_size=(150, 150), shape_limit=6, scale=(7, 30),
                     shape_scaling=False, seed=0, workers=1, progress=False)
    _, ann = helpers.dataset_json(tmp_path)
    sizes = [_scales_and_edges(a['polygon'])[0] for s in ann.values() for a in s]
    assert sizes and numpy.allclose(sizes, 7.0)


def test_rotations(helpers, tmp_path):
    generate_dataset(tmp_path / 'fixed', 8, image_size=(150, 150), shape_limit=6,
                     scale=(8, 16), shape_rotations=False, seed=0, workers=1, progress=False)
    generate_dataset(tmp_path / 'turned', 8, image_size=(150, 150), shape_limit=6,
                     scale=(8, 16), seed=0, workers=1, progress=False)

    def axis_aligned(polygon):
        _, edges = _scales_and_edges(polygon)
        aligned = numpy.isclose(edges, 0, atol=1e-9).any(axis=1)
        return aligned.sum() >= 2  # the square's four sides, the triangle's two legs

    _, fixed = helpers.dataset_json(tmp_path / 'fixed')
    _, turned = helpers.dataset_json(tmp_path / 'turned')
    assert all(axis_aligned(a['polygon']) for s in fixed.values() for a in s)
    assert not all(axis_aligned(a['polygon']) for s in turned.values() for a in s)


def test_same_seed_same_bytes_for_any_workers(tmp_path):
    kwargs = dict(image_size=(96, 80), shape_limit=6, scale=(6, 14), progress=False)
    generate_dataset(tmp_path / 'a', 10, seed=11, workers=1, **kwargs)
    generate_dataset(tmp_path / 'b', 10, seed=11, workers=2, **kwargs)
    generate_dataset(tmp_path / 'c', 10, seed=12, workers=2, **kwargs)
    names = sorted(os.listdir(tmp_path / 'a'))
    assert len(names) == 13
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / 'a', tmp_path / 'b', names,
                                               shallow=False)
    assert match == names and not mismatch and not errors
    pngs = [n for n in names if n.endswith('.png')]
    match, mismatch, _ = filecmp.cmpfiles(tmp_path / 'a', tmp_path / 'c', pngs, shallow=False)
    assert len(mismatch) >= 8


@pytest.mark.parametrize('kwargs', [
    dict(image_size=(60, 60), types=('sq',), shape_limit=40, scale=(18, 20)),
    dict(image_size=(30, 30), scale=(40, 50)),
    dict(image_size=(80, 80), types=('sq',), shape_limit=30, scale=(8, 10), min_gap=10),
])
def test_impossible_settings_fail_quickly(tmp_path, kwargs):
    # Placement is bounded by max_attempts, so the generation ends with one line of advice
    # (its speed is not timed here: a timed test fails on a busy machine).
    with pytest.raises(ShapeFitError) as info:
        generate_dataset(tmp_path, 6, seed=0, workers=2, max_attempts=2000, progress=False,
                         **kwargs)
    message = str(info.value)
    assert message.startswith('image ') and 'cannot place' in message
    for option in ('--shape-limit', '--scale', '--image-size', '--min-gap'):
        assert option in message
    assert '\n' not in message
    assert not os.path.exists(tmp_path / 'truths.json')


@pytest.mark.parametrize('kwargs,match', [
    (dict(count=0), 'count'),
    (dict(scale=(5, 3)), 'scale'),
    (dict(types=('circle',)), 'shape types'),
    (dict(color=(0, 0, 0)), 'color'),
    (dict(min_gap=-1), 'min gap'),
    (dict(workers=0), 'workers'),
])
def test_bad_options(tmp_path, kwargs, match):
    args = dict(count=2, image_size=(50, 50), scale=(5, 8), progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        generate_dataset(tmp_path, **args)


@pytest.mark.slow
def test_thesis_sized_images(helpers, tmp_path):
    # The benchmark's setting: 1000 x 1000, up to 20 shapes of scale 60..120.
    for gap in (0, 2):
        folder = tmp_path / str(gap)
        generate_dataset(folder, 12, scale=(60, 120), min_gap=gap, seed=0, workers=2,
                         progress=False)
        truths, annotations = helpers.dataset_json(folder)
        for name, t in truths.items():
            blobs = shapes.blob_boxes(_mask(folder, name))
            if gap:
                assert len(blobs) == sum(t.values())
            else:
                assert len(blobs) <= sum(t.values())
