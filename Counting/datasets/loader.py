"""Load a Counting dataset written by :mod:`Counting.generate` (thesis chapter 2).

    from Counting.datasets import load_dataset
    train = load_dataset('data/counting/train')      # a chainer.dataset.DatasetMixin
    image, counts = train[0]   # float32 (3, H, W) in 0..255; float32 (n_types,), order [tri, sq]

Every file is checked while loading (in worker processes): an unreadable or truncated PNG, an image
that is not RGB or not of the expected size, a ``truths.json`` entry without its file and a missing
or malformed ``truths.json`` each raise :class:`DatasetError` whose one-line message names the file.

``python -m Counting.check_dataset DIR`` (:mod:`Counting.check_dataset`) checks a folder and prints
a summary.
"""
import json
import mmap
import multiprocessing
import os

import numpy
from PIL import Image

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting.datasets.limits import MAX_SHAPES
from Counting.datasets.shapes import TYPES
from lenses_common import cli
from lenses_common.runfolder import check_regular_file
from lenses_common.progress import Progress

TRUTHS = 'truths.json'


class DatasetError(ValueError):
    """A Counting dataset folder that cannot be used; the message names the file."""


class CountsMixin(object):
    """What both kinds of Counting dataset derive from their ``counts`` and ``types``."""

    def _set_counts(self, n, counts, names, types):
        """Check and keep the counts (float32 ``(n, n_types)``), names and types of ``n``
        images."""
        counts = numpy.asarray(counts, dtype=numpy.float32)
        if counts.shape != (n, len(types)):
            raise ValueError('counts must have shape {}, got {}'.format(
                (n, len(types)), counts.shape))
        if len(names) != n:
            raise ValueError('{} names for {} images'.format(len(names), n))
        self.counts = counts
        self.names = list(names)
        self.types = list(types)

    @property
    def mean_counts(self):
        """float32 (n_types,) mean count per type: the predict-the-training-mean baseline."""
        if len(self.counts) == 0:
            return numpy.zeros(len(self.types), dtype=numpy.float32)
        return self.counts.mean(axis=0).astype(numpy.float32)

    def count_of(self, i):
        """``{type: count}`` of example ``i`` as integers."""
        return {t: int(c) for t, c in zip(self.types, self.counts[i])}


class ShapesDataset(CountsMixin, chainer.dataset.DatasetMixin):
    """Images kept in memory as uint8 (N, 3, H, W) and their counts.

    Attributes:
        names: file names, sorted.
        types: the shape types of the counts, in the networks' order (``['tri', 'sq']`` or one).
        counts: float32 (N, n_types) true counts.
        image_size: ``(width, height)`` of every image.
        images: the uint8 (N, 3, H, W) array.
    """

    def __init__(self, images, counts, names, types):
        images = numpy.asarray(images)
        if images.dtype != numpy.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError('images must be uint8 (N, 3, H, W), got {} {}'.format(
                images.dtype, images.shape))
        self._set_counts(len(images), counts, names, types)
        self.images = images
        self.image_size = (int(images.shape[3]), int(images.shape[2]))

    def __len__(self):
        return len(self.images)

    def get_example(self, i):
        return self.images[i].astype(numpy.float32), self.counts[i].copy()


def _read_truths(folder):
    path = os.path.join(folder, TRUTHS)
    try:
        if os.path.lexists(path):
            check_regular_file(path, TRUTHS)  # a FIFO would block the read for ever
        with open(path) as f:
            truths = json.load(f)
    except ValueError as e:
        if not isinstance(e, json.JSONDecodeError):
            raise DatasetError(str(e)) from None
        raise DatasetError('{}: not valid JSON ({})'.format(path, e)) from None
    except FileNotFoundError:
        raise DatasetError('{}: missing (not a Counting dataset folder? make one with '
                           'python -m Counting.generate)'.format(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError('{}: cannot be read ({})'.format(path, e)) from None
    except json.JSONDecodeError as e:
        raise DatasetError('{}: not valid JSON ({})'.format(path, e)) from None
    if not isinstance(truths, dict) or not truths:
        raise DatasetError('{}: must map image file names to counts and hold at least one '
                           'entry'.format(path))
    for name, counts in truths.items():
        if (os.path.basename(name) != name or not name.endswith('.png')
                or not isinstance(counts, dict) or not counts):
            raise DatasetError('{}: entry {!r} must map a .png file name in the folder to '
                               'counts such as {{"tri": 1, "sq": 2}}'.format(path, name))
        for kind, n in counts.items():
            if (kind not in TYPES or not isinstance(n, int) or isinstance(n, bool) or n < 0
                    or n > MAX_SHAPES):
                raise DatasetError('{}: entry {!r} has {!r}: {!r}; counts must be non-negative '
                                   'integers, at most {}, for {}'.format(
                                       path, name, kind, n, MAX_SHAPES, ' and '.join(TYPES)))
    return path, truths


def png_problem(image, size=None):
    """A one-line reason the opened Pillow ``image`` is not a dataset PNG (not a PNG, not RGB, or,
    with ``size`` (W, H), not of that size), or None."""
    if image.format != 'PNG':
        return 'not a PNG file (Pillow reads it as {})'.format(image.format)
    if image.mode != 'RGB':
        return 'image mode is {}, expected RGB'.format(image.mode)
    if size is not None and tuple(image.size) != tuple(size):
        return 'image is {}x{}, expected {}x{}'.format(*(tuple(image.size) + tuple(size)))
    return None


def unreadable(error):
    """The one-line reason of a PNG that Pillow could not read."""
    return 'unreadable image ({}: {})'.format(type(error).__name__, error)


def _decode(path):
    """uint8 (H, W, 3) array of the PNG at ``path``, or a one-line reason it cannot be used."""
    if not os.path.exists(path):
        return 'listed in {} but the file does not exist'.format(TRUTHS)
    try:
        with Image.open(path) as image:
            problem = png_problem(image)
            if problem is not None:
                return problem
            image.load()
            return numpy.asarray(image, dtype=numpy.uint8)
    except Exception as e:  # Pillow raises many kinds for damaged files
        return unreadable(e)


# Set in the parent before the pool forks, so the workers write the decoded pixels straight into
# the shared buffer instead of pickling 3 MB per image back through a pipe.
_TARGET = None


def _load_into(task):
    """Decode image ``i`` into ``_TARGET[i]``; returns ``(i, None)`` or ``(i, reason)``."""
    i, path = task
    pixels = _decode(path)
    if isinstance(pixels, str):
        return i, pixels
    target = _TARGET[i]
    if pixels.shape != (target.shape[1], target.shape[2], 3):
        return i, 'image is {}x{}, expected {}x{}'.format(
            pixels.shape[1], pixels.shape[0], target.shape[2], target.shape[1])
    target[...] = pixels.transpose(2, 0, 1)
    return i, None


def _first_size(path):
    """``(width, height)`` of the first image from its header (the full check comes later)."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DatasetError('{}: listed in {} but the file does not exist'.format(
            path, TRUTHS)) from None
    except Exception as e:
        raise DatasetError('{}: unreadable image ({}: {})'.format(
            path, type(e).__name__, e)) from None


def index_folder(folder, types=None):
    """Check a dataset folder's ``truths.json`` and listing without reading the images.

    Returns ``(paths, names, counts, types)``: the PNG paths and names (sorted), float32
    (N, n_types) counts and the kept types, in the networks' order. Raises :class:`DatasetError`
    naming the file at fault. Shared by :func:`load_dataset` and
    :func:`Counting.datasets.stream.stream_dataset`.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DatasetError('{}: not a folder'.format(folder))
    truths_path, truths = _read_truths(folder)
    names = sorted(truths)
    own_types = [t for t in TYPES if t in truths[names[0]]]
    for name in names:
        if sorted(truths[name]) != sorted(own_types):
            raise DatasetError('{}: entry {!r} counts {} but {!r} counts {}'.format(
                truths_path, name, sorted(truths[name]), names[0], sorted(own_types)))
    if types is None:
        types = own_types
    else:
        types = [types] if isinstance(types, str) else list(types)
        missing = [t for t in types if t not in own_types]
        if missing or not types:
            raise DatasetError('{}: asked for types {} but the dataset counts {}'.format(
                truths_path, types, own_types))
        types = [t for t in TYPES if t in types]
    counts = numpy.array([[truths[n][t] for t in types] for n in names], dtype=numpy.float32)
    unlisted = sorted(n for n in os.listdir(folder)
                      if n.lower().endswith('.png') and not n.startswith('.') and n not in truths)
    if unlisted:
        raise DatasetError('{}: {} PNG file(s) in the folder are not listed there (first {}); '
                           'a dataset folder holds only its own images (regenerate it with '
                           'Counting.generate --force, or move them out)'.format(
                               truths_path, len(unlisted), unlisted[0]))
    return [os.path.join(folder, n) for n in names], names, counts, types


def load_dataset(folder, types=None, workers=2, expect_size=None, progress=False):
    """Load and check a dataset folder; returns a :class:`ShapesDataset`.

    Args:
        folder: a folder written by :mod:`Counting.generate`.
        types: shape types to keep (``None``: the dataset's own). Each must be in the dataset.
        workers: processes that decode the PNGs (1: in this process). With several, the pixels
            go to an anonymous shared memory map that the dataset then keeps.
        expect_size: ``(width, height)`` every image must have; ``None``: all as the first one.
        progress: show a progress bar on stderr.

    Raises :class:`DatasetError` naming the file at fault.
    """
    global _TARGET
    paths, names, counts, types = index_folder(folder, types)
    if expect_size is None:
        width, height = _first_size(paths[0])
        like = ' like ' + paths[0]
    else:
        width, height = (int(v) for v in expect_size)
        like = ''
    shape = (len(paths), 3, height, width)
    workers = max(1, min(int(workers), len(paths)))
    use_pool = workers > 1 and 'fork' in multiprocessing.get_all_start_methods()
    if use_pool:
        buffer = mmap.mmap(-1, max(1, int(numpy.prod(shape))))
        images = numpy.frombuffer(buffer, dtype=numpy.uint8, count=int(numpy.prod(shape)))
        images = images.reshape(shape)
    else:
        images = numpy.empty(shape, dtype=numpy.uint8)
    bar = Progress(len(paths), desc='loading', unit='img') if progress else None
    _TARGET = images
    pool = None
    try:
        tasks = list(enumerate(paths))
        if use_pool:
            pool = multiprocessing.get_context('fork').Pool(workers, initializer=cli.ignore_sigint)
            results = pool.imap_unordered(_load_into, tasks,
                                          chunksize=max(1, min(16, len(paths) // (4 * workers))))
        else:
            results = map(_load_into, tasks)
        failures = []
        for i, reason in results:
            if reason is not None:
                failures.append((i, reason))
                if pool is None:
                    break
            if bar is not None:
                bar.update()
        if failures:
            i, reason = min(failures)
            suffix = like if reason.startswith('image is') else ''
            raise DatasetError('{}: {}{}'.format(paths[i], reason, suffix))
    finally:
        _TARGET = None
        if pool is not None:
            pool.terminate()
            pool.join()
        if bar is not None:
            bar.close()
    return ShapesDataset(images, counts, names, types)
