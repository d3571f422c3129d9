"""Data-parallel training with ChainerMN: everything MPI-specific lives here.

``Friendly.train`` and ``Counting.train`` reach it through the seams of
:class:`lenses_common.training.TrainingScaffold`, which holds the :class:`Distributed`::

    TrainingScaffold(..., dist=distributed.from_args(args, parser))  # checks, communicator
    scaffold.open(settings, ...)        # dist.record: communicator, comm_size in settings.json
    scaffold.writer                     # dist.is_writer: rank 0 alone writes the run folder
    scaffold.make_trainer(...)          # Trainer(out=dist.out(out)); dist.extend: observations
    scaffold.setup_optimizer(...)       # dist.optimizer: gradients averaged over the ranks
    scaffold.train_iterator(...)        # dist.shard, dist.local: this rank's part and batch
    scaffold.add_evaluator(...)         # dist.evaluator: validation averaged over the ranks
    FriendlyClassifier(norm=scaffold.dist.gradient_norm(...))   # GMR's norm over all ranks
    distributed.guarded(main)           # a rank that fails alone aborts the job

Without ``--communicator`` :func:`from_args` returns a :class:`Distributed` that does nothing
(MPI is not even imported), so a run is exactly what it was. With it, under ``mpiexec -n K``:

- ``--batchsize`` (and the validation batch) stay global: each rank takes ``batchsize / K``
  images, and a size K does not divide is refused;
- each rank trains on its own contiguous ``1/K`` of the (already shuffled) training set, the split
  of ``chainermn.scatter_dataset`` (``chainermn.datasets.scatter_index``, equal lengths): every
  rank reads the same files, so nothing is broadcast (``scatter_dataset`` would pickle the whole
  dataset through MPI);
- ``chainermn.create_multi_node_optimizer`` averages the gradients (allreduce) before every update
  and broadcasts rank 0's initial weights; ``chainermn.create_multi_node_evaluator`` averages the
  validation means; the training observations (``main/*``) are averaged too, so the log, early
  stopping, the renorm schedule and the NaN checks see the global-batch values on every rank and
  every rank stops at the same iteration;
- rank 0 alone writes the run folder; the other ranks write into a temporary folder deleted at
  exit, and print nothing on stdout;
- Batch Renormalization keeps per-rank statistics (docs/seeds-mpi-chainermn.md).
"""
import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
import time

COMMUNICATORS = ('naive', 'flat', 'pure_nccl')
# Set by the process managers that start MPI ranks: MPICH/Intel MPI (hydra) and Slurm's PMI2 set
# PMI_RANK, PMIx launchers PMIX_RANK, Open MPI OMPI_COMM_WORLD_RANK, MVAPICH MV2_COMM_WORLD_RANK.
LAUNCHER_VARIABLES = ('PMI_RANK', 'PMIX_RANK', 'OMPI_COMM_WORLD_RANK', 'MV2_COMM_WORLD_RANK')
# How long a failing rank waits for the others at exit before aborting the whole job.
EXIT_WAIT_SECONDS = 20.0

_active = None   # the Distributed of this process once from_args ran with --communicator


def add_communicator_argument(parser):
    parser.add_argument(
        '--communicator', choices=COMMUNICATORS, default=None,
        help='train data-parallel under mpiexec -n K with this ChainerMN communicator: naive '
             '(CPU or GPU, through MPI), flat (GPU, through MPI), pure_nccl (GPU, NCCL); on GPUs '
             'each rank takes the GPU of its intra-node rank. --batchsize stays the global '
             'batch, each rank takes 1/K (default: one process, no MPI)')
    return parser


def launched_by_mpi(environ=None):
    """True when a process manager (mpiexec, srun) started this process as an MPI rank."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in LAUNCHER_VARIABLES)


def _launcher_rank(environ=None):
    environ = os.environ if environ is None else environ
    for name in LAUNCHER_VARIABLES:
        if environ.get(name, '').isdigit():
            return int(environ[name])
    return 0


def _fail(parser, message, rank=0):
    """Exit 2 with one line on rank 0 (every rank reaches the same check and exits too)."""
    parser.exit(2, '{}: error: {}\n'.format(parser.prog, message) if rank == 0 else None)


class Distributed(object):
    """One training process's view of the job; ``comm`` None means a single process."""

    def __init__(self, comm=None, name=None):
        self.comm = comm
        self.name = name
        self._exit_comm = None
        self._tmp = None

    @property
    def enabled(self):
        return self.comm is not None

    @property
    def size(self):
        return self.comm.size if self.comm is not None else 1

    @property
    def rank(self):
        return self.comm.rank if self.comm is not None else 0

    @property
    def is_writer(self):
        return self.rank == 0

    def record(self, settings):
        """Put ``communicator`` and ``comm_size`` into a run's settings (only with a communicator;
        a ``communicator: None`` taken from ``vars(args)`` is removed)."""
        if self.enabled:
            settings['communicator'] = self.name
            settings['comm_size'] = self.size
        else:
            settings.pop('communicator', None)
        return settings

    def local(self, batchsize):
        """This rank's share of a global batch size (checked divisible in :func:`from_args`)."""
        return batchsize // self.size

    def out(self, path):
        """The run folder this rank writes: ``path`` on rank 0, else a temporary folder."""
        if self.is_writer:
            return path
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix='chainermn-rank{}-'.format(self.rank))
            atexit.register(shutil.rmtree, self._tmp, True)
        return self._tmp

    def shard(self, dataset):
        """This rank's contiguous part of ``dataset``: ``chainermn.scatter_dataset``'s split
        (equal lengths, the last part padded from the start) without broadcasting the data."""
        if not self.enabled or self.size == 1:
            return dataset
        import chainer
        from chainermn.datasets import scatter_index
        begin, end = scatter_index(len(dataset), self.comm)
        return chainer.datasets.SubDataset(dataset, begin, end)

    def optimizer(self, optimizer):
        """Wrap a set-up optimizer so that every update uses the gradients averaged over ranks."""
        if not self.enabled:
            return optimizer
        import chainermn
        wrapped = chainermn.create_multi_node_optimizer(optimizer, self.comm)
        return _first_update_too_class(type(wrapped))(optimizer, self.comm, wrapped.zero_fill)

    def evaluator(self, evaluator):
        """Make an Evaluator report the mean over the ranks of its per-rank means."""
        if not self.enabled:
            return evaluator
        import chainermn
        return chainermn.create_multi_node_evaluator(evaluator, self.comm)

    def gradient_norm(self, stabilize_eps=1e-20):
        """A ``norm(g, stabilize)`` for GMR's penalty: the L2 norm of the whole global batch's
        input gradient, not of this rank's part (None for one process).

        The penalty ``w * ||d loss / d x||`` is not a sum over images, so a mean of per-rank
        penalties is not the global one. Each rank's gradient ``g`` is K times its share of the
        global one (its loss is a mean over B/K images), so the global norm is
        ``sqrt(sum_k |g_k|^2) / K``: one scalar allreduce. The returned value is that norm; its
        gradient is K times this rank's part, so the optimizer's mean over ranks is the gradient
        of the global penalty.
        """
        if not self.enabled or self.size == 1:
            return None
        import chainer.functions as F
        size, mpi = self.size, self.comm.mpi_comm

        def norm(g, stabilize=False):
            import numpy
            squared = F.sum(F.square(g)) / (size * size)
            local = numpy.array([float(chainer_array(squared))], dtype=numpy.float64)
            total = numpy.zeros_like(local)
            mpi.Reduce(local, total, root=0)
            mpi.Bcast(total, root=0)
            others = total[0] - local[0] + (stabilize_eps if stabilize else 0.0)
            value = F.sqrt(squared + squared.xp.asarray(others, dtype=squared.dtype))
            return size * value - (size - 1) * value.array

        return norm

    def extend(self, trainer):
        """Average the training observations over the ranks (before any other extension)."""
        if self.enabled:
            trainer.extend(ObservationMean(self.comm), name='chainermn_observation_mean')


def _first_update_too_class(base):
    """ChainerMN's multi-node optimizer whose first update is applied, not only a broadcast.

    ChainerMN's first ``update`` (and any after a lazily initialised link gets its weights) only
    broadcasts rank 0's weights and skips the step, so a K-rank run would do one update less than
    one process. Here the gradients are computed first, then the weights broadcast; when every
    rank already held rank 0's weights (the same seed), the gradients are valid and the update is
    made. Only when the broadcast changed some rank's weights is the step skipped, as ChainerMN
    does.
    """

    class FirstUpdateToo(base):
        def update(self, lossfun=None, *args, **kwds):
            import numpy
            target = self.target
            if lossfun is not None:
                loss = lossfun(*args, **kwds)
                target.cleargrads()
                loss.backward(loss_scale=self.actual_optimizer._loss_scale)
                del loss
            if self.is_changed(target):
                before = [chainer_array(p.array).copy() for _, p in sorted(target.namedparams())
                          if p.array is not None]
                self.communicator.bcast_data(target)
                after = [chainer_array(p.array) for _, p in sorted(target.namedparams())
                         if p.array is not None]
                moved = numpy.array([float(any(not numpy.array_equal(a, b)
                                               for a, b in zip(before, after)))])
                anywhere = numpy.zeros_like(moved)
                self.communicator.mpi_comm.Allreduce(moved, anywhere)
                if anywhere[0]:
                    return
            self.communicator.multi_node_mean_grad(target, self.zero_fill)
            self.actual_optimizer.update(None, *args, **kwds)

    return FirstUpdateToo


def chainer_array(value):
    import chainer
    return chainer.backend.CpuDevice().send(chainer.as_array(value))


def _observation_mean_class():
    from chainer import training

    class _ObservationMean(training.Extension):
        """Replaces every scalar ``main/*`` observation by its mean over the ranks.

        Runs after each update, before all other extensions and the stop trigger. The sum is
        reduced on rank 0 and broadcast, so every rank holds the same bits.
        """

        trigger = 1, 'iteration'
        priority = training.PRIORITY_WRITER + 2000

        def __init__(self, comm):
            self.comm = comm

        def __call__(self, trainer):
            import numpy
            import chainer
            observation = trainer.observation
            keys = sorted(k for k in observation if k.startswith('main/'))
            if not keys:
                return
            local = numpy.array([float(chainer.as_array(observation[k])) for k in keys],
                                dtype=numpy.float64)
            mpi = self.comm.mpi_comm
            total = numpy.zeros_like(local)
            mpi.Reduce(local, total, root=0)
            mpi.Bcast(total, root=0)
            for key, value in zip(keys, total / self.comm.size):
                observation[key] = float(value)

    return _ObservationMean


def ObservationMean(comm):
    return _observation_mean_class()(comm)


def _check_gpu_communicator(name, args, parser, rank):
    """flat and pure_nccl work on GPUs only (ChainerMN's table); pure_nccl also needs NCCL."""
    spec = str(getattr(args, 'device', None) or '')
    try:
        import cupy
        gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception:
        gpus = 0
    if gpus < 1:
        _fail(parser, '--communicator {} needs CuPy and a GPU; use naive on the CPU'.format(name),
              rank)
    if name == 'pure_nccl':
        from chainermn import nccl
        if not nccl._available:
            _fail(parser, '--communicator pure_nccl: CuPy was built without NCCL '
                          '(cupy.cuda.nccl is missing); use naive or flat', rank)
    if spec and not spec.startswith('@cupy') and not spec.isdigit():
        _fail(parser, '--communicator {} needs a GPU --device (@cupy:0), got --device {}; use '
                      'naive on the CPU'.format(name, spec), rank)


def from_args(args, parser, batch_options=('batchsize',)):
    """The :class:`Distributed` of this process for ``args.communicator``.

    Every check fails the same way on every rank, so every rank exits with status 2 and rank 0
    alone prints the one line: ``--communicator`` without mpi4py, or not started by an MPI
    launcher (``mpiexec -n 1`` is allowed: K = 1); ``pure_nccl`` without CuPy, NCCL or a GPU
    device; a global batch size (``batch_options``) that K does not divide.
    """
    global _active
    name = getattr(args, 'communicator', None)
    if name is None:
        return Distributed()
    rank = _launcher_rank()
    # The checks that need no MPI come first, so that each reads the same with or without mpi4py.
    if not launched_by_mpi():
        _fail(parser, '--communicator {}: not started by an MPI launcher; run it as mpiexec -n K '
                      '{} ... (no {} variable is set)'.format(
                          name, os.path.basename(sys.executable), '/'.join(LAUNCHER_VARIABLES)),
              rank)
    if name in ('flat', 'pure_nccl'):
        _check_gpu_communicator(name, args, parser, rank)
    if importlib.util.find_spec('mpi4py') is None:
        _fail(parser, '--communicator {}: mpi4py is not installed (make install-mpi)'.format(
            name), rank)
    try:
        from mpi4py import MPI
    except ImportError as e:
        _fail(parser, '--communicator {}: mpi4py does not load ({})'.format(name, e), rank)
    size = MPI.COMM_WORLD.size
    rank = MPI.COMM_WORLD.rank
    for option in batch_options:
        value = getattr(args, option)
        if value % size:
            _fail(parser, '--{} {} is the global batch; the {} MPI processes must divide it'
                          ' (use a multiple of {})'.format(option.replace('_', '-'), value, size,
                                                           size), rank)
    import chainermn
    try:
        comm = chainermn.create_communicator(name, MPI.COMM_WORLD)
    except (RuntimeError, ImportError) as e:   # the same on every rank
        _fail(parser, '--communicator {}: {}'.format(name, e), rank)
    if name == 'pure_nccl' or str(getattr(args, 'device', '') or '').startswith('@cupy'):
        args.device = '@cupy:{}'.format(comm.intra_rank)
    dist = Distributed(comm, name)
    dist._exit_comm = MPI.COMM_WORLD.Dup()
    _active = dist
    if rank != 0:   # the file descriptor: PrintReport keeps the sys.stdout of its import
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    print('ChainerMN: {} processes, communicator {}; per process: {}'.format(
        size, name, ', '.join('--{} {}'.format(o.replace('_', '-'), getattr(args, o) // size)
                              for o in batch_options)), flush=True)
    return dist


def _all_arrive(comm, seconds):
    """True when every rank enters this barrier within ``seconds`` (a non-blocking barrier on a
    communicator of its own, so it cannot match a collective of the training)."""
    request = comm.Ibarrier()
    deadline = time.time() + seconds
    while time.time() < deadline:
        if request.Test():
            return True
        time.sleep(0.05)
    return False


def guarded(main, *args, **kwargs):
    """Run ``main``; under MPI, a rank that fails while the others do not aborts the job.

    A failure every rank meets (a bad option, a NaN loss averaged over the ranks) ends every rank
    within :data:`EXIT_WAIT_SECONDS` with its own status. A failure of one rank alone (an
    exception, an exit the others do not share) would leave the others waiting in the next
    allreduce for ever; there ``MPI_Abort`` ends the job.
    """
    try:
        return main(*args, **kwargs)
    except BaseException as e:
        dist = _active
        if dist is None or dist.size == 1 or dist._exit_comm is None:
            raise
        failed = not (isinstance(e, SystemExit) and e.code in (0, None))
        if failed and not _all_arrive(dist._exit_comm, EXIT_WAIT_SECONDS):
            if not isinstance(e, SystemExit):
                import traceback
                traceback.print_exc()
            sys.stderr.write('error: rank {} failed alone ({}); aborting all {} MPI processes\n'
                             .format(dist.rank, type(e).__name__, dist.size))
            sys.stderr.flush()
            from mpi4py import MPI
            MPI.COMM_WORLD.Abort(e.code if isinstance(e, SystemExit)
                                 and isinstance(e.code, int) else 1)
        raise
