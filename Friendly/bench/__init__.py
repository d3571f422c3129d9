"""Friendly's benchmarks (``make bench``): ``python -m Friendly.bench --out results/bench``.

- :mod:`Friendly.bench.networks`: one training iteration of each network and the FGSM evaluation
  rate, with the layer section below; writes ``OUT/friendly.md``;
- :mod:`Friendly.bench.layers`: the fused Pairwise Difference layer against its
  ``chainer.functions`` form, and one PD training iteration (``python -m Friendly.bench.layers``).
"""
