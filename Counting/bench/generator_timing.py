"""Benchmark of the Counting generator against the thesis's plain rejection loop (the command
line is ``python -m Counting.bench.generator``; a section of ``python -m Counting.bench``).

Setting: 1000 x 1000 images, both types, up to 20 shapes, scale 60..120 drawn per
shape, rotations on. Measures, side by side in one run:

* the reference: one process running the original rule the plain way (Shapely ``affinity`` to
  rotate, scale and translate; offsets uniform over the whole canvas; ``contains`` against the
  canvas and ``intersects`` against every placed shape; Pillow drawing; Pillow's PNG writer),
* :func:`Counting.datasets.generator.generate_dataset` with 1 and 2 worker processes, pool
  start-up, the JSON files and all included, at its default PNG level 1 and at zlib's default
  level 6,

and the share of images in which two shapes are drawn as one 8-connected blob, at ``min_gap`` 0
(the thesis's rule) and 2.
"""
import os
import random
import shutil
import sys
import tempfile
import time

import shapely
from shapely import affinity

from Counting.datasets import generator, shapes
from lenses_common.progress import Progress

IMAGE_SIZE = (1000, 1000)
SHAPE_LIMIT = 20
SCALE = (60, 120)


def reference_generate(out_dir, count, seed=0, image_size=IMAGE_SIZE, shape_limit=SHAPE_LIMIT,
                       scale=SCALE, color=(0, 0, 255)):
    """The original rule written plainly, one process; returns the truths dictionary."""
    rnd = random.Random(seed)
    width, height = image_size
    canvas = shapely.box(0, 0, width, height)
    combinations = shapes.count_combinations(shapes.TYPES, shape_limit)
    templates = {k: shapely.Polygon(v) for k, v in shapes.TEMPLATES.items()}
    truths = {}
    for index in range(count):
        n_tri, n_sq = rnd.choice(combinations)
        bag = ['tri'] * n_tri + ['sq'] * n_sq
        rnd.shuffle(bag)
        placed = []
        for kind in bag:
            size = rnd.randint(*scale)
            shape = affinity.rotate(templates[kind], rnd.randint(0, 359))
            shape = affinity.scale(shape, size, size)
            while True:
                moved = affinity.translate(shape, rnd.randint(0, width), rnd.randint(0, height))
                if canvas.contains(moved) and not any(moved.intersects(p) for p in placed):
                    break
            placed.append(moved)
        image = shapes.draw_shapes(image_size, [p.exterior.coords[:-1] for p in placed], color)
        name = generator.image_name(index, count)
        image.save(os.path.join(out_dir, name))
        truths[name] = {'tri': n_tri, 'sq': n_sq}
    return truths


def _timed(function, repeats):
    best = float('inf')
    for _ in range(repeats):
        folder = tempfile.mkdtemp(prefix='bench_generator_')
        try:
            start = time.perf_counter()
            function(folder)
            best = min(best, time.perf_counter() - start)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return best


def merge_share(count, min_gap, seed=0, progress=True):
    """Share of ``count`` images (benchmark setting) with fewer 8-connected blobs than shapes."""
    settings = generator._Settings(
        None, count, IMAGE_SIZE, shapes.TYPES, SHAPE_LIMIT, SCALE, True, True, False,
        (0, 0, 255), float(min_gap), seed, generator.DEFAULT_MAX_ATTEMPTS,
        generator.DEFAULT_PNG_LEVEL)
    merged = 0
    bar = Progress(count, desc='blobs, min gap {:g}'.format(min_gap), unit='img') \
        if progress else None
    for index in range(count):
        mask, truth, _ = generator.make_mask(index, settings)
        blobs = shapes.label_blobs(mask)[1]
        merged += blobs < sum(truth.values())
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return merged / count


def run(count=100, blob_count=300, repeats=3, progress=True):
    """Run the benchmark and return a Markdown section (also printed to stderr as it goes)."""
    def say(text):
        if progress:
            print(text, file=sys.stderr, flush=True)

    common = dict(image_size=IMAGE_SIZE, shape_limit=SHAPE_LIMIT, scale=SCALE, seed=0,
                  progress=False)
    say('generator benchmark: {} images of {}x{}, up to {} shapes, scale {}..{}, best of {}'
        .format(count, IMAGE_SIZE[0], IMAGE_SIZE[1], SHAPE_LIMIT, SCALE[0], SCALE[1], repeats))
    rows = []
    reference = _timed(lambda d: reference_generate(d, count), repeats)
    say('  reference (plain rejection loop, 1 process): {:.1f} images/s'.format(count / reference))
    rows.append(('thesis rule, plain loop (reference)', 1, reference))
    for level in (generator.DEFAULT_PNG_LEVEL, 6):
        for workers in (1, 2):
            seconds = _timed(lambda d: generator.generate_dataset(
                d, count, workers=workers, png_compress_level=level, **common), repeats)
            say('  Counting.generate, PNG level {}, {} worker(s): {:.1f} images/s'.format(
                level, workers, count / seconds))
            rows.append(('`Counting.generate --png-compress-level {}`'.format(level), workers,
                         seconds))
    shares = {gap: merge_share(blob_count, gap, progress=progress) for gap in (0, 2)}
    lines = [
        '## Counting dataset generator',
        '',
        '{} images of {}x{}, both types, up to {} shapes, scale {}..{} per shape, rotations on; '
        'best of {} runs, wall time including PNG writing (and, for `Counting.generate`, the '
        'worker pool start-up and the JSON files); {} CPU cores visible.'.format(
            count, IMAGE_SIZE[0], IMAGE_SIZE[1], SHAPE_LIMIT, SCALE[0], SCALE[1], repeats,
            os.cpu_count()),
        '',
        '| generator | workers | images/s | vs reference |',
        '| --- | ---: | ---: | ---: |',
    ]
    for label, workers, seconds in rows:
        lines.append('| {} | {} | {:.1f} | {:.2f}x |'.format(
            label, workers, count / seconds, reference / seconds))
    lines += [
        '',
        'Images in which two shapes are drawn as one 8-connected blob ({} images each):'.format(
            blob_count),
        '',
        '| --min-gap | images with merged shapes |',
        '| ---: | ---: |',
        '| 0 (thesis) | {:.1%} |'.format(shares[0]),
        '| 2 | {:.1%} |'.format(shares[2]),
        '',
    ]
    return '\n'.join(lines)
