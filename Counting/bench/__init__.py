"""Counting's benchmarks (``make bench``), kept out of the product modules.

* :mod:`~Counting.bench.report`: ``python -m Counting.bench``, every section into ``counting.md``;
* :mod:`~Counting.bench.generator`: ``python -m Counting.bench.generator``, the dataset generator;
* :mod:`~Counting.bench.detection`: ``python -m Counting.bench.detection``, the detection loop;
* :mod:`~Counting.bench.training`: training throughput (a section of the report);
* :mod:`~Counting.bench.memory`: ``python -m Counting.bench.memory``, training memory with the
  dataset in memory and streamed (``Counting.train --stream``).
"""
from Counting.bench.report import build_parser  # NOQA
from Counting.bench.report import main  # NOQA
