"""The half-size pair form of Pairwise Difference against its definition and the full form."""
import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
import chainer.functions as F
import chainer.links as L
from chainer import testing

from Friendly import links as FL
from Friendly import models
from Friendly.functions import pairwise_difference, pairwise_difference_pairs
from Friendly.functions import PairwiseDifferencePairsGrad
from Friendly.functions.pairwise_difference_pairs import fold, n_pairs, pair_indices
from Friendly.optimizers import FastMomentumSGD, PairFormError, apply_pair_form_lr_factors
from tests.conftest import function_tests
from tests.friendly_tests.test_functions_pairwise_difference import (
    BAD_CHUNK_SIZES, F32, F64, MEMORY_CHUNK, MEMORY_P, ChunkedLayerCase, TracedMemory,
    check_double_backward_through, check_grad_node_outputs, check_refused_types,
    chunked_layer_cases, memory_inputs)

# The links' initializers and gradient_check draw from the global generators; the seeds some
# tests set do not outlive them.
pytestmark = pytest.mark.usefixtures('fixed_random')


def _reference(v, A):
    """Independent forward: loops over samples, outputs and the stored pairs, in float64."""
    B, P = v.shape
    I, J = pair_indices(P)
    y = numpy.zeros((B, A.shape[0]))
    for b in range(B):
        for k in range(A.shape[0]):
            for m in range(len(I)):
                y[b, k] += 0.5 * A[k, m] * numpy.tanh((v[b, I[m]] - v[b, J[m]]) / 2)
    return y


@function_tests(*chunked_layer_cases([1, 64]))
class TestPairwiseDifferencePairs(ChunkedLayerCase, testing.FunctionTestCase):

    layer = staticmethod(pairwise_difference_pairs)
    reference = staticmethod(_reference)
    weight_scale = 2
    weight_columns = staticmethod(n_pairs)


@pytest.mark.parametrize('P', [2, 3, 4, 5, 6, 9, 36])
def test_every_unordered_pair_is_stored_once(P):
    I, J = pair_indices(P)
    assert len(I) == n_pairs(P) == P * (P - 1) // 2
    assert sorted(tuple(sorted(p)) for p in zip(I, J)) == [
        (i, j) for i in range(P) for j in range(i + 1, P)]


@pytest.mark.parametrize('chunk', [1, 2, 3, 64])
def test_fold_makes_the_pair_form_equal_the_full_layer(chunk):
    rng = numpy.random.RandomState(0)
    B, P, N = 3, 7, 4
    x = rng.uniform(-3, 3, (B, P))
    W = rng.uniform(-1, 1, (N, P * P))
    A, b = fold(W)
    # Hand check of one entry of the fold: pair (1, 3) of output 2, in whichever orientation.
    I, J = pair_indices(P)
    m, = [m for m in range(len(I)) if {I[m], J[m]} == {1, 3}]
    assert A[2, m] == W[2, I[m] * P + J[m]] - W[2, J[m] * P + I[m]]
    numpy.testing.assert_allclose(b, W.sum(axis=1) / 2, rtol=1e-15)
    gy = rng.randn(B, N)
    xf, Wf = chainer.Variable(x), chainer.Variable(W)
    yf = pairwise_difference(xf, Wf, 2)
    yf.grad = gy
    yf.backward()
    xp_, Ap = chainer.Variable(x), chainer.Variable(A)
    yp = pairwise_difference_pairs(xp_, Ap, chunk)
    yp.grad = gy
    yp.backward()
    numpy.testing.assert_allclose(yp.array + b, yf.array, rtol=1e-13, atol=1e-13)
    numpy.testing.assert_allclose(xp_.grad, xf.grad, rtol=1e-12, atol=1e-14)
    # dW_ij - dW_ji = g tanh(d / 2) = 2 dL/dA: the origin of the factor 2 on A's learning rate.
    numpy.testing.assert_allclose(fold(Wf.grad)[0], 2 * Ap.grad, rtol=1e-12, atol=1e-14)


def test_grad_node_computes_only_the_requested_gradients():
    check_grad_node_outputs(PairwiseDifferencePairsGrad, 15)


def test_no_input_gradient_is_computed_for_a_plain_array_input(monkeypatch):
    import importlib
    module = importlib.import_module('Friendly.functions.pairwise_difference_pairs')
    seen = []
    real = module.pairs_backward

    def spy(v, A, gy, chunk_size, need_v=True, need_A=True, **kwargs):
        seen.append((need_v, need_A))
        return real(v, A, gy, chunk_size, need_v, need_A, **kwargs)

    monkeypatch.setattr(module, 'pairs_backward', spy)
    A = chainer.Parameter(numpy.ones((2, 6)))
    y = pairwise_difference_pairs(numpy.zeros((3, 4)), A)
    F.sum(y).backward()
    assert seen == [(False, True)]


@pytest.mark.parametrize('wrt,seed', [('x', 3), ('A', 4)])
def test_double_backward_through_one_input(wrt, seed):
    check_double_backward_through(pairwise_difference_pairs, wrt, seed, 5, 10, 1)


def test_memory_stays_bounded_by_the_chunk():
    # B x M float32 is about half of the B x P x P tensor; one chunk of about 8 P pairs is 51 kB.
    x, A, full = memory_inputs(n_pairs(MEMORY_P))
    with TracedMemory() as memory:
        y = pairwise_difference_pairs(x, A, MEMORY_CHUNK)
        held, peak_forward = memory.mark()
        loss = F.sum(F.square(y))
        grads = chainer.grad([loss], [x, A], enable_double_backprop=True)
        penalty = F.sum(F.square(grads[0]))   # GMR-like: double backprop through the layer
        memory.mark()
        penalty.backward()
        after, peak_double = memory.mark()
    assert held < full / 20   # the graph keeps x and A (referenced), not T
    assert peak_forward < full / 8
    arrays = 4 * A.array.nbytes + 4 * x.array.nbytes   # gA, its double, A.grad, slack
    assert peak_double >= A.array.nbytes    # NumPy does report to tracemalloc
    assert peak_double < arrays + full / 8
    assert after < arrays + full / 20


# ------------------------------------------------------------------------------------------
# The trajectory of a whole network: full form against pair form, 20 momentum-SGD iterations.

P_SIDE = 6
SIZES = (P_SIDE * P_SIDE, 12, 11, 10)


class _NoRenormPD(chainer.Chain):
    """PD / linear / linear with sigmoids and no normalisation: here b reaches the loss."""

    def __init__(self, form):
        super(_NoRenormPD, self).__init__()
        with self.init_scope():
            P = SIZES[0]
            self.l1 = (FL.PairwiseDifferencePairs(P, SIZES[1]) if form == 'pairs'
                       else FL.PairwiseDifference(P, SIZES[1]))
            self.l2 = L.Linear(SIZES[1], SIZES[2])
            self.l3 = L.Linear(SIZES[2], SIZES[3])

    def forward(self, x):
        h = F.reshape(x, (len(x), -1))
        h = F.sigmoid(self.l1(h) / 50)   # a full PD output sums P^2 terms: keep it unsaturated
        return F.sigmoid(self.l3(F.sigmoid(self.l2(h))))


def _network(kind, form):
    if kind == 'renorm':
        net = models.FC100('PD', sizes=SIZES, pd_form=form, pd_chunk_size=2)
        for bn in net.batch_renorm_links():   # Batch Renormalization with open r and d
            bn.rmax, bn.dmax = 3.0, 5.0
        return net
    return _NoRenormPD(form)


def _batches(seed, n, scale):
    rng = numpy.random.RandomState(seed)
    for _ in range(n):
        if scale == 'pixels':   # MNIST-like: mostly background 0, some ink up to 255
            x = numpy.where(rng.rand(20, 1, P_SIDE, P_SIDE) < 0.4,
                            rng.uniform(0, 255, (20, 1, P_SIDE, P_SIDE)), 0.0)
        else:
            x = rng.uniform(-2, 2, (20, 1, P_SIDE, P_SIDE))
        yield x, rng.randint(0, 10, 20).astype(numpy.int32)


def _train(kind, form, scale, iterations=20, factors=None):
    """Train on the same batches; return per-iteration outputs and input gradients, the net."""
    with chainer.using_config('dtype', numpy.float64):
        numpy.random.seed(7)   # the initializers draw from numpy.random
        net = _network(kind, form)
    # The thesis's learning rate for PD; the plain net learns slowly and gets a larger one.
    optimizer = FastMomentumSGD(lr=0.002 if kind == 'renorm' else 0.05, momentum=0.85)
    optimizer.setup(net)
    if form == 'pairs':
        apply_pair_form_lr_factors(net, optimizer)
        if factors is not None:   # for the test that a wrong factor is caught
            from Friendly.optimizers import ScaledLearningRate
            for name, factor in factors.items():
                rule = getattr(net.l1, name).update_rule
                rule.hyperparam = ScaledLearningRate(optimizer.hyperparam, factor)
    outputs, input_grads = [], []
    with chainer.using_config('train', True):
        for x, t in _batches(3, iterations, scale):
            xv = chainer.Variable(x)
            loss = models.squared_distance_loss(net(xv), t)
            gx, = chainer.grad([loss], [xv])
            outputs.append(net(x).array)   # a second forward pass (moves BN averages alike)
            input_grads.append(gx.array)
            optimizer.update(lambda: models.squared_distance_loss(net(x), t))
    return numpy.array(outputs), numpy.array(input_grads), net


def _assert_close(actual, expected, what):
    # 1e-9 relative to the array's scale (entries near 0 are compared at that scale too).
    scale = numpy.abs(expected).max()
    numpy.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9 * scale, err_msg=what)


def _assert_same_trajectory(kind, scale, factors=None):
    y_full, gx_full, full = _train(kind, 'full', scale)
    y_pair, gx_pair, pair = _train(kind, 'pairs', scale, factors=factors)
    A_full, b_full = fold(full.l1.W.array)
    moved = numpy.abs(A_full - fold(_network_init(kind))[0]).max()
    assert moved > 1e-4   # the 20 iterations did change the weights
    _assert_close(y_pair, y_full, 'outputs')
    _assert_close(gx_pair, gx_full, 'input gradients')
    _assert_close(pair.l1.A.array, A_full, 'folded A')
    _assert_close(pair.l1.b.array, b_full, 'folded b')
    for name in ('l2', 'l3'):
        _assert_close(getattr(pair, name).W.array, getattr(full, name).W.array, name)


def _network_init(kind):
    with chainer.using_config('dtype', numpy.float64):
        numpy.random.seed(7)
        return _network(kind, 'full').l1.W.array


@pytest.mark.parametrize('scale', ['pixels', 'unit'])
def test_pair_form_follows_the_full_form_with_batch_renormalization(scale):
    _assert_same_trajectory('renorm', scale)


def test_pair_form_follows_the_full_form_without_normalization():
    # With Batch Renormalization after the layer b cannot reach the loss (its gradient is 0),
    # so its learning-rate factor is checked here, where it does.
    y_full, _, full = _train('plain', 'full', 'unit')
    assert abs(fold(full.l1.W.array)[1] - fold(_network_init('plain'))[1]).max() > 1e-3
    _assert_same_trajectory('plain', 'unit')


@pytest.mark.parametrize('kind,factors', [
    ('renorm', {'A': 1.0}), ('renorm', {'A': 2.0 * (1 + 1e-4)}),
    ('plain', {'A': 4.0}), ('plain', {'b': SIZES[0] ** 2 / 4.0 * (1 + 1e-4)}),
    ('plain', {'b': 1.0})])
def test_a_wrong_learning_rate_factor_breaks_the_equivalence(kind, factors):
    with pytest.raises(AssertionError):
        _assert_same_trajectory(kind, 'unit', factors=factors)


def test_same_seed_same_initial_network():
    numpy.random.seed(11)
    full = FL.PairwiseDifference(16, 3)
    after_full = numpy.random.rand()
    numpy.random.seed(11)
    pair = FL.PairwiseDifferencePairs(16, 3)
    after_pair = numpy.random.rand()
    A, b = fold(full.W.array)
    numpy.testing.assert_array_equal(pair.A.array, A)
    numpy.testing.assert_array_equal(pair.b.array, b)
    assert after_full == after_pair   # the same RNG draws, so later layers match too
    assert pair.lr_factors() == {'A': 2.0, 'b': 64.0}


def test_learning_rate_factors_follow_a_learning_rate_change():
    net = models.FC100('PD', sizes=(9, 4, 4, 10), pd_form='pairs')
    optimizer = FastMomentumSGD(lr=0.002, momentum=0.85)
    optimizer.setup(net)
    assert apply_pair_form_lr_factors(net, optimizer) == 2
    assert net.l1.A.update_rule.hyperparam.lr == pytest.approx(0.004)
    assert net.l1.b.update_rule.hyperparam.lr == pytest.approx(0.002 * 81 / 4)
    optimizer.lr = 0.01   # what a schedule extension does
    assert net.l1.A.update_rule.hyperparam.lr == pytest.approx(0.02)
    assert net.l1.b.update_rule.hyperparam.lr == pytest.approx(0.01 * 81 / 4)
    assert net.l1.A.update_rule.hyperparam.momentum == 0.85
    assert net.l2.W.update_rule.hyperparam.lr == pytest.approx(0.01)
    apply_pair_form_lr_factors(net, optimizer)   # applying twice does not compound
    assert net.l1.A.update_rule.hyperparam.lr == pytest.approx(0.02)


@pytest.mark.parametrize('make', [
    lambda: chainer.optimizers.Adam(), lambda: chainer.optimizers.RMSprop()])
def test_refuses_optimizers_where_it_is_not_exact(make):
    net = models.FC100('PD', sizes=(9, 4, 4, 10), pd_form='pairs')
    optimizer = make()
    optimizer.setup(net)
    with pytest.raises(PairFormError, match='SGD'):
        apply_pair_form_lr_factors(net, optimizer)


def test_refuses_gradient_clipping_and_weight_decay():
    for hook in (chainer.optimizer_hooks.GradientClipping(10.0),
                 chainer.optimizer_hooks.WeightDecay(1e-4)):
        net = models.FC100('PD', sizes=(9, 4, 4, 10), pd_form='pairs')
        optimizer = chainer.optimizers.MomentumSGD()
        optimizer.setup(net)
        optimizer.add_hook(hook)
        with pytest.raises(PairFormError, match='hooks'):
            apply_pair_form_lr_factors(net, optimizer)


def test_forward_at_mnist_size_matches_the_full_form():
    # P = 784, the real layer size, forward only (float64, a few outputs so it stays cheap).
    rng = numpy.random.RandomState(2)
    P, N = 784, 3
    x = numpy.where(rng.rand(4, P) < 0.2, rng.uniform(0, 255, (4, P)), 0.0)
    W = rng.uniform(-1, 1, (N, P * P))
    A, b = fold(W)
    y_full = pairwise_difference(x, W).array
    y_pair = pairwise_difference_pairs(x, A).array + b
    numpy.testing.assert_allclose(y_pair, y_full, rtol=1e-9, atol=1e-9 * abs(y_full).max())


def test_a_saved_pair_form_model_loads_back_as_pairs(tmp_path):
    from Friendly import runs
    from lenses_common.snapshots import FINAL_MODEL
    from Friendly.train_args import build_parser, check_args, settings_from_args
    from lenses_common.runfolder import save_npz
    from lenses_common.runfolder import atomic_write_json
    parser = build_parser()
    args = parser.parse_args(['--variant', 'PD', '--pd-form', 'pairs', '--out', str(tmp_path)])
    check_args(parser, args)
    settings = settings_from_args(args)
    assert settings['pd_form'] == 'pairs'
    settings['sizes'] = list(SIZES)
    atomic_write_json(str(tmp_path / 'settings.json'), settings)
    numpy.random.seed(3)
    net = models.FC100('PD', sizes=SIZES, pd_form='pairs')
    save_npz(str(tmp_path / FINAL_MODEL), net)
    loaded, _ = runs.load_run(str(tmp_path))
    assert isinstance(loaded.l1, FL.PairwiseDifferencePairs)
    numpy.testing.assert_array_equal(loaded.l1.A.array, net.l1.A.array)
    numpy.testing.assert_array_equal(loaded.l1.b.array, net.l1.b.array)
    x = numpy.random.RandomState(0).uniform(0, 255, (4, 1, P_SIDE, P_SIDE)).astype('f')
    with models.evaluation_mode(net), chainer.no_backprop_mode():
        expected = net(x).array
    with models.evaluation_mode(loaded), chainer.no_backprop_mode():
        numpy.testing.assert_array_equal(loaded(x).array, expected)
    # A full-form run folder's settings do not name the form: they stay as they were.
    full = settings_from_args(parser.parse_args(['--variant', 'PD', '--out', str(tmp_path)]))
    assert 'pd_form' not in full


@pytest.mark.parametrize('argv,message', [
    (['--variant', 'PD', '--pd-form', 'pairs', '--stabilize'], 'gradient clipping'),
    (['--variant', 'S', '--pd-form', 'pairs'], 'PD only'),
])
def test_train_refuses_inexact_combinations(argv, message, tmp_path, capsys):
    from Friendly.train_args import build_parser, check_args
    parser = build_parser()
    with pytest.raises(SystemExit):
        check_args(parser, parser.parse_args(argv + ['--out', str(tmp_path)]))
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and '--pd-form pairs' in err[-1]


def test_the_gradient_buffer_is_reused_only_when_free():
    rng = numpy.random.RandomState(4)
    link = FL.PairwiseDifferencePairs(6, 3)
    x = rng.uniform(-2, 2, (4, 6)).astype(numpy.float32)
    i, j = pair_indices(6)
    T = numpy.tanh((x[:, i] - x[:, j]) / 2)

    def backward(gy):
        link.cleargrads()
        y = link(x)
        y.grad = gy.astype(numpy.float32)
        y.backward()
        numpy.testing.assert_allclose(link.A.grad, 0.5 * gy.T @ T, rtol=1e-5, atol=1e-6)
        return link.A.grad

    first = backward(rng.randn(4, 3))
    first_copy = first.copy()
    second = backward(rng.randn(4, 3))
    assert second is not first   # the first was still referenced: not overwritten
    numpy.testing.assert_array_equal(first, first_copy)
    second_id = id(second)
    del first, second
    third = backward(rng.randn(4, 3))
    assert id(third) == second_id   # nothing referred to it any more: reused
    assert link.copy(mode='copy')._gradient_buffer.array is None


def test_bench_pairs_times_both_forms_side_by_side():
    from Friendly.bench import pairs
    text, figures = pairs.run(repeats=1, warmup=1, sizes=SIZES)
    P, N = SIZES[0], SIZES[1]
    assert figures['full']['weight_mb'] == pytest.approx(4 * N * P * P / 1e6)
    assert figures['pairs']['weight_mb'] == pytest.approx(4 * (N * P * (P - 1) / 2 + N) / 1e6)
    for form in ('full', 'pairs'):
        f = figures[form]
        assert f['ms'] > 0 and f['streamed_mb'] == pytest.approx(7 * f['weight_mb'])
        assert '| {} |'.format(form) in text
    assert figures['ratio'] == pytest.approx(figures['pairs']['ms'] / figures['full']['ms'])
    assert 'Pair form / full form' in text


@pytest.mark.slow   # three short trainings at P = 784 (about a minute)
def test_a_killed_pair_form_training_resumes_to_the_same_model(tmp_path, mnist_dir):
    import os
    import signal
    import subprocess
    import sys
    import time
    argv = [sys.executable, '-m', 'Friendly.train', '--variant', 'PD', '--pd-form', 'pairs',
            '--train-subset', '60', '--val-subset', '200', '--epoch', '3', '--no-progress',
            '--mnist-dir', mnist_dir]
    env = dict(os.environ, OPENBLAS_NUM_THREADS='1')
    whole, cut = tmp_path / 'whole', tmp_path / 'cut'
    subprocess.run(argv + ['--out', str(whole)], check=True, env=env, capture_output=True)
    job = subprocess.Popen(argv + ['--out', str(cut)], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (cut / 'snapshot_epoch_1').exists() and job.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)   # snapshots are written to a temporary file, then renamed
    job.wait()
    assert not (cut / 'model_final.npz').exists()
    subprocess.run(argv + ['--out', str(cut), '--resume'], check=True, env=env,
                   capture_output=True)
    a, b = numpy.load(str(whole / 'model_final.npz')), numpy.load(str(cut / 'model_final.npz'))
    assert sorted(a.files) == sorted(b.files) and 'l1/A' in a.files
    for key in a.files:
        numpy.testing.assert_array_equal(a[key], b[key], err_msg=key)


class TestFailures:

    @pytest.mark.parametrize('x_shape,x_dtype,a_shape,a_dtype,match', [
        # Full-form columns, not P (P - 1) / 2.
        pytest.param((2, 4), F32, (3, 16), F32, 'A.shape', id='wrong_number_of_pair_weights'),
        pytest.param((2, 4), F32, (3, 6), F64, 'dtype', id='mixed_float_dtypes'),
    ])
    def test_bad_input(self, x_shape, x_dtype, a_shape, a_dtype, match):
        check_refused_types(pairwise_difference_pairs, x_shape, x_dtype, a_shape, a_dtype, match)

    @pytest.mark.parametrize('chunk', BAD_CHUNK_SIZES)
    def test_bad_chunk_size(self, chunk):
        with pytest.raises(ValueError, match='chunk_size'):
            pairwise_difference_pairs(numpy.zeros((2, 4)), numpy.zeros((3, 6)), chunk)


testing.run_module(__name__, __file__)
