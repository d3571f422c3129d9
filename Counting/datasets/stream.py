"""Stream a Counting dataset from disk (``Counting.train --stream``): memory that does not grow
with the dataset.

    from Counting.datasets.stream import stream_dataset, stream_iterator
    train = stream_dataset('data/counting/train')   # keeps names and counts, reads PNGs on demand
    it = stream_iterator(train, batchsize=20, seed=0, n_processes=2)

:class:`StreamingShapesDataset` is :class:`~Counting.datasets.loader.ShapesDataset` without the
pixel array: each :meth:`~StreamingShapesDataset.get_example` decodes one PNG and checks it, and a
damaged file raises the loader's one-line :class:`~Counting.datasets.loader.DatasetError` naming
it. :func:`stream_dataset` checks ``truths.json`` as the loader does and every PNG's header (format,
mode, size) before training starts, so most damage is reported at once; truncated pixel data shows
only when the image is decoded.

:func:`stream_iterator` is Chainer's :class:`~chainer.iterators.MultiprocessIterator` (worker
processes decode the next batch into shared memory sized for one batch) with the epoch order of
:meth:`lenses_common.training.TrainingScaffold.train_iterator`: epoch ``e`` shuffled by
``RandomState([seed, e])``, so a run gives the same batches streamed or in memory. A file that
fails in a worker is raised in the training process as :class:`DatasetError` (Chainer's iterator
would otherwise wait forever for the batch).
"""
import numpy
from PIL import Image

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting.datasets.loader import TRUTHS, CountsMixin, DatasetError, _decode, index_folder
from Counting.datasets.loader import png_problem, unreadable
from lenses_common.training import EpochSeededOrder


class StreamingShapesDataset(CountsMixin, chainer.dataset.DatasetMixin):
    """File names and counts; the images are read from disk by :meth:`get_example`.

    Attributes as :class:`~Counting.datasets.loader.ShapesDataset` (``paths``: the PNG files),
    without ``images``.
    """

    def __init__(self, paths, counts, names, types, image_size):
        self._set_counts(len(paths), counts, names, types)
        self.paths = list(paths)
        self.image_size = (int(image_size[0]), int(image_size[1]))

    def __len__(self):
        return len(self.paths)

    def get_example(self, i):
        """float32 (3, H, W) pixels in 0..255 and float32 (n_types,) counts of image ``i``."""
        path = self.paths[i]
        pixels = _decode(path)
        if isinstance(pixels, str):
            raise DatasetError('{}: {}'.format(path, pixels))
        width, height = self.image_size
        if pixels.shape != (height, width, 3):
            raise DatasetError('{}: image is {}x{}, expected {}x{}'.format(
                path, pixels.shape[1], pixels.shape[0], width, height))
        return pixels.transpose(2, 0, 1).astype(numpy.float32), self.counts[i].copy()


def _header_problem(path, size):
    """A one-line reason the PNG header at ``path`` is unusable (``size``: expected), or None."""
    try:
        with Image.open(path) as image:
            return png_problem(image, size)
    except FileNotFoundError:
        return 'listed in {} but the file does not exist'.format(TRUTHS)
    except Exception as e:  # Pillow raises many kinds for damaged files
        return unreadable(e)


def stream_dataset(folder, types=None, expect_size=None):
    """Check a dataset folder (``truths.json`` and every PNG header) without decoding its images;
    returns a :class:`StreamingShapesDataset`. Arguments as
    :func:`~Counting.datasets.loader.load_dataset`; raises :class:`DatasetError` naming the file.
    """
    paths, names, counts, types = index_folder(folder, types)
    like = ''
    if expect_size is None:
        problem = _header_problem(paths[0], None)
        if problem is not None:
            raise DatasetError('{}: {}'.format(paths[0], problem))
        with Image.open(paths[0]) as image:
            expect_size = image.size
        like = ' like ' + paths[0]
    size = (int(expect_size[0]), int(expect_size[1]))
    for path in paths:
        problem = _header_problem(path, size)
        if problem is not None:
            raise DatasetError('{}: {}{}'.format(
                path, problem, like if problem.startswith('image is') else ''))
    return StreamingShapesDataset(paths, counts, names, types, size)


class _Failure(object):
    """What a worker sends back instead of an example it could not read."""

    def __init__(self, message):
        self.message = message


class _Guarded(chainer.dataset.DatasetMixin):
    """``dataset`` whose :class:`DatasetError` comes back as a :class:`_Failure` example."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def get_example(self, i):
        try:
            return self.dataset[i]
        except DatasetError as e:
            return _Failure(str(e))


class _PrefetchEpoch(object):
    """What :class:`EpochSeededOrder` reads as ``iterator.epoch``: the epoch of the state that the
    prefetch thread is advancing when it calls the sampler, which is what ``SerialIterator``'s
    own epoch is when it calls it (the iterator's visible epoch lags behind the prefetch)."""

    def __init__(self, iterator):
        self.iterator = iterator

    @property
    def epoch(self):
        state = getattr(self.iterator._prefetch_loop, 'prefetch_state', None)
        return -1 if state is None else state.epoch


class StreamIterator(chainer.iterators.MultiprocessIterator):
    """MultiprocessIterator that raises a worker's :class:`DatasetError` here."""

    def __next__(self):
        batch = super().__next__()
        for example in batch:
            if isinstance(example, _Failure):
                raise DatasetError(example.message)
        return batch

    next = __next__


def stream_iterator(dataset, batchsize, seed, n_processes=2, n_prefetch=1):
    """A repeating :class:`StreamIterator` over ``dataset`` (a :class:`StreamingShapesDataset` or
    a view of one), epoch ``e`` shuffled by ``RandomState([seed, e])`` as
    :meth:`~lenses_common.training.TrainingScaffold.train_iterator` does; ``n_processes`` worker
    processes, shared memory for one batch."""
    width, height = _image_size(dataset)
    n_types = len(_base(dataset).types)
    example_bytes = 4 * (3 * width * height + n_types)
    order = EpochSeededOrder(seed)
    iterator = StreamIterator(_Guarded(dataset), batchsize, order_sampler=order,
                              n_processes=max(1, int(n_processes)), n_prefetch=n_prefetch,
                              shared_mem=example_bytes)
    order.iterator = _PrefetchEpoch(iterator)
    return iterator


def _base(dataset):
    """The dataset under Chainer's views (SubDataset keeps it as ``_dataset``)."""
    while not hasattr(dataset, 'types') and hasattr(dataset, '_dataset'):
        dataset = dataset._dataset
    return dataset


def _image_size(dataset):
    return _base(dataset).image_size
