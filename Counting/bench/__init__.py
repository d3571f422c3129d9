"""Counting's benchmarks (``make bench``), kept out of the product modules.

* :mod:`~Counting.bench.report`: every section as one report (``python -m Counting.bench``,
  ``__main__.py``, writes ``counting.md``);
* :mod:`~Counting.bench.generator_timing`: the dataset generator
  (``python -m Counting.bench.generator``);
* :mod:`~Counting.bench.detection_timing`: the detection loop
  (``python -m Counting.bench.detection``);
* :mod:`~Counting.bench.training`: training throughput (a section of the report);
* :mod:`~Counting.bench.memory_cases`: training memory with the dataset in memory and streamed
  (``Counting.train --stream``; ``python -m Counting.bench.memory``).

The command lines (``__main__``, ``generator``, ``detection``, ``memory``) are thin: they parse,
check and call these.
"""
