import numpy
import pytest
import shapely
from shapely import affinity

from Counting.datasets import shapes


@pytest.mark.parametrize('kind', shapes.TYPES)
@pytest.mark.parametrize('scale,angle', [(1, 0), (7, 90), (60, 33), (120, 271), (15, 359)])
def test_transform_template_matches_shapely_affinity(kind, scale, angle):
    # The original generator's calls, with Shapely's default origin (the box centre).
    poly = shapely.Polygon(shapes.TEMPLATES[kind])
    expected = affinity.scale(affinity.rotate(poly, angle), scale, scale)
    got = shapes.transform_template(kind, scale, angle)
    numpy.testing.assert_allclose(got, numpy.asarray(expected.exterior.coords)[:-1],
                                  rtol=0, atol=1e-9)


def test_transform_template_keeps_size():
    sq = shapes.transform_template('sq', 10, 30)
    sides = numpy.linalg.norm(numpy.roll(sq, -1, axis=0) - sq, axis=1)
    numpy.testing.assert_allclose(sides, 10.0)
    tri = shapes.transform_template('tri', 10, 30)
    assert shapely.Polygon(tri).area == pytest.approx(50.0)


def test_offset_range_is_exactly_the_inside_set():
    rng = numpy.random.default_rng(0)
    width, height = 23, 17
    canvas = shapely.box(0, 0, width, height)
    for _ in range(40):
        kind = shapes.TYPES[rng.integers(2)]
        template = shapes.transform_template(kind, int(rng.integers(1, 20)),
                                             int(rng.integers(0, 360)))
        lo, hi = template.min(axis=0), template.max(axis=0)
        xr = shapes.offset_range(lo[0], hi[0], width)
        yr = shapes.offset_range(lo[1], hi[1], height)
        inside = {(dx, dy) for dx in range(width + 1) for dy in range(height + 1)
                  if canvas.contains(shapely.Polygon(template + (dx, dy)))}
        ours = {(dx, dy) for dx in range(xr[0], xr[1] + 1) for dy in range(yr[0], yr[1] + 1)}
        assert ours == inside


def test_offset_range_empty_when_too_big():
    first, last = shapes.offset_range(-5.0, 30.0, 20)
    assert first > last


def test_count_combinations():
    two = shapes.count_combinations(('tri', 'sq'), 4)
    assert len(two) == 15 == len(set(two))
    assert all(a + b <= 4 and a >= 0 and b >= 0 for a, b in two)
    assert shapes.count_combinations(('sq',), 3) == [(0,), (1,), (2,), (3,)]
    assert shapes.count_combinations(['sq', 'tri'], 0) == [(0, 0)]


def test_check_types():
    assert shapes.check_types(['sq', 'tri']) == ('tri', 'sq')
    assert shapes.check_types('sq') == ('sq',)
    for bad in (['circle'], [], ['sq', 'sq']):
        with pytest.raises(ValueError, match='shape types'):
            shapes.check_types(bad)


def _bfs_count(mask):
    # Independent reference: plain breadth-first search over 8 neighbours.
    seen = numpy.zeros_like(mask, dtype=bool)
    n = 0
    h, w = mask.shape
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not seen[y, x]:
                n += 1
                stack = [(y, x)]
                seen[y, x] = True
                while stack:
                    cy, cx = stack.pop()
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            ny, nx = cy + dy, cx + dx
                            if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                                seen[ny, nx] = True
                                stack.append((ny, nx))
    return n


def test_label_blobs_hand_made():
    mask = numpy.array([
        [1, 1, 0, 0, 1],
        [0, 0, 1, 0, 1],
        [0, 0, 0, 0, 0],
        [1, 0, 1, 1, 0],
        [0, 1, 0, 0, 0],
    ], dtype=bool)
    labels, n = shapes.label_blobs(mask)
    # {(0,0),(0,1),(1,2)} diagonal chain; {(0,4),(1,4)}; {(3,0),(4,1),(3,2),(3,3)} via diagonals.
    assert n == 3
    assert labels[0, 0] == labels[0, 1] == labels[1, 2] == 1
    assert labels[0, 4] == labels[1, 4] == 2
    assert labels[3, 0] == labels[4, 1] == labels[3, 2] == labels[3, 3] == 3
    assert (labels[~mask] == 0).all()
    assert shapes.blob_boxes(mask) == [(0, 0, 2, 1), (4, 0, 4, 1), (0, 3, 3, 4)]


def test_label_blobs_matches_bfs_on_random_masks():
    rng = numpy.random.default_rng(1)
    for density in (0.2, 0.45, 0.6):
        mask = rng.random((37, 41)) < density
        labels, n = shapes.label_blobs(mask)
        assert n == _bfs_count(mask)
        assert set(numpy.unique(labels[mask])) == set(range(1, n + 1))
    assert shapes.label_blobs(numpy.zeros((5, 5), bool))[1] == 0


@pytest.mark.gpu
def test_label_blobs_of_a_cupy_mask_stays_on_the_gpu_and_matches():
    import cupy
    rng = numpy.random.default_rng(3)
    for density in (0.2, 0.45, 0.6):
        mask = rng.random((37, 41)) < density
        labels, n = shapes.label_blobs(cupy.asarray(mask))
        assert isinstance(labels, cupy.ndarray)
        cpu_labels, cpu_n = shapes.label_blobs(mask)
        assert n == cpu_n == _bfs_count(mask)
        # Numbered alike: by each component's first pixel in row-major order.
        numpy.testing.assert_array_equal(cupy.asnumpy(labels), cpu_labels)


def test_pixel_box_holds_every_drawn_pixel_and_reach():
    # The two measured facts the generator relies on: Pillow's pixels of one polygon lie in
    # pixel_box, and their centres lie within RASTER_REACH of the true polygon.
    rng = numpy.random.default_rng(2)
    for _ in range(150):
        kind = shapes.TYPES[rng.integers(2)]
        template = shapes.transform_template(kind, int(rng.integers(1, 40)),
                                             int(rng.integers(0, 360)))
        vertices = template - template.min(axis=0) + rng.uniform(2, 8, size=2)
        image = shapes.draw_shapes((60, 60), [vertices], (0, 0, 255))
        mask = shapes.shape_mask(image, (0, 0, 255))
        ys, xs = numpy.nonzero(mask)
        x0, y0, x1, y1 = shapes.pixel_box(vertices, (60, 60))
        assert xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1
        centres = shapely.points(numpy.stack([xs + 0.5, ys + 0.5], axis=1))
        assert shapely.distance(shapely.Polygon(vertices), centres).max() <= shapes.RASTER_REACH


def test_draw_shapes_colour_and_background():
    image = shapes.draw_shapes((20, 10), [numpy.array([[2.0, 2.0], [8.0, 2.0], [8.0, 8.0],
                                                       [2.0, 8.0]])], (10, 200, 30))
    array = numpy.asarray(image)
    assert image.mode == 'RGB' and array.shape == (10, 20, 3)
    colours = {tuple(c) for c in array.reshape(-1, 3)}
    assert colours == {(0, 0, 0), (10, 200, 30)}
    # Fill and outline: the axis-aligned square covers pixels 2..8 in both directions.
    assert shapes.shape_mask(image, (10, 200, 30)).sum() == 49


def test_mask_drawing_gives_the_same_pixels_as_rgb_drawing():
    rng = numpy.random.default_rng(3)
    polygons = [shapes.transform_template(shapes.TYPES[rng.integers(2)],
                                          int(rng.integers(3, 30)), int(rng.integers(0, 360)))
                + rng.uniform(20, 80, size=2) for _ in range(12)]
    for color in ((0, 0, 255), (200, 17, 3)):
        rgb = numpy.asarray(shapes.draw_shapes((100, 90), polygons, color))
        mask = shapes.draw_mask((100, 90), polygons)
        assert mask.shape == (90, 100) and set(numpy.unique(mask)) == {0, 1}
        numpy.testing.assert_array_equal(shapes.color_mask(mask, color), rgb)
