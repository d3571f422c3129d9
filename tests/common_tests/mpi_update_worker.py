"""One training update of a small network, alone or as one rank of ``mpiexec -n K``.

``python mpi_update_worker.py CASE OUT [--mpi]`` writes the parameters after one update on a fixed
global batch to ``OUT.rank<r>.npz``. The tests run it under ``mpiexec -n 2`` and compare with
:func:`update` called in the test process (one process, the whole batch).
"""
import os
import sys

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from lenses_common import distributed

GLOBAL_BATCH = 8
CASES = ('S', 'GMR', 'GMRES', 'RS', 'PD', 'counter', 'counter-brn', 'GMR-per-rank-norm')
# A penalty weight large enough that the penalty moves the weights as much as the loss does.
GMR_WEIGHT = 50.0


def batch(case):
    """The fixed global batch of ``case``: (x, t)."""
    rng = numpy.random.RandomState(1)
    if case.startswith('counter'):
        x = rng.uniform(0, 1, (GLOBAL_BATCH, 3, 100, 100)).astype(numpy.float32)
        t = rng.randint(0, 5, (GLOBAL_BATCH, 2)).astype(numpy.float32)
    else:
        x = rng.uniform(0, 1, (GLOBAL_BATCH, 16)).astype(numpy.float32)
        t = rng.randint(0, 10, GLOBAL_BATCH).astype(numpy.int32)
    return x, t


def build(case, norm=None):
    """(training target, optimizer) of ``case`` with fixed initial weights; ``norm``: the GMR
    penalty's norm (``FriendlyClassifier(norm=...)``)."""
    numpy.random.seed(0)
    if case.startswith('counter'):
        from Counting import models
        model = models.CountingLoss(models.build_counter(
            'convolutional', 'sigmoid', n_types=2, batch_renorm=case == 'counter-brn'))
        optimizer = chainer.optimizers.SGD(lr=0.5)
    else:
        from Friendly import models
        from Friendly.optimizers import FastMomentumSGD
        variant = case.split('-')[0]
        predictor = models.FC100(variant, sizes=(16, 12, 12, 10), pd_chunk_size=5)
        model = models.FriendlyClassifier(
            predictor, gmr_weight=GMR_WEIGHT if variant.startswith('GMR') else 0.0,
            stabilize=case == 'GMRES', norm=norm)
        optimizer = FastMomentumSGD(lr=0.5, momentum=0.85)
    optimizer.setup(model)
    return model, optimizer


def update(case, dist=None):
    """The parameters ({name: array}) after one update on the global batch."""
    dist = dist or distributed.Distributed()
    per_rank = case.startswith('counter') or case.endswith('per-rank-norm')
    # what Friendly.train does: the norm over all ranks
    model, optimizer = build(case, None if per_rank else dist.gradient_norm())
    optimizer = dist.optimizer(optimizer)
    x, t = batch(case)
    part = dist.shard(chainer.datasets.TupleDataset(x, t))
    xs, ts = chainer.dataset.concat_examples(part[:])
    assert len(xs) == GLOBAL_BATCH // dist.size
    optimizer.update(model, xs, ts)
    return {name: numpy.array(param.array) for name, param in model.namedparams()}


def main(argv):
    case, out = argv[0], argv[1]
    dist = None
    if '--mpi' in argv:
        import chainermn
        from mpi4py import MPI
        dist = distributed.Distributed(chainermn.create_communicator('naive', MPI.COMM_WORLD),
                                       'naive')
    params = update(case, dist)
    rank = dist.rank if dist else 0
    numpy.savez(os.fspath(out) + '.rank{}.npz'.format(rank), **params)


if __name__ == '__main__':
    main(sys.argv[1:])
