"""Certified robustness of the Friendly networks: sound bounds per layer and on the margin.

:mod:`Friendly.certification.layers` holds the bound of every layer the thesis uses, each derived
in its docstring, but for the two barriers of the backward relaxation, Angular and Pairwise
Difference (:mod:`Friendly.certification.barriers`); :mod:`Friendly.certification.network` turns
a trained network into those layers and bounds its margins (interval bound propagation and a
backward linear relaxation); :mod:`Friendly.certification.training` is the interval-bound
training loss of ``Friendly.train --adversarial ibp``. The command line is
:mod:`Friendly.certify`.
"""
