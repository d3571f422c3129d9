"""Friendly's benchmarks (``make bench``): ``python -m Friendly.bench --out results/bench``
(:mod:`Friendly.bench.__main__`, writes ``OUT/friendly.md``).

- :mod:`Friendly.bench.networks`: one training iteration of each network and the FGSM evaluation
  rate;
- :mod:`Friendly.bench.layers`: the fused Pairwise Difference layer against its
  ``chainer.functions`` form, and one PD training iteration (``python -m Friendly.bench.layers``);
- :mod:`Friendly.bench.pairs`: one PD iteration in the full and the pair form
  (``python -m Friendly.bench.pairs``).
"""
