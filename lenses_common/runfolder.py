"""Run folders: settings JSON and command line at start, atomic saves of models and results."""
import contextlib
import datetime
import json
import os
import shlex
import shutil
import sys
import tempfile

import numpy

from lenses_common.environment import environment


def current_umask():
    """The process's umask, read without changing it where Linux reports it."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or an exception leaves any earlier file at ``path`` untouched and no partial file.
    ``suffix`` keeps an extension on the temporary name for writers that look at it (``.npz``).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.',
                               suffix='.tmp' + suffix, dir=directory)
    try:
        # mkstemp makes the file 0600; give it the mode open() would (0644 under umask 022).
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode('utf-8'))


def _jsonable(value):
    if isinstance(value, (numpy.integer,)):
        return int(value)
    if isinstance(value, (numpy.floating,)):
        return float(value)
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    return str(value)


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + '\n')


def save_npz(path, target, meta=None, compression=True):
    """Save ``target`` as ``chainer.serializers.save_npz`` does, through a temporary file, so
    ``path`` is never partial. ``meta`` (``{key: str}``) adds ``_meta/<key>`` text entries, which
    :func:`lenses_common.safe_npz.load_npz` returns and Chainer's loader ignores."""
    import chainer
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(target)
    arrays = dict(serializer.target)
    for key, value in (meta or {}).items():
        arrays['_meta/' + key] = numpy.array(str(value))
    with atomic_path(path, suffix='.npz') as tmp:
        with open(tmp, 'wb') as f:
            (numpy.savez_compressed if compression else numpy.savez)(f, **arrays)


class OutError(ValueError):
    """An output path that cannot be used; the message is one line naming it."""


def check_out_dir(path, option='--out'):
    """Check, before any work, that the folder ``path`` exists and is writable or can be created.

    Nothing is created: the nearest existing folder is probed with a temporary file. Raises
    :class:`OutError` with a one-line message naming ``option`` and ``path``.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutError('{} {}: exists and is not a folder'.format(option, path))
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise OutError('{} {}: cannot be created, {} is not a folder'.format(option, path, probe))
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise OutError('{} {}: {} is not writable ({})'.format(
            option, path, probe, e.strerror or e)) from None
    return path


def out_error(parser, error):
    """Exit with status 2 and exactly one line on stderr, ``PROG: error: MESSAGE`` (argparse's
    ``parser.error`` would print the usage lines first)."""
    parser.exit(2, '{}: error: {}\n'.format(parser.prog, error))


def check_out_arg(parser, path, option='--out', is_file=False):
    """:func:`check_out_dir` for a command line: a bad ``path`` exits through :func:`out_error`
    (one line, status 2). ``is_file``: ``path`` names a file, whose folder is checked. ``None``
    (no such output asked for) passes."""
    if path is None:
        return None
    try:
        if is_file:
            if os.path.isdir(path):
                raise OutError('{} {}: is a folder, not a file'.format(option, path))
            check_out_dir(os.path.dirname(os.path.abspath(path)), option)
            return os.path.abspath(path)
        return check_out_dir(path, option)
    except OutError as e:
        out_error(parser, e)


def move_aside(path):
    """Rename ``path`` to the first free ``<path>.old-N``; return the new name (never deletes)."""
    path = os.path.normpath(os.fspath(path))
    n = 1
    while os.path.lexists('{}.old-{}'.format(path, n)):
        n += 1
    target = '{}.old-{}'.format(path, n)
    shutil.move(path, target)
    return target


def guard_run_folder(out, finished, in_progress, resume=False, force=False, option='--out'):
    """Refuse to write a new run over an old one; return a message when ``force`` moved it aside.

    ``finished`` and ``in_progress`` are glob patterns inside ``out`` (the final model, the
    snapshots). When ``out`` holds a match and neither ``resume`` nor ``force`` is given, raise
    :class:`OutError`; with ``force`` the old folder becomes ``<out>.old-N``.
    """
    import glob
    if resume or not os.path.isdir(out):
        return None
    found = [p for pattern in tuple(finished) + tuple(in_progress)
             for p in glob.glob(os.path.join(glob.escape(out), pattern))]
    if not found:
        return None
    done = any(glob.glob(os.path.join(glob.escape(out), p)) for p in finished)
    if not force:
        raise OutError('{} {} holds {} run ({}); pass --resume to continue it or --force to '
                       'move it aside and start anew'.format(
                           option, out, 'a finished' if done else 'an unfinished',
                           os.path.basename(sorted(found)[0])))
    return 'moved the earlier run in {} aside to {}'.format(out, move_aside(out))


def load_json(path, what='settings file'):
    """Read a JSON file, turning a missing or malformed file into a one-line ``ValueError``."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError('{} {} does not exist'.format(what, path)) from None
    except json.JSONDecodeError as e:
        raise ValueError('{} {} is not valid JSON ({})'.format(what, path, e)) from None


class RunFolder:
    """A folder for one run: ``settings.json`` and ``command.txt`` are written when it is opened.

    ``settings`` is a dict (or an ``argparse.Namespace``). A resumed run (``resume=True``) keeps the
    first ``settings.json`` and appends the new command line, so the folder records every
    invocation that wrote into it. ``settings.json`` also holds, under ``"environment"``, what the
    numbers depend on beyond the settings (:func:`lenses_common.environment.environment`: CPU model,
    BLAS and its threads, versions); compare runs with that key left out.
    """

    SETTINGS = 'settings.json'
    COMMAND = 'command.txt'

    def __init__(self, path, settings, resume=False, argv=None):
        self.path = os.fspath(path)
        os.makedirs(self.path, exist_ok=True)
        if not isinstance(settings, dict):
            settings = dict(vars(settings))
        self.settings = settings
        argv = sys.argv if argv is None else argv
        command = ' '.join(shlex.quote(a) for a in argv)
        stamp = datetime.datetime.now().isoformat(timespec='seconds')
        settings_path = self.file(self.SETTINGS)
        if not (resume and os.path.exists(settings_path)):
            atomic_write_json(settings_path, dict(settings, environment=environment()))
        previous = ''
        if resume and os.path.exists(self.file(self.COMMAND)):
            with open(self.file(self.COMMAND)) as f:
                previous = f.read()
        atomic_write_text(self.file(self.COMMAND),
                          previous + '# {} (cwd {})\n{}\n'.format(stamp, os.getcwd(), command))

    def file(self, *names):
        return os.path.join(self.path, *names)

    def save_model(self, name, target, meta=None):
        save_npz(self.file(name), target, meta=meta)

    def save_json(self, name, obj):
        atomic_write_json(self.file(name), obj)

    def save_text(self, name, text):
        atomic_write_text(self.file(name), text)
