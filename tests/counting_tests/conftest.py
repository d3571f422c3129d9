"""What the Counting tests share.

* Every test runs with fixed random seeds (:func:`fixed_random`, Chainer's ``fix_random``), so a
  test that draws random inputs or initial weights draws the same ones every time.
* The ``helpers`` fixture gives a test this module: a tiny smooth network, its image, the thesis's
  loop written out, a trained-looking run folder (:func:`make_run`) and test images with their
  annotations (:func:`make_images`).
* ``source`` and ``copy``: a small generated dataset and a private copy of it.
"""
import json
import os
import shutil
import sys

import numpy
import pytest
from PIL import Image, ImageDraw

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
import chainer.links as L
from chainer import testing

from Counting import detection
from Counting import models
from Counting.datasets.generator import generate_dataset
from Counting.functions import stable_softplus
from lenses_common.runfolder import save_npz
from lenses_common.snapshots import FINAL_MODEL


class _FixedRandom:
    """Chainer's ``testing.fix_random`` applies to test classes; its setUp and tearDown, given to
    this class, seed NumPy, Python's random and CuPy before a test and restore them after."""

    def setUp(self):
        pass

    def tearDown(self):
        pass


testing.fix_random()(_FixedRandom)


@pytest.fixture(autouse=True)
def fixed_random():
    """Run every Counting test under ``chainer.testing.fix_random``."""
    seeds = _FixedRandom()
    seeds.setUp()
    yield
    seeds.tearDown()


#: Image size of the small generated dataset of the dataset tests.
SMALL_DATASET_SIZE = (64, 48)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """A generated dataset of 7 images of 64 x 48 (a module may override it)."""
    folder = str(tmp_path_factory.mktemp('data'))
    generate_dataset(folder, 7, image_size=SMALL_DATASET_SIZE, shape_limit=5, scale=(5, 10),
                     seed=1, workers=1, progress=False)
    return folder


@pytest.fixture
def copy(source, tmp_path):
    """A private copy of ``source`` that a test may damage."""
    folder = str(tmp_path / 'copy')
    shutil.copytree(source, folder)
    return folder


@pytest.fixture
def helpers():
    """This module: ``helpers.Tiny()``, ``helpers.tiny_image()``, ..."""
    return sys.modules[__name__]


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
    engine = detection.SecondDerivativeRows(model, x)
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


def make_run(path, activation='softplus', size=90, seed=0):
    """A run folder as Counting.train writes it: settings.json and model_final.npz, the small
    counter untrained but with positive counts."""
    numpy.random.seed(seed)
    model = models.build_counter('convolutional', activation)
    with chainer.using_config('train', False):
        model(numpy.zeros((1, 3, size, size), numpy.float32))
    model.fc.b.array[:] = 1.0
    settings = {'arch': 'convolutional', 'activation': activation, 'base': 1.1,
                'batch_renorm': False, 'types': ['tri', 'sq'], 'image_size': [size, size],
                'softplus': 'stable'}
    write_run(path, settings, model)
    return model


def write_run(path, settings, model=None):
    """A run folder: ``settings`` as settings.json and, given ``model``, model_final.npz with
    the network it records (``_meta/counter``), as Counting.train writes them."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, 'settings.json'), 'w') as f:
        json.dump(settings, f)
    if model is not None:
        save_npz(os.path.join(path, FINAL_MODEL), model, meta=models.network_meta(settings))


def make_images(path, size=90, count=1):
    """Images with a blue square (moved one pixel right per image) and a blue triangle, and their
    annotations.json."""
    os.makedirs(path, exist_ok=True)
    annotations = {}
    for i in range(count):
        im = Image.new('RGB', (size, size))
        draw = ImageDraw.Draw(im)
        square = [(10 + i, 10), (40 + i, 10), (40 + i, 40), (10 + i, 40)]
        triangle = [(50, 50), (80, 50), (50, 80)]
        for poly in (square, triangle):
            draw.polygon(poly, fill=(0, 0, 255), outline=(0, 0, 255))
        name = '{:04d}.png'.format(i)
        im.save(os.path.join(path, name))
        annotations[name] = [
            {'type': 'sq', 'polygon': square, 'box': [10 + i, 10, 40 + i, 40]},
            {'type': 'tri', 'polygon': triangle, 'box': [50, 50, 80, 80]}]
    with open(os.path.join(path, 'annotations.json'), 'w') as f:
        json.dump(annotations, f)
    return annotations


def dataset_json(folder):
    """``(truths, annotations)``: the two JSON files of a generated dataset folder."""
    with open(os.path.join(folder, 'truths.json')) as f:
        truths = json.load(f)
    with open(os.path.join(folder, 'annotations.json')) as f:
        annotations = json.load(f)
    return truths, annotations
