"""The Counting datasets (thesis 2.2): shapes, their generator, the loader, and the size limits.

* :mod:`~Counting.datasets.shapes`: the triangle and square templates, their placement ranges,
  drawing and 8-connected blobs;
* :mod:`~Counting.datasets.generator`: :func:`generate_dataset` (``python -m Counting.generate``);
* :mod:`~Counting.datasets.png`: the generator's PNG writer;
* :mod:`~Counting.datasets.loader`: :func:`load_dataset`, a folder as a Chainer dataset
  (``python -m Counting.check_dataset``);
* :mod:`~Counting.datasets.stream`: :func:`stream_dataset` and :func:`stream_iterator`, the
  same dataset read from disk batch by batch by worker processes (``Counting.train --stream``);
* :mod:`~Counting.datasets.limits`: bounds on sizes, memory and disk checked before generating.
"""
from Counting.datasets.generator import generate_dataset  # NOQA
from Counting.datasets.generator import ShapeFitError  # NOQA
from Counting.datasets.loader import DatasetError  # NOQA
from Counting.datasets.loader import load_dataset  # NOQA
from Counting.datasets.loader import ShapesDataset  # NOQA
from Counting.datasets.shapes import TYPES  # NOQA
from Counting.datasets.stream import stream_dataset  # NOQA
from Counting.datasets.stream import stream_iterator  # NOQA
from Counting.datasets.stream import StreamingShapesDataset  # NOQA
