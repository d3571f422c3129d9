"""Robustness evaluation that sees through gradient masking (beyond the thesis).

``python -m Friendly.robustness --run RUNS/S --run RUNS/RS ... --source RUNS/source --out OUT``

The thesis measures robustness with one attack, float32 FGSM on the squared-distance loss with
Batch Renormalization using the attacked batch's statistics. A defense can look strong under that
attack only because the attack's gradient is useless (gradient masking): sigmoid outputs that round
to exactly 0 or 1 in float32 give an exactly zero gradient, and batch statistics let the attacked
batch hide the perturbation from the gradient. This module attacks every network several ways and
reports, per network (one row, on the first ``images`` test images):

* ``clean``: accuracy on the unperturbed images;
* ``fgsm``: the thesis's white-box FGSM (:func:`Friendly.evaluation.evaluate_set`, the evaluator
  of :mod:`Friendly.evaluate` too);
* ``fgsm_float64``: FGSM whose gradient comes from a float64 copy of the network (the victim is
  still the float32 network as trained);
* ``fgsm_bn_running``: FGSM whose gradient is taken with Batch Renormalization's running averages
  (the victim evaluated as in ``fgsm``); equal to ``fgsm`` for networks without it;
* ``pgd``: PGD with random restarts on the squared distance (:func:`Friendly.attacks.pgd`);
* ``pgd_margin``: PGD ascending the margin ``max_{j != t} y_j - y_t`` (positive when misclassified);
* ``pgd_margin_float64``: the same with the gradients of the float64 copy (float32 PGD drives the
  sigmoid networks into saturation, where every gradient entry is exactly 0, and stops there);
* ``blackbox``: FGSM examples of a separately trained S network (as :mod:`Friendly.evaluate`);
* ``blackbox_float64``: FGSM examples of the same source network whose gradient comes from its
  float64 copy (the float32 victim judges them), as ``fgsm_float64`` does for white-box;
* ``worst_case``: an image counts only if it is classified correctly clean and under every attack
  above, so it is never above any of them;
* ``zero_grad_fraction`` (and ``zero_grad_fraction_float64``): the share of images whose input
  gradient of the thesis loss is exactly zero in every pixel, so FGSM leaves them unchanged;
* ``source_zero_grad_fraction`` (and ``_float64``): the same share for the black-box source
  network, on the row's images: the images its black-box examples leave unchanged.

All accuracies are in percent. Under the table, flags in the spirit of AutoAttack (Croce and Hein
2020) and Carlini et al.'s checklist name what looks like gradient masking, and ``eps_curve.png``
plots accuracy against eps in two panels, white-box FGSM and the worst case, headed by the preset,
the image count and the seed. Writes ``robustness.md``, ``robustness.csv``,
``robustness.json`` and ``eps_curve.png`` into ``--out``. ``--preset`` sets the image counts and
attack budgets (:data:`Friendly.robustness_eval.PRESETS`); the options after it override them.
"""
import sys

from Friendly import robustness_eval
from lenses_common import cli


def main(argv=None):
    parser = robustness_eval.build_parser()
    args = parser.parse_args(argv)
    robustness_eval.check_args(parser, args)
    return robustness_eval.run(parser, args, argv)


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))
