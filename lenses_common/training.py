"""Chainer's Trainer assembly, shared by ``Friendly.train`` and ``Counting.train``.

A part's ``train.py`` keeps what is its own: its arguments, network, data, loss and its own
extensions (renorm schedules, learning-rate steps, early stopping). :class:`TrainingScaffold`
does the rest, with Chainer's own extensions wherever they exist:

- the run folder: ``--out`` checked before any work; an earlier run refused unless resumed or
  forced (moved aside to ``OUT.old-N``, never deleted); ``settings.json`` and ``command.txt``
  (:class:`lenses_common.runfolder.RunFolder`) and the settings header printed at the start;
- ``--resume``: the snapshot (``auto``: the newest in ``--out``), the identity check (the run that
  wrote it must have the same defining settings), and the snapshot loaded without pickle
  (:mod:`lenses_common.safe_npz`);
- ``extensions.snapshot`` (lowest priority, so it holds the state after every other extension of
  its iteration), ``LogReport``, ``PlotReport``, ``PrintReport``, ``ProgressBar``, and the model
  with the best monitored value (``snapshot_object`` on a ``MinValueTrigger``);
- :class:`NonFiniteCheck`: a NaN or infinite loss, gradient or parameter stops the run at that
  iteration, before any other extension sees it; :meth:`TrainingScaffold.run` turns it into one
  line naming the epoch, the iteration and the last good snapshot; no final model is written;
- the final model written atomically (:meth:`TrainingScaffold.save`).

Seams for data-parallel training (ChainerMN); each is one method or flag, so that a
communicator slots in at one place:

- optimizer: :meth:`TrainingScaffold.setup_optimizer` (``chainermn.create_multi_node_optimizer``);
- data: :meth:`TrainingScaffold.train_dataset` and :meth:`TrainingScaffold.eval_dataset`, which
  :meth:`~TrainingScaffold.train_iterator` and :meth:`~TrainingScaffold.eval_iterator` call
  (``chainermn.scatter_dataset``);
- evaluation: :meth:`TrainingScaffold.add_evaluator` (``chainermn.create_multi_node_evaluator``);
- file output: ``writer`` (False on every rank but 0). Every file and every line the scaffold
  writes (run folder, header, snapshots, log, plots, report, progress bar, model files) is behind
  ``self.writer``; a part's own files should test ``scaffold.writer`` too.

``dist`` (a :class:`lenses_common.distributed.Distributed`, from ``distributed.from_args``) fills
these seams; without one (or without ``--communicator``) every seam is the one-process behaviour.
With K ranks: the optimizer averages the gradients over the ranks; each rank iterates over its
1/K of each dataset with 1/K of each (global) batch size; the evaluator reports the mean over the
ranks; the training observations are averaged after every update; ``writer`` is rank 0; the other
ranks' Trainer writes into a temporary folder (``--resume``, the identity check and the ``--out``
checks still read the real ``out``, so every rank meets the same checks; their error lines are
printed by rank 0 alone); :meth:`TrainingScaffold.open` records ``communicator`` and
``comm_size`` in ``settings.json``. A part's ``__main__`` runs ``distributed.guarded(main)``.
"""
import glob
import json
import os

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
from chainer import training
from chainer.training import extensions
from chainer.training import triggers

from lenses_common import cli, distributed, lock, safe_npz
from lenses_common.nonfinite import NonFiniteCheck, NonFiniteError
from lenses_common.runfolder import OutError, RunFolder, check_out_dir, guard_run_folder
from lenses_common.runfolder import check_free_space, load_json, save_npz
from lenses_common.runfolder import write_error
from lenses_common.snapshots import FINAL_MODEL, SNAPSHOT_PREFIX, check_snapshot_counters
from lenses_common.snapshots import compressed_savefun, latest_snapshot, snapshot_savefun
from lenses_common.snapshots import final_name, snapshot_settings


class EpochSeededOrder(chainer.iterators.OrderSampler):
    """Order sampler for SerialIterator: epoch ``e`` is shuffled by ``RandomState([seed, e])``.

    Each epoch's order depends only on the seed and the epoch number, so a run resumed from a
    snapshot sees the same batches as an uninterrupted one (Chainer's default sampler draws from a
    generator whose state snapshots do not keep).
    """

    def __init__(self, seed):
        self.seed = int(seed)
        self.iterator = None    # set once the iterator exists; its epoch counter picks the order

    def __call__(self, current_order, current_position):
        # Called when an epoch ends, before the iterator counts it: the next epoch is epoch + 1.
        epoch = 0 if self.iterator is None else int(self.iterator.epoch) + 1
        return numpy.random.RandomState([self.seed, epoch]).permutation(len(current_order))


def identity(settings, keys):
    """The values of ``keys`` in ``settings`` (None for absent ones), JSON-normalized (a tuple
    equals a list, as after a round trip through ``settings.json``)."""
    return json.loads(json.dumps({k: settings.get(k) for k in keys}, sort_keys=True))


class TrainingScaffold:
    """The parts of a training run that do not depend on the network (see the module docstring).

    ``parser`` reports bad input (one line, exit status 2); ``out`` is the run folder; ``unit``
    ('epoch' or 'iteration') names the snapshots (``snapshot_epoch_N`` or ``snapshot_iter_N``);
    ``final_model`` is the file :meth:`save_final` writes, whose presence marks a finished run;
    ``compress`` chooses zlib for snapshots and model files; ``writer`` is False on processes
    that must write nothing (every rank but 0 of a data-parallel run); ``dist`` is the
    :class:`lenses_common.distributed.Distributed` of a data-parallel run (None: one process).
    """

    def __init__(self, parser, out, unit='epoch', final_model=FINAL_MODEL, compress=True,
                 writer=True, dist=None):
        if unit not in SNAPSHOT_PREFIX:
            raise ValueError('unit must be one of {}, got {!r}'.format(
                tuple(SNAPSHOT_PREFIX), unit))
        self.parser = parser
        self.out = out
        self.unit = unit
        self.prefix = SNAPSHOT_PREFIX[unit]
        self.final_model = final_model
        self.compress = bool(compress)
        self.dist = dist if dist is not None else distributed.Distributed()
        self.writer = bool(writer) and self.dist.is_writer
        self.run_folder = None
        self.trainer = None

    # -- before training ------------------------------------------------------------------------

    def error(self, message, usage=True):
        """Exit with status 2: ``parser.error`` (or one line without the usage, ``usage=False``)
        on the writer; the other ranks, which meet the same check, exit silently."""
        if not self.writer:
            self.parser.exit(2)
        if usage:
            self.parser.error(message)
        cli.fail(self.parser, message)

    def file(self, *names):
        return os.path.join(self.out, *names)

    def latest_snapshot(self):
        return latest_snapshot(self.out, self.prefix)

    def resolve_resume(self, value, missing_ok=False):
        """The snapshot to resume from: None for None; for 'auto' the newest in ``out`` (None if
        there is none and ``missing_ok``, else an error); otherwise a path that must exist."""
        if value is None:
            return None
        if value == 'auto':
            path = self.latest_snapshot()
            if path is None and not missing_ok:
                self.error('--resume: no {}* in {}'.format(self.prefix, self.out))
            return path
        if not os.path.isfile(value):
            self.error('--resume {}: no such snapshot file'.format(value))
        return value

    def check_identity(self, resume, settings, keys, what='describes another run'):
        """Refuse ``resume`` when the ``settings.json`` beside the snapshot (or in ``out``)
        differs from ``settings`` on ``keys``; the error line names the keys and their old
        values."""
        if resume is None:
            return
        wanted = identity(settings, keys)
        folders = [os.path.dirname(os.path.abspath(resume)), os.path.abspath(self.out)]
        sources = []
        for folder in dict.fromkeys(folders):
            path = os.path.join(folder, RunFolder.SETTINGS)
            if not os.path.lexists(path):
                continue
            try:
                previous = load_json(path)
            except ValueError as e:
                self.error('--resume: {}'.format(e), usage=False)
            sources.append((path, previous))
        if not sources:
            recorded = snapshot_settings(resume)
            if recorded is None:
                self.error('--resume {}: no {} beside the snapshot or in {}, and the snapshot '
                           'does not record the settings of its run; put the run\'s '
                           '{} back'.format(resume, RunFolder.SETTINGS, self.out,
                                            RunFolder.SETTINGS), usage=False)
            sources.append(('the snapshot\'s own settings', recorded))
        for path, previous in sources:
            if not isinstance(previous, dict):
                self.error('--resume: {} is not the settings of a run'.format(path))
            previous = identity(previous, keys)
            diff = [k for k in keys if previous[k] != wanted[k]]
            if diff:
                self.error('--resume {}: {} {} ({} differ: {})'.format(
                    resume, path, what, ', '.join(diff),
                    ', '.join('{}={} there'.format(k, json.dumps(previous[k])) for k in diff)))

    def guard(self, resume, force=False):
        """``out`` usable, and holding no earlier run unless resuming or ``force`` (which moves
        it aside); returns the note saying where it went, or None."""
        try:
            check_out_dir(self.out)
            if not self.writer:
                return None
            if os.path.isdir(self.out):
                # No second writer, and no moving aside of a folder another run is writing.
                lock.claim(self.out)
            moved = guard_run_folder(self.out, finished=(self.final_model,),
                                     in_progress=(self.prefix + '*',),
                                     resume=resume is not None, force=force)
            lock.claim(self.out)  # held until the process ends; leftovers of a kill removed
            return moved
        except OutError as e:
            self.error(str(e), usage=False)

    def open(self, settings, resume, argv, header):
        """Write ``settings.json`` and ``command.txt`` and print ``header`` (one line); a
        data-parallel run's ``settings`` get ``communicator`` and ``comm_size``."""
        self.dist.record(settings)
        self.settings = settings
        if self.writer:
            # settings.json and command.txt are written when training starts (:meth:`run`), so
            # a command refused after this point (a bad snapshot) leaves no trace in them.
            self._pending = (settings, resume is not None, argv)
            print(header, flush=True)
        return None

    def write_run_folder(self):
        """Write ``settings.json`` and ``command.txt`` (once; :meth:`run` calls it)."""
        pending = getattr(self, '_pending', None)
        if pending is not None and self.writer:
            self._pending = None
            settings, resumed, argv = pending
            self.run_folder = RunFolder(self.out, settings, resume=resumed, argv=argv)
        return self.run_folder

    # -- seams for data-parallel training (see the module docstring) -----------------------------

    def setup_optimizer(self, optimizer, model):
        """``optimizer.setup(model)``; data-parallel: wrapped to average the gradients."""
        optimizer.setup(model)
        return self.dist.optimizer(optimizer)

    def train_dataset(self, dataset):
        """This rank's part of ``dataset`` (all of it for one process)."""
        return self.dist.shard(dataset)

    def eval_dataset(self, dataset):
        return self.dist.shard(dataset)

    def local_batchsize(self, batchsize):
        """This rank's share of a global batch size (``distributed.from_args`` checked it)."""
        return self.dist.local(batchsize)

    def add_evaluator(self, iterator, target, device, trigger=(1, 'epoch'),
                      evaluator_class=extensions.Evaluator, name='validation', **kwargs):
        """An ``evaluator_class`` extension; data-parallel: the mean over the ranks."""
        evaluator = self.dist.evaluator(evaluator_class(iterator, target, device=device,
                                                        **kwargs))
        self.trainer.extend(evaluator, trigger=trigger, name=name)
        return evaluator

    # -- the trainer ----------------------------------------------------------------------------

    def train_iterator(self, dataset, batchsize, seed):
        """A repeating SerialIterator whose epochs are shuffled by (seed, epoch) only."""
        self.check_batchsize(batchsize, len(dataset))
        order = EpochSeededOrder(seed)
        iterator = chainer.iterators.SerialIterator(self.train_dataset(dataset),
                                                    self.local_batchsize(batchsize),
                                                    order_sampler=order)
        order.iterator = iterator
        return iterator

    def check_batchsize(self, batchsize, n, option='--batchsize'):
        """Refuse a batch larger than the training set: the epoch counter would jump and the
        schedules counted in iterations would not run as asked."""
        if batchsize > n:
            self.error('{} {} is larger than the training set ({} images); use at most '
                       '{}'.format(option, batchsize, n, n), usage=False)

    def eval_iterator(self, dataset, batchsize):
        return chainer.iterators.SerialIterator(self.eval_dataset(dataset),
                                                self.local_batchsize(batchsize),
                                                repeat=False, shuffle=False)

    def make_trainer(self, updater, stop_trigger, model):
        """``training.Trainer`` writing into ``out`` (another rank's: a temporary folder), with
        the :class:`NonFiniteCheck` of ``model`` (the link the optimizer updates) and, in a
        data-parallel run, the training observations averaged over the ranks before it."""
        self.trainer = training.Trainer(updater, stop_trigger, out=self.dist.out(self.out))
        self.trainer.extend(NonFiniteCheck(model), name='nonfinite_check')
        self.dist.extend(self.trainer)
        return self.trainer

    def add_reports(self, columns, plots=(), snapshot_interval=1, n_retains=1, progress=True,
                    progress_interval=50):
        """Snapshots every ``snapshot_interval`` epochs (the newest ``n_retains`` kept), the
        epoch ``log``, one PlotReport per ``(keys, file_name)`` of ``plots``, PrintReport of
        ``columns`` and (``progress``) the progress bar."""
        if not self.writer:
            return
        trainer = self.trainer
        self.check_disk(n_retains)
        # Lowest priority: the snapshot must hold the state after every other extension and
        # trigger of its iteration, or a resumed run would replay them.
        trainer.extend(extensions.snapshot(savefun=snapshot_savefun(self.compress,
                                                                    getattr(self, 'settings',
                                                                            None)),
                                           filename=self.prefix + '{.updater.%s}' % self.unit,
                                           n_retains=n_retains),
                       trigger=(snapshot_interval, 'epoch'), priority=-1000)
        trainer.extend(extensions.LogReport(trigger=(1, 'epoch')))
        if extensions.PlotReport.available():
            for keys, file_name in plots:
                trainer.extend(extensions.PlotReport(list(keys), 'epoch', file_name=file_name))
        trainer.extend(extensions.PrintReport(list(columns)))
        if progress:
            trainer.extend(extensions.ProgressBar(update_interval=progress_interval))

    def check_disk(self, n_retains=1):
        """Refuse, before training, a run whose snapshots and model files cannot fit on the disk:
        ``n_retains + 1`` snapshots at once (the new one is written before the oldest goes), each
        the parameters and the optimizer's state, and two model files; what is already in the
        folder counts as free. Lazily shaped parameters (not yet known) count as zero."""
        optimizer = self.trainer.updater.get_optimizer('main')
        params = sum(p.array.nbytes for _, p in optimizer.target.namedparams()
                     if p.array is not None)
        snapshot = sum(getattr(v, 'nbytes', 0) for v in
                       safe_npz.expected_entries(self.trainer.updater).values())
        needed = (n_retains + 1) * snapshot + 2 * params
        present = sum(os.path.getsize(p) for p in
                      glob.glob(os.path.join(glob.escape(self.out), self.prefix + '*')) +
                      glob.glob(os.path.join(glob.escape(self.out), '*.npz'))
                      if os.path.isfile(p))
        try:
            check_free_space(self.out, needed - present, 'the snapshots and model files')
        except OutError as e:
            self.error(str(e), usage=False)

    def add_best_model(self, target, file_name, key='validation/main/loss'):
        """``file_name``: ``target`` at the epoch with the lowest ``key`` so far."""
        if self.writer:
            self.trainer.extend(
                extensions.snapshot_object(target, file_name,
                                           savefun=compressed_savefun(self.compress)),
                trigger=triggers.MinValueTrigger(key, (1, 'epoch')))

    def load_snapshot(self, path):
        """Load ``path`` into the trainer (no pickle); a bad file is one line, exit status 2."""
        if self.writer:
            print('resuming from {}'.format(path), flush=True)
        try:
            arrays = safe_npz.read_npz(path, what='snapshot')
            safe_npz.check_entries(arrays, self.trainer, path, 'snapshot',
                                   safe_npz.TRAINER_LENIENT_PREFIXES)
            check_snapshot_counters(arrays, self.trainer.updater, path)
            safe_npz.load_npz(path, self.trainer, what='snapshot', arrays=arrays)
        except safe_npz.ModelFileError as e:
            self.error('--resume: {}'.format(e), usage=False)

    def last_log(self):
        """The newest entry of the epoch log, or None."""
        if not self.writer:
            return None
        log = self.trainer.get_extension('LogReport').log
        return log[-1] if log else None

    def run(self):
        """``trainer.run()``: None when it ends, or, when :class:`NonFiniteCheck` stopped it, the
        one-line message to print (``error: ...``, naming the last good snapshot)."""
        self.write_run_folder()
        try:
            self.trainer.run(show_loop_exception_msg=False)
        except KeyboardInterrupt:
            updater = self.trainer.updater
            snapshot = self.latest_snapshot()
            lines = '{}: interrupted at iteration {} (epoch {:.2f}); {}\n'.format(
                self.parser.prog, updater.iteration, updater.epoch_detail,
                'continue from the last snapshot with --resume ({})'.format(
                    os.path.basename(snapshot)) if snapshot else 'no snapshot yet')
            self.parser.exit(cli.EXIT_INTERRUPTED, lines if self.writer else None)
        except OSError as e:  # a full disk in a report or a plot: one line naming the folder
            raise write_error(final_name(e.filename) if e.filename else self.out, e) from None
        except NonFiniteError as e:
            snapshot = self.latest_snapshot()
            return '{}: error: {}: training stopped; {}; no {} written'.format(
                self.parser.prog,
                e, 'last good snapshot {}'.format(snapshot) if snapshot else 'no snapshot yet',
                self.final_model)
        return None

    # -- after training -------------------------------------------------------------------------

    def save(self, name, target, meta=None):
        """Write ``target`` to ``out/name`` atomically (never a partial file)."""
        if self.writer:
            save_npz(self.file(name), target, meta=meta, compression=self.compress)

    def save_final(self, target, meta=None):
        self.save(self.final_model, target, meta=meta)
        return self.file(self.final_model)
