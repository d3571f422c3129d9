"""PGD adversarial training (Madry et al. 2018) as they ran it on MNIST, in pixel units 0..255.

Every training batch is replaced by PGD examples of the current network before the update: eps
0.3 (77 pixel units, the project's :data:`Friendly.attacks.THESIS_EPS`; 0.3 * 255 = 76.5), 40
steps of 0.01 (2.55 pixel units) from a uniform random start in the eps-ball, each step projected
back onto the ball and 0..255. Pixels stay integral as everywhere in the project: the step is
rounded to the nearest whole pixel unit, 3 (the attack rounds the image after every step anyway,
so a step of 2.55 from an integral image would move each pixel by exactly 3 too). 40 steps of 3
cover 120 units, more than the ball's diameter's worth from the random start back to a corner
(Madry et al.'s 40 * 0.01 = 0.4 covered 1.33 eps; 120 / 77 = 1.56 eps). The attack ascends the
network's own training loss (the squared distance), as Madry et al.'s ascended theirs, with the
network as it is at that iteration (Batch Renormalization, when present, with the batch's
statistics and its running averages left alone).
"""
import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly import attacks
from Friendly import models

MADRY_EPS = attacks.THESIS_EPS   # 0.3 of 255
MADRY_STEPS = 40
MADRY_STEP = 3.0                 # 0.01 * 255 = 2.55, rounded to the nearest whole pixel unit
METHODS = ('pgd',)


class PGDTrainingLoss(object):
    """``loss_func`` for Chainer's StandardUpdater: the classifier's loss on PGD examples.

    ``classifier`` is a :class:`Friendly.models.FriendlyClassifier`; ``iteration`` a callable
    giving the updater's iteration, which with ``seed`` picks the random starts, so that a resumed
    run draws the same starts as an uninterrupted one.
    """

    def __init__(self, classifier, seed, iteration, eps=MADRY_EPS, steps=MADRY_STEPS,
                 step_size=MADRY_STEP):
        self.classifier = classifier
        self.seed = int(seed)
        self.iteration = iteration
        self.eps = attacks.check_eps(eps)
        self.steps = int(steps)
        self.step_size = float(step_size)

    def adversarial_examples(self, x, t):
        predictor = self.classifier.predictor
        rng = numpy.random.RandomState([self.seed, 8, int(self.iteration())])
        with models.evaluation_mode(predictor, 'batch'):
            return attacks.pgd(predictor, x, t, self.eps, steps=self.steps,
                               step_size=self.step_size, restarts=1, rng=rng)

    def __call__(self, x, t):
        x = chainer.as_array(x)
        return self.classifier(self.adversarial_examples(x, t), t)
