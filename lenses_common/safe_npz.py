"""Loading model files and snapshots without running code from them.

Chainer's own npz loader opens the archive with pickles allowed: a pickle named
``model.npz``, or an ``.npz`` member holding an object array, runs its payload while it loads.
:func:`load_npz` here is used for every model and snapshot instead. It

1. refuses anything that is not a zip archive of ``.npy`` members, and any member whose header
   declares an object dtype, reading only the header (nothing is unpickled);
2. reads the arrays with ``numpy.load(..., allow_pickle=False)``;
3. compares every name, shape and dtype the target link, optimizer or trainer will read with the
   file, before anything is copied;
4. only then copies the values with Chainer's ``NpzDeserializer`` (which accepts any dict).

Every refusal is one :class:`ModelFileError` (a ``ValueError``) whose one-line message names the
file.
"""
import copy
import os
import stat
import zipfile

import numpy
import numpy.lib.format

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
from chainer import serializer as serializer_module

ZIP_MAGIC = (b'PK\x03\x04', b'PK\x05\x06')
# Entries under these prefixes are the book-keeping of trainer extensions and of the stop trigger:
# a snapshot may lack them or hold others (a resumed run may add --test or a progress bar).
TRAINER_LENIENT_PREFIXES = ('extensions/', 'extension_triggers/', 'stop_trigger/',
                            '_snapshot_elapsed_time')
META_PREFIX = '_meta/'


class ModelFileError(ValueError):
    """A model or snapshot file that is refused; the message is one line naming the file."""


def _first_line(e):
    text = str(e).strip()
    return '{}: {}'.format(type(e).__name__, text.splitlines()[0]) if text else type(e).__name__


def _npy_header(archive, name):
    with archive.open(name) as f:
        version = numpy.lib.format.read_magic(f)
        if version == (1, 0):
            return numpy.lib.format.read_array_header_1_0(f)
        return numpy.lib.format.read_array_header_2_0(f)


def read_npz(path, what='model file'):
    """The arrays of the ``.npz`` at ``path`` as a dict ``{name: numpy.ndarray}``.

    Nothing is unpickled: a file that is not a zip archive (a pickle, say), a member that is not an
    ``.npy`` array, or one with an object dtype is refused with :class:`ModelFileError`.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ModelFileError('{} {} is not a regular file'.format(what, path))
        with open(path, 'rb') as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise ModelFileError('{} {} does not exist'.format(what, path)) from None
    except OSError as e:
        raise ModelFileError('{} {} cannot be read ({})'.format(what, path, _first_line(e))) \
            from None
    if magic not in ZIP_MAGIC:
        raise ModelFileError('{} {} is not a readable .npz (not a zip archive; refused unread, '
                             'as a pickle is never loaded)'.format(what, path))
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not name.endswith('.npy'):
                    raise ModelFileError('{} {} holds {!r}, which is not an .npy array'.format(
                        what, path, name))
                _, _, dtype = _npy_header(archive, name)
                if dtype.hasobject:
                    raise ModelFileError(
                        '{} {}: {} is an object array, which would be unpickled (refused; '
                        'a model file holds only numeric arrays)'.format(what, path, name[:-4]))
        arrays = {}
        with numpy.load(path, allow_pickle=False) as npz:
            for name in npz.files:
                arrays[name] = npz[name]
    except ModelFileError:
        raise
    except Exception as e:  # truncated, corrupt or foreign archives
        raise ModelFileError('{} {} is not a readable .npz ({})'.format(
            what, path, _first_line(e))) from None
    return arrays


class _Recorder(serializer_module.Serializer):
    """A serializer that records what a target saves: ``{key: value}`` with values as given."""

    def __init__(self, target=None, path=''):
        self.target = {} if target is None else target
        self.path = path

    def __getitem__(self, key):
        return _Recorder(self.target, self.path + key.strip('/') + '/')

    def __call__(self, key, value):
        self.target[self.path + key.lstrip('/')] = value
        return value


def _optimizer_state(trainer_or_updater, expected):
    """Add the per-parameter optimizer state of an updater to ``expected`` (it is created lazily,
    so a fresh optimizer does not save it): name -> zeros of the parameter's shape and dtype."""
    updater = getattr(trainer_or_updater, 'updater', trainer_or_updater)
    prefix = 'updater/' if updater is not trainer_or_updater else ''
    for opt_name, optimizer in updater.get_all_optimizers().items():
        for param_name, param in optimizer.target.namedparams():
            rule = getattr(param, 'update_rule', None)
            if rule is None:
                continue
            base = '{}optimizer:{}{}/'.format(prefix, opt_name, param_name)
            if rule.state is not None:
                continue  # already recorded by the optimizer's own serialize
            if param.array is None:
                continue  # a lazy parameter: its shape comes from the file
            probe = copy.copy(rule)
            probe._state = {}
            probe.init_state(param)
            for key, value in probe._state.items():
                expected[base + key] = chainer.backend.CpuDevice().send(value)
            expected.setdefault(base + 't', 0)


def expected_entries(target):
    """``{name: value}`` that ``target`` (a Link, or a Trainer / Updater) saves and will read."""
    recorder = _Recorder()
    if isinstance(target, chainer.training.Trainer):
        # Only the updater (model, optimizer, iterator) is compared; the rest of a trainer is
        # extension book-keeping (TRAINER_LENIENT_PREFIXES), and serializing it before the run
        # starts would ask for an elapsed time that does not exist yet.
        target.updater.serialize(recorder['updater'])
    else:
        target.serialize(recorder)
    expected = dict(recorder.target)
    if isinstance(target, (chainer.training.Trainer, chainer.training.Updater)):
        _optimizer_state(target, expected)
    return expected


def _kind_ok(value, found):
    """Whether the stored array ``found`` can fill the expected Python scalar ``value``."""
    if found.shape != ():
        return False
    kind = found.dtype.kind
    if isinstance(value, bool) or isinstance(value, numpy.bool_):
        return kind in 'biu'
    if isinstance(value, (int, numpy.integer)):
        return kind in 'biu'
    if isinstance(value, (float, numpy.floating)):
        return kind in 'biuf'
    if isinstance(value, str):
        return kind == 'U'
    return True


def check_entries(arrays, target, path, what='model file', lenient_prefixes=(),
                  network='network'):
    """Compare the file's ``arrays`` with what ``target`` reads; raise :class:`ModelFileError`.

    Array entries must have the same shape and dtype; scalar entries a compatible kind. Entries
    under ``lenient_prefixes`` may be missing or extra; entries under ``_meta/`` are the caller's.
    """
    expected = expected_entries(target)

    def lenient(name):
        return name.startswith(lenient_prefixes) if lenient_prefixes else False

    missing = sorted(k for k in expected if k not in arrays and not lenient(k))
    extra = sorted(k for k in arrays if k not in expected and not lenient(k)
                   and not k.startswith(META_PREFIX))
    wrong = []
    for name, value in sorted(expected.items()):
        if name not in arrays:
            continue
        found = arrays[name]
        if value is None:
            continue
        if hasattr(value, 'shape') and hasattr(value, 'dtype'):
            if tuple(found.shape) != tuple(value.shape) or found.dtype != value.dtype:
                wrong.append('{} is {} {} here but {} {} in the network'.format(
                    name, found.dtype, tuple(found.shape), value.dtype, tuple(value.shape)))
        elif not _kind_ok(value, found):
            wrong.append('{} is {} {} here but a {} is expected'.format(
                name, found.dtype, tuple(found.shape), type(value).__name__))
    problems = []
    if wrong:
        problems.append(wrong[0] + (' (and {} more)'.format(len(wrong) - 1)
                                    if len(wrong) > 1 else ''))
    if missing:
        problems.append('missing {}{}'.format(', '.join(missing[:3]),
                                              ' and {} more'.format(len(missing) - 3)
                                              if len(missing) > 3 else ''))
    if extra:
        problems.append('unexpected {}{}'.format(', '.join(extra[:3]),
                                                 ' and {} more'.format(len(extra) - 3)
                                                 if len(extra) > 3 else ''))
    if problems:
        raise ModelFileError('{} {} does not fit the {} ({})'.format(
            what, path, network, '; '.join(problems)))


def check_finite(arrays, path, what='model file', skip_prefixes=()):
    """Raise :class:`ModelFileError` when a floating-point entry (a parameter, a running average,
    an optimizer state) holds NaN or infinity: such a network's outputs are NaN or constant, and
    scoring it would report the share of one class, or a perfect robustness, as a result."""
    bad = []
    for name in sorted(arrays):
        value = arrays[name]
        if name.startswith(META_PREFIX) or (skip_prefixes and name.startswith(skip_prefixes)):
            continue
        if value.dtype.kind in 'fc' and value.size and not numpy.isfinite(value).all():
            bad.append('{} ({} of {} entries not finite)'.format(
                name, int(value.size - numpy.isfinite(value).sum()), value.size))
    if bad:
        raise ModelFileError('{} {} holds non-finite values in {}{}; refused (retrain, or '
                             'resume from an earlier snapshot)'.format(
                                 what, path, bad[0],
                                 ' and {} more'.format(len(bad) - 1) if len(bad) > 1 else ''))


def load_npz(path, target, what='model file', lenient_prefixes=None, network='network',
             arrays=None):
    """Safely load ``path`` into ``target`` (a Link or a Trainer); returns the ``_meta/`` entries.

    Raises :class:`ModelFileError` (one line naming ``path``) for a file that is not a plain
    ``.npz``, holds an object array, or does not fit ``target`` in names, shapes and dtypes.
    Nothing is copied into ``target`` unless the whole file fits. A Trainer's extension
    book-keeping is loaded where present (``lenient_prefixes``). Non-finite parameters, running
    averages or optimizer states are refused (:func:`check_finite`). ``arrays``: the file's
    :func:`read_npz`, when the caller has read it already.
    """
    if lenient_prefixes is None:
        lenient_prefixes = (TRAINER_LENIENT_PREFIXES
                            if isinstance(target, chainer.training.Trainer) else ())
    if arrays is None:
        arrays = read_npz(path, what)
    check_entries(arrays, target, path, what, lenient_prefixes, network)
    check_finite(arrays, path, what, lenient_prefixes)
    try:
        chainer.serializers.NpzDeserializer(arrays, strict=not lenient_prefixes).load(target)
    except Exception as e:
        raise ModelFileError('{} {} cannot be loaded ({})'.format(what, path, _first_line(e))) \
            from None
    return {k[len(META_PREFIX):]: v for k, v in arrays.items() if k.startswith(META_PREFIX)}


def meta_text(meta, key):
    """The string stored as ``_meta/<key>`` (a 0-d unicode array), or None."""
    value = meta.get(key)
    if value is None or value.dtype.kind != 'U' or value.shape != ():
        return None
    return str(value[()])
