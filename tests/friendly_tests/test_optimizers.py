import os

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
from chainer import serializers

from Friendly.optimizers import FastMomentumSGD


class _Model(chainer.Link):

    def __init__(self, rng, dtype):
        super().__init__()
        with self.init_scope():
            # 1850 values: not a multiple of the block size
            self.W = chainer.Parameter(rng.randn(50, 37).astype(dtype))
            self.b = chainer.Parameter(rng.randn(3).astype(dtype))


def _run(optimizer, model, grads):
    for step_grads in grads:
        model.W.grad = step_grads[0].copy()
        model.b.grad = step_grads[1].copy()
        optimizer.update()


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('block_size', [64, 1 << 16])
def test_same_parameters_as_momentum_sgd(dtype, block_size):
    rng = numpy.random.RandomState(0)
    grads = [(rng.randn(50, 37).astype(dtype), rng.randn(3).astype(dtype)) for _ in range(6)]
    stock = _Model(numpy.random.RandomState(1), dtype)
    fast = _Model(numpy.random.RandomState(1), dtype)
    opt_stock = chainer.optimizers.MomentumSGD(lr=0.07, momentum=0.85)
    opt_fast = FastMomentumSGD(lr=0.07, momentum=0.85, block_size=block_size)
    opt_stock.setup(stock)
    opt_fast.setup(fast)
    _run(opt_stock, stock, grads)
    _run(opt_fast, fast, grads)
    assert not numpy.array_equal(fast.W.array, _Model(numpy.random.RandomState(1), dtype).W.array)
    for name in ('W', 'b'):
        # The same float operations in the same order: equal, not merely close.
        numpy.testing.assert_array_equal(getattr(fast, name).array, getattr(stock, name).array)
        numpy.testing.assert_array_equal(getattr(fast, name).update_rule.state['v'],
                                         getattr(stock, name).update_rule.state['v'])
    # The gradient is left as it was (hooks or reports after the update may read it).
    numpy.testing.assert_array_equal(fast.b.grad, grads[-1][1])


def test_hyperparameters_and_missing_grad():
    model = _Model(numpy.random.RandomState(0), numpy.float32)
    before = model.W.array.copy()
    opt = FastMomentumSGD(lr=0.5, momentum=0.3)
    assert isinstance(opt, chainer.optimizers.MomentumSGD)
    assert (opt.lr, opt.momentum) == (0.5, 0.3)
    opt.setup(model)
    model.b.grad = numpy.ones(3, numpy.float32)
    opt.update()  # W has no gradient: it must not move
    numpy.testing.assert_array_equal(model.W.array, before)


def test_snapshot_resumes_in_both_directions(tmp_path):
    rng = numpy.random.RandomState(0)
    grads = [(rng.randn(50, 37).astype(numpy.float32), rng.randn(3).astype(numpy.float32))
             for _ in range(4)]
    ref = _Model(numpy.random.RandomState(1), numpy.float32)
    opt_ref = chainer.optimizers.MomentumSGD(lr=0.01, momentum=0.9)
    opt_ref.setup(ref)
    _run(opt_ref, ref, grads)

    first = _Model(numpy.random.RandomState(1), numpy.float32)
    opt_first = FastMomentumSGD(lr=0.01, momentum=0.9)
    opt_first.setup(first)
    _run(opt_first, first, grads[:2])
    path = os.path.join(str(tmp_path), 'opt.npz')
    serializers.save_npz(path, opt_first)
    saved = numpy.load(path)
    assert 'W/v' in saved.files and 'epoch' in saved.files  # MomentumSGD's layout

    for cls in (FastMomentumSGD, chainer.optimizers.MomentumSGD):
        second = first.copy(mode='copy')
        opt_second = cls(lr=0.01, momentum=0.9)
        opt_second.setup(second)
        serializers.load_npz(path, opt_second)
        assert opt_second.t == 2
        _run(opt_second, second, grads[2:])
        numpy.testing.assert_array_equal(second.W.array, ref.W.array)


def test_bad_block_size():
    with pytest.raises(ValueError, match='block_size'):
        FastMomentumSGD(block_size=0)


@pytest.mark.gpu
def test_gpu_uses_the_stock_kernel():
    rng = numpy.random.RandomState(0)
    grads = [(rng.randn(50, 37).astype(numpy.float32), rng.randn(3).astype(numpy.float32))
             for _ in range(3)]
    cpu = _Model(numpy.random.RandomState(1), numpy.float32)
    gpu = _Model(numpy.random.RandomState(1), numpy.float32)
    gpu.to_device('@cupy:0')
    opt_cpu = FastMomentumSGD(lr=0.1, momentum=0.85)
    opt_gpu = FastMomentumSGD(lr=0.1, momentum=0.85)
    opt_cpu.setup(cpu)
    opt_gpu.setup(gpu)
    _run(opt_cpu, cpu, grads)
    _run(opt_gpu, gpu, [tuple(gpu.device.send(g) for g in step) for step in grads])
    numpy.testing.assert_allclose(chainer.backend.CpuDevice().send(gpu.W.array), cpu.W.array,
                                  rtol=1e-6, atol=1e-6)
