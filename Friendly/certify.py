"""Certified robustness: ``python -m Friendly.certify --run RUNS/S ... --out OUT``.

For each network, the share of test images for which *no* image of the L-infinity ball of radius
eps (pixel units, intersected with 0..255) changes the predicted class, proved by a sound bound on
every margin ``z_t - z_j`` (logits, i.e. before the last sigmoid, which is increasing), in float64,
with two methods (:mod:`Friendly.certification.network`): interval bound propagation (``ibp``)
and the backward linear relaxation (``crown``); ``best`` counts an image certified by either, and
certified at eps when certified at a larger eps of the grid. An image counts as certified when the
lower bound of every margin exceeds ``--tolerance``.

Batch Renormalization is certified with its running averages: a certificate is about a function
of one image, and in the thesis's batch-statistics mode the output of an image depends on the
other images of its batch (their mean and variance), so it is not a function of that image alone.

The bracket: on the first ``bracket`` images (the eps curve's images of :mod:`Friendly.robustness`
for the same preset), the certified accuracy (a lower bound of the true robust accuracy) and the
worst case of Friendly.robustness's attacks (an upper bound), run here on the same function
(running averages) at every eps of the grid. Writes ``certify.md``, ``certify.csv``,
``certify.json`` and ``bracket.png`` into ``--out``.
"""
import sys

from Friendly import certify_eval
from lenses_common import cli
from lenses_common import environment


def main(argv=None):
    parser = certify_eval.build_parser()
    args = parser.parse_args(argv)
    certify_eval.check_args(parser, args)
    # The backward relaxation makes a fresh (batch, 200, 784) float64 temporary at every step:
    # served from reused heap memory they cost no page faults (a quarter of the CPU time).
    environment.reuse_large_allocations()
    return certify_eval.run(parser, args, argv)


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
