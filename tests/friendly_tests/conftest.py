"""Set-up shared by the Friendly tests: small networks with fixed random weights, random images,
and the thesis's FGSM evaluation written out batch by batch, independently of the evaluator."""
import json
import os

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Friendly import attacks
from Friendly import models
from Friendly import pipeline
from Friendly import train_args
from lenses_common import seeding
from lenses_common.runfolder import save_npz
from lenses_common.snapshots import FINAL_MODEL

CPU = chainer.get_device('@numpy')


def small_network(variant, seed=0, sizes=(16, 8, 8, 10)):
    """``variant`` with 16 inputs (4 x 4 images), hidden layers of 8, weights drawn from
    ``seed``."""
    numpy.random.seed(seed)
    return models.FC100(variant, sizes=sizes)


def random_images(n, seed=1, shape=(1, 4, 4)):
    """``n`` random images in 0..255 (float32) and labels (int32), drawn from ``seed``."""
    rng = numpy.random.RandomState(seed)
    x = rng.randint(0, 256, (n,) + shape).astype(numpy.float32)
    t = rng.randint(0, 10, n).astype(numpy.int32)
    return x, t


def thesis_fgsm_by_hand(model, x, t, eps, batchsize, black=None, bn_mode='batch'):
    """Per-image correctness clean, under white-box FGSM and on the black-box examples ``black``,
    in consecutive batches of ``batchsize``: the thesis's protocol spelt out with
    :func:`Friendly.attacks.fgsm` and a forward pass, for comparison with the evaluator."""
    out = {'clean': [], 'fgsm': [], 'blackbox': []}
    for start in range(0, len(x), batchsize):
        xb, tb = x[start:start + batchsize], t[start:start + batchsize]
        with models.evaluation_mode(model, bn_mode):
            x_adv = attacks.fgsm(model, xb, tb, eps)
            with chainer.no_backprop_mode():
                out['clean'].append(model(xb).array.argmax(axis=1) == tb)
                out['fgsm'].append(model(x_adv).array.argmax(axis=1) == tb)
                if black is not None:
                    out['blackbox'].append(
                        model(black[start:start + batchsize]).array.argmax(axis=1) == tb)
    return {k: numpy.concatenate(v) for k, v in out.items() if v}


def make_run_folder(run_dir, network, seed, finished=True, preset='smoke'):
    """A ``Friendly.train`` run folder of ``network`` (of :data:`Friendly.pipeline.NETWORKS`) as
    ``Friendly.run_all --preset PRESET`` would train it with ``seed``: its ``settings.json`` and,
    when ``finished``, a model with fixed random (untrained) weights. ``run_dir`` is a ``Path``."""
    argv = pipeline.train_argv(network, pipeline.train_options(preset, network), seed,
                               str(run_dir), None, None)
    settings = train_args.settings_from_args(train_args.build_parser().parse_args(argv))
    os.makedirs(str(run_dir))
    (run_dir / 'settings.json').write_text(json.dumps(settings))
    if finished:
        numpy.random.seed(seed + len(network))
        save_npz(str(run_dir / FINAL_MODEL),
                 models.FC100('S' if network == pipeline.SOURCE else network))
    return str(run_dir)


@pytest.fixture
def make_run():
    """:func:`make_run_folder`."""
    return make_run_folder


@pytest.fixture
def small():
    """:func:`small_network`."""
    return small_network


@pytest.fixture
def images():
    """:func:`random_images`."""
    return random_images


@pytest.fixture
def fgsm_by_hand():
    """:func:`thesis_fgsm_by_hand`."""
    return thesis_fgsm_by_hand


@pytest.fixture(autouse=True)
def fixed_random():
    """``chainer.testing.fix_random`` for test functions (``lenses_common.seeding``)."""
    with seeding.fixed_random_states(0):
        yield


def certification_network(variant, seed, trained, sizes):
    """``variant`` at ``sizes`` with weights from ``seed``, and 40 random images and labels.

    ``trained``: 30 Adam steps on them. Batch Renormalization's running averages are set and
    spread apart, so that the certificates use running averages unlike any batch's."""
    rng = numpy.random.RandomState(seed)
    chainer.global_config.dtype = numpy.float32
    numpy.random.seed(seed)
    model = models.FC100(variant, sizes=sizes)
    x = rng.randint(0, 256, size=(40, sizes[0])).astype(numpy.float32)
    t = rng.randint(0, 10, size=40).astype(numpy.int32)
    if variant == 'GMRES':
        for i in (1, 2, 3):
            getattr(model, 'es{}'.format(i)).s.array[:] = rng.uniform(-1.5, 1.5)
    if trained:
        opt = chainer.optimizers.Adam(alpha=0.01)
        opt.setup(model)
        for _ in range(30):
            model.cleargrads()
            loss = models.squared_distance_loss(model(x), t)
            loss.backward()
            opt.update()
    elif model.spec['batch_renorm']:
        with chainer.using_config('train', True):
            model(x)
    if model.spec['batch_renorm']:
        for bn in model.batch_renorm_links():
            bn.avg_var[:] = rng.uniform(0.5, 3.0, size=bn.avg_var.shape) * bn.avg_var + 1e-3
    return model, x, t
