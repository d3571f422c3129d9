"""The files of a training run folder: the final model's name, the snapshots and their writers.

Both parts name them alike: the finished run's model is ``model_final.npz`` (:data:`FINAL_MODEL`),
a snapshot ``snapshot_epoch_N`` or ``snapshot_iter_N`` (:data:`SNAPSHOT_PREFIX`, by the counter
that names it). :func:`snapshot_savefun` writes a snapshot that also records the run's settings,
:func:`check_snapshot_counters` refuses a snapshot whose counters cannot be those of the run.
"""
import glob
import json
import os
import re

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from lenses_common import safe_npz
from lenses_common.runfolder import write_error

#: The model file of a finished run (its presence marks the run finished).
FINAL_MODEL = 'model_final.npz'
#: Snapshot file prefix for each snapshot counter (``unit``).
SNAPSHOT_PREFIX = {'epoch': 'snapshot_epoch_', 'iteration': 'snapshot_iter_'}


def latest_snapshot(out, prefix=SNAPSHOT_PREFIX['epoch']):
    """The snapshot ``<prefix><N>`` with the largest N in ``out``, or None."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(out), prefix + '*')):
        match = re.search(re.escape(prefix) + r'(\d+)$', path)
        if match:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def compressed_savefun(compress):
    """``chainer.serializers.save_npz`` with or without zlib (uncompressed saves of large random
    weights are several times faster and hardly bigger)."""
    def save(path, target):
        try:
            chainer.serializers.save_npz(path, target, compression=bool(compress))
        except OSError as e:
            raise write_error(final_name(path), e) from None
    return save


def final_name(path):
    """The name a file written by Chainer's snapshot writers gets: they write
    ``OUT/tmpNAME.../NAME`` and move it to ``OUT/NAME``."""
    folder = os.path.dirname(path)
    if os.path.basename(folder).startswith('tmp'):
        return os.path.join(os.path.dirname(folder), os.path.basename(path))
    return path


#: ``_meta/`` key of a snapshot that holds the settings of the run that wrote it (JSON).
SNAPSHOT_SETTINGS_META = 'settings'


def snapshot_savefun(compress, settings):
    """A snapshot writer like :func:`compressed_savefun` whose file also records ``settings``
    (JSON, as ``_meta/settings``): a snapshot copied away from its ``settings.json`` still says
    which run it belongs to. Chainer's own loader ignores the extra entry."""
    text = None if settings is None else json.dumps(settings, sort_keys=True, default=str)

    def save(path, target):
        if isinstance(target, dict):  # Chainer's snapshot hands over the serialized trainer
            arrays = dict(target)
        else:
            serializer = chainer.serializers.DictionarySerializer()
            serializer.save(target)
            arrays = dict(serializer.target)
        if text is not None:
            arrays[safe_npz.META_PREFIX + SNAPSHOT_SETTINGS_META] = numpy.array(text)
        try:
            with open(path, 'wb') as f:
                (numpy.savez_compressed if compress else numpy.savez)(f, **arrays)
        except OSError as e:
            raise write_error(final_name(path), e) from None
    return save


def snapshot_settings(path):
    """The settings a snapshot recorded (:func:`snapshot_savefun`), or None; reads only that
    entry of the archive."""
    import zipfile
    name = safe_npz.META_PREFIX + SNAPSHOT_SETTINGS_META + '.npy'
    try:
        with zipfile.ZipFile(path) as archive:
            if name not in archive.namelist():
                return None
            with archive.open(name) as f:
                value = numpy.lib.format.read_array(f, allow_pickle=False)
        settings = json.loads(str(value[()]))
    except Exception:  # an unreadable snapshot is refused by the loader with its own line
        return None
    return settings if isinstance(settings, dict) else None


def _scalar(arrays, key):
    value = arrays.get(key)
    if value is None or value.shape != () or value.dtype.kind not in 'biuf':
        return None
    return value[()]


def check_snapshot_counters(arrays, updater, path):
    """Raise :class:`safe_npz.ModelFileError` when the snapshot's counters cannot be those of a
    run of ``updater``: negative counts, an iterator ``order`` that is not a permutation of the
    dataset's indices, a position outside the dataset, or an iteration, epoch and position that
    do not add up (a SerialIterator takes one batch per iteration:
    ``iteration * batch == epoch * len(dataset) + position``)."""
    def bad(message):
        raise safe_npz.ModelFileError('snapshot {}: {}'.format(path, message))

    iteration = _scalar(arrays, 'updater/iteration')
    if iteration is not None and iteration < 0:
        bad('updater/iteration is {}, a count must be >= 0'.format(iteration))
    for name, iterator in getattr(updater, '_iterators', {}).items():
        base = 'updater/iterator:{}/'.format(name)
        epoch = _scalar(arrays, base + 'epoch')
        position = _scalar(arrays, base + 'current_position')
        for key, value in (('epoch', epoch), ('current_position', position)):
            if value is not None and value < 0:
                bad('{}{} is {}, a count must be >= 0'.format(base, key, value))
        dataset = getattr(iterator, 'dataset', None)
        n = len(dataset) if dataset is not None else None
        order = arrays.get(base + 'order')
        if n is not None and order is not None and order.ndim == 1 and order.size:
            if (order.dtype.kind not in 'iu' or order.size != n
                    or not numpy.array_equal(numpy.sort(order), numpy.arange(n))):
                bad('{}order is not a permutation of the {} dataset indices'.format(base, n))
        if n is not None and position is not None and position >= n:
            bad('{}current_position {} is past the {} images of the dataset'.format(
                base, position, n))
        batch = getattr(iterator, 'batch_size', None)
        if (n and batch and iteration is not None and epoch is not None
                and position is not None and isinstance(iterator,
                                                        chainer.iterators.SerialIterator)
                and int(iteration) * int(batch) != int(epoch) * n + int(position)):
            bad('iteration {} of batch {} does not match epoch {} and position {} of {} images '
                '(the counters were edited, or the snapshot is of another run)'.format(
                    iteration, batch, epoch, position, n))
